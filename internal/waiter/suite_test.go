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

package waiter

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
)

// One real kube-apiserver and etcd (envtest) serve every test in the
// package; each test works in its own namespace. No controller runs: the
// tests write the lock's status themselves, through the status subresource,
// as the controller would.
var (
	cfg       *rest.Config
	k8sClient client.Client
)

// testTimeout bounds every wait of a test.
const testTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runWithAPIServer(m))
}

// runWithAPIServer starts kube-apiserver and etcd from KUBEBUILDER_ASSETS
// (see `make setup-envtest`) with the CRDs in config/crd/bases, runs the
// tests and stops them again.
func runWithAPIServer(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))

	if err := locksv1alpha1.AddToScheme(scheme.Scheme); err != nil {
		fmt.Fprintf(os.Stderr, "adding the locks API to the scheme: %v\n", err)
		return 1
	}
	testEnv, restConfig, err := testservers.StartControlPlane(filepath.Join("..", "..", "config", "crd", "bases"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg = restConfig
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the envtest control plane: %v\n", err)
		}
	}()
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating a client: %v\n", err)
		return 1
	}
	if err := warmUp(); err != nil {
		fmt.Fprintf(os.Stderr, "warming up the API server: %v\n", err)
		return 1
	}
	return m.Run()
}

// warmUp creates, lists and deletes one DistributedLock. The API server
// serves the first requests for a new custom resource slowly (seconds), and
// the tests with a short --timeout should measure the waiter, not that.
func warmUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	lock := &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "warm-up"},
		Spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{
			Redis: &locksv1alpha1.RedisBackend{Address: "redis.example.test:6379"},
		}},
	}
	if err := k8sClient.Create(ctx, lock); err != nil {
		return err
	}
	var locks locksv1alpha1.DistributedLockList
	if err := k8sClient.List(ctx, &locks, client.InNamespace(metav1.NamespaceDefault)); err != nil {
		return err
	}
	if err := k8sClient.Delete(ctx, lock); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "warm-up: the first DistributedLock requests took %v\n", time.Since(start))
	return nil
}

// newTestNamespace creates a namespace for one test and deletes it when the
// test ends, so tests never see each other's objects.
func newTestNamespace(ctx context.Context, t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatalf("creating a test namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

// testLock is the name of the lock the tests wait for.
const testLock = "nightly-report"

// createLock creates the Redis lock testLock in ns, with status st.
func createLock(ctx context.Context, t *testing.T, ns string, st locksv1alpha1.DistributedLockStatus) {
	t.Helper()
	lock := &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: testLock},
		Spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{
			Redis: &locksv1alpha1.RedisBackend{Address: "redis.example.test:6379"},
		}},
	}
	if err := k8sClient.Create(ctx, lock); err != nil {
		t.Fatalf("creating lock %s/%s: %v", ns, testLock, err)
	}
	setStatus(ctx, t, ns, st)
}

// setStatus writes st as the status of lock testLock in ns, through the
// status subresource, as the controller does. An empty status is not
// written (a new lock has none).
func setStatus(ctx context.Context, t *testing.T, ns string, st locksv1alpha1.DistributedLockStatus) {
	t.Helper()
	if st.Backend == "" && len(st.Holders) == 0 && len(st.Waiting) == 0 && st.WaitingCount == 0 {
		return
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var lock locksv1alpha1.DistributedLock
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: testLock}, &lock); err != nil {
			return err
		}
		lock.Status = st
		return k8sClient.Status().Update(ctx, &lock)
	})
	if err != nil {
		t.Fatalf("writing the status of lock %s/%s: %v", ns, testLock, err)
	}
}

// holder is a holders[] entry for pod, as the controller writes it.
func holder(pod string, token int64, lost bool) locksv1alpha1.LockHolder {
	return locksv1alpha1.LockHolder{
		Pod: pod, PodUID: uid(pod), Identity: "distlock:v1:envtest:ns:" + pod + ":" + string(uid(pod)),
		AcquiredAt: metav1.Now(), FencingToken: token, Lost: lost,
	}
}

// waiting lists pods as status.waiting does.
func waiting(pods ...string) []locksv1alpha1.WaitingPod {
	w := make([]locksv1alpha1.WaitingPod, 0, len(pods))
	for _, p := range pods {
		w = append(w, locksv1alpha1.WaitingPod{Pod: p, PodUID: uid(p)})
	}
	return w
}

// uid is the UID the tests give to pod.
func uid(pod string) types.UID { return types.UID("uid-" + pod) }

// optionsFor are the options of a waiter in pod, in namespace ns, waiting
// for testLock, with its token file in a fresh directory.
func optionsFor(t *testing.T, ns, pod string) Options {
	return Options{
		Lock: testLock, Namespace: ns, PodName: pod, PodUID: uid(pod),
		TokenFile: filepath.Join(t.TempDir(), "distlock", "fencing-token"),
	}
}

// newWaiterClient is a client for the waiter, as cmd/waiter makes it.
func newWaiterClient(t *testing.T, restConfig *rest.Config) client.WithWatch {
	t.Helper()
	c, err := NewClient(restConfig)
	if err != nil {
		t.Fatalf("creating the waiter's client: %v", err)
	}
	return c
}

// runningWaiter is a Run in progress.
type runningWaiter struct {
	stdout, stderr *lines
	done           chan error
}

// startWaiter runs the waiter with opts in the background. The run is
// cancelled after testTimeout, so a waiter that never finishes fails the
// test instead of hanging it.
func startWaiter(t *testing.T, c client.WithWatch, opts Options) *runningWaiter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	rw := &runningWaiter{stdout: newLines(), stderr: newLines(), done: make(chan error, 1)}
	go func() { rw.done <- Run(ctx, c, opts, rw.stdout, rw.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-rw.done
	})
	return rw
}

// result waits for the waiter to end and returns its error.
func (rw *runningWaiter) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-rw.done:
		rw.done <- err // for the cleanup
		return err
	case <-time.After(testTimeout + 5*time.Second):
		t.Fatalf("the waiter did not end; it printed:\n%s\nand on stderr:\n%s", rw.stdout, rw.stderr)
		return nil
	}
}

// lines collects what a waiter prints, line by line, and lets a test wait
// for a line.
type lines struct {
	mu      sync.Mutex
	partial bytes.Buffer
	all     []string
	changed chan struct{}
}

func newLines() *lines { return &lines{changed: make(chan struct{})} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial.Write(p)
	for {
		line, err := l.partial.ReadString('\n')
		if err != nil {
			// No newline yet: keep the rest for the next write.
			l.partial.Reset()
			l.partial.WriteString(line)
			break
		}
		l.all = append(l.all, strings.TrimSuffix(line, "\n"))
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// snapshot returns the complete lines so far, and a channel closed at the
// next write.
func (l *lines) snapshot() ([]string, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...), l.changed
}

func (l *lines) String() string {
	all, _ := l.snapshot()
	return strings.Join(all, "\n")
}

// waitFor waits until a line equal to want has been printed.
func (l *lines) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		all, changed := l.snapshot()
		for _, line := range all {
			if line == want {
				return
			}
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the waiter did not print %q; it printed:\n%s", want, strings.Join(all, "\n"))
		}
	}
}
