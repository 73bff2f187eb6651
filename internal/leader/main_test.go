/*
Copyright 2026 The distlock Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package leader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/distlock/distlock/internal/testservers"
)

// The tests share one real kube-apiserver and etcd (envtest). Each test
// elects on its own Lease in testNamespace.
var (
	apiConfig *rest.Config
	kube      kubernetes.Interface
)

const testNamespace = "leader-test"

// slack absorbs scheduling and API latency (under -race, on a busy
// machine) in the bounds the tests assert.
const slack = time.Second

func TestMain(m *testing.M) {
	os.Exit(runWithControlPlane(m))
}

// runWithControlPlane starts kube-apiserver and etcd from
// KUBEBUILDER_ASSETS (see `make setup-envtest`), runs the tests and stops
// them again.
func runWithControlPlane(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	env, cfg, err := testservers.StartControlPlane(filepath.Join("..", "..", "config", "crd", "bases"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the envtest control plane: %v\n", err)
		}
	}()
	apiConfig = cfg
	kube, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating a client: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}
	if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "creating namespace %s: %v\n", testNamespace, err)
		return 1
	}
	return m.Run()
}

// leaseName returns a Lease name for the running test.
func leaseName(t *testing.T) string {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 63 {
		name = name[len(name)-63:]
	}
	return strings.Trim(name, "-")
}

// testElector is an Elector running in the test, with what its callbacks
// saw.
type testElector struct {
	*Elector
	t      *testing.T
	cancel context.CancelFunc
	done   chan struct{}
	err    error

	// leads receives the LastRenewal (the start of the acquiring call) each
	// time OnStartedLeading runs; deposals the holder each time OnDeposed
	// runs, with MayRenewHolds as seen from inside the callback.
	leads    chan time.Time
	deposals chan deposal
	starts   atomic.Int32
}

type deposal struct {
	holder        string
	mayRenewHolds bool
	at            time.Time
}

// startElector runs an elector named name (its identity starts with it) on
// lease through restConfig until the test ends; hooks is applied before
// Start.
func startElector(t *testing.T, restConfig *rest.Config, lease, name string, hooks func(*testHooks)) *testElector {
	t.Helper()
	e, err := New(restConfig, Config{
		Namespace: testNamespace,
		Name:      lease,
		Identity:  fmt.Sprintf("%s_%d", name, time.Now().UnixNano()),
		Logger:    testr.New(t).WithName(name),
	})
	if err != nil {
		t.Fatalf("creating elector %s: %v", name, err)
	}
	if hooks != nil {
		hooks(&e.hooks)
	}
	te := &testElector{
		Elector:  e,
		t:        t,
		done:     make(chan struct{}),
		leads:    make(chan time.Time, 16),
		deposals: make(chan deposal, 16),
	}
	e.OnStartedLeading(func() {
		te.starts.Add(1)
		te.leads <- e.Status().LastRenewal
	})
	e.OnDeposed(func(holder string) {
		te.deposals <- deposal{holder: holder, mayRenewHolds: e.MayRenewHolds(), at: time.Now()}
	})
	ctx, cancel := context.WithCancel(context.Background())
	te.cancel = cancel
	go func() {
		defer close(te.done)
		te.err = e.Start(ctx)
	}()
	t.Cleanup(te.stop)
	return te
}

// stop cancels the elector and waits until Start has returned (after
// stepping down and releasing the Lease).
func (te *testElector) stop() {
	te.cancel()
	select {
	case <-te.done:
	case <-time.After(30 * time.Second):
		te.t.Errorf("elector %s did not stop within 30s: %s", te.Identity(), te)
		return
	}
	if te.err != nil {
		te.t.Errorf("elector %s: Start returned %v", te.Identity(), te.err)
	}
}

// crash stops the elector as kill -9 would: from now on it reaches the API
// server no more, and it releases nothing.
func (te *testElector) crash() {
	te.hooks.crashed.Store(true)
	te.cancel()
}

// waitFor polls cond until it holds and returns how long that took, or
// fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// receive waits for a value on ch, or fails the test after timeout.
func receive[T any](t *testing.T, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		var zero T
		t.Fatalf("%s: not within %s", what, timeout)
		return zero
	}
}

// overlapWatch samples electors every millisecond and remembers the first
// sample in which two of them were Leading at once.
type overlapWatch struct {
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}
	samples  atomic.Int64
	mu       sync.Mutex
	overlap  string
}

// watchOverlap starts sampling; the test fails at its end if two electors
// ever led at once.
func watchOverlap(t *testing.T, electors ...*testElector) *overlapWatch {
	w := &overlapWatch{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.quit:
				return
			case <-time.After(time.Millisecond):
			}
			w.sample(electors)
		}
	}()
	t.Cleanup(func() {
		w.stop()
		if w.overlap != "" {
			t.Errorf("two electors led at once: %s", w.overlap)
		}
		t.Logf("leadership sampled %d times", w.samples.Load())
	})
	return w
}

// sample reads every elector's Leading twice; reads are not simultaneous, so
// two electors count as leading together only if both read true both times
// (the reads of one fall between the reads of the other).
func (w *overlapWatch) sample(electors []*testElector) {
	w.samples.Add(1)
	first := make([]bool, len(electors))
	for i, e := range electors {
		first[i] = e.Leading()
	}
	var leading []string
	for i, e := range electors {
		if first[i] && e.Leading() {
			leading = append(leading, e.String())
		}
	}
	if len(leading) > 1 {
		w.mu.Lock()
		if w.overlap == "" {
			w.overlap = strings.Join(leading, " | ")
		}
		w.mu.Unlock()
	}
}

func (w *overlapWatch) stop() {
	w.stopOnce.Do(func() { close(w.quit) })
	<-w.done
}

// leaseHolder reads the Lease: its holder and its count of transitions.
func leaseHolder(t *testing.T, lease string) (string, int32) {
	t.Helper()
	l, err := kube.CoordinationV1().Leases(testNamespace).Get(context.Background(), lease, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading Lease %s: %v", lease, err)
	}
	var holder string
	var transitions int32
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseTransitions != nil {
		transitions = *l.Spec.LeaseTransitions
	}
	return holder, transitions
}
