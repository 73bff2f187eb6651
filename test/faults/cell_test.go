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

package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/history"
	"github.com/distlock/distlock/internal/leader"
	"github.com/distlock/distlock/internal/testservers"
)

// Backend names, as the table shows them.
const (
	redisBackend = "redis"
	zkBackend    = "zookeeper"
)

// lockLease is every cell's spec.leaseDuration: the shortest allowed, so
// that faults "longer than the lease" stay short.
const lockLease = 10 * time.Second

// zkSessionTimeout is every ZooKeeper cell's spec.backend.zookeeper.sessionTimeout.
const zkSessionTimeout = 4 * time.Second

// cellSpec is what a scenario asks of its cell.
type cellSpec struct {
	backend string
	// replicas of the manager (1 when 0).
	replicas int
	// redisOptions configure the cell's own redis-server.
	redisOptions []testservers.RedisOption
	// maxHold is spec.maxHoldDuration of every lock (none when 0).
	maxHold time.Duration
	// password makes the cell's backend require a password, given to the
	// locks in a Secret.
	password string
	// key is spec.key of every lock, with {ns} and {lock} replaced by the
	// namespace and the lock's name (the default key when empty).
	key string
	// zkKey is key for ZooKeeper cells.
	zkKey string
	// managerArgs are added to the managers' command lines.
	managerArgs []string
	// maxHolders is spec.maxHolders of every lock (a mutex when 0): the
	// history is checked for more live holders than that.
	maxHolders int
}

// cell is one scenario on one backend: a namespace with its own managers,
// backend, locks, driver and history.
type cell struct {
	t        *testing.T
	s        *suite
	spec     cellSpec
	scenario string
	ns       string
	dir      string
	cfg      *rest.Config
	c        client.Client

	redis      *testservers.Redis
	redisProxy *testservers.Proxy
	zkProxies  []*testservers.Proxy

	managers    []*manager
	historyPath string
	rec         *history.Recorder
	driver      *driver
	notes       []string
	// others are more drivers (another cluster's) drained with the main
	// one; stoppers stop outside programs before the drain.
	others   []*driver
	stoppers []func()
	// extraLocks are locks besides lockNames that the driver also keeps
	// pods asking for.
	extraLocks []string
}

func newCell(t *testing.T, scenario string, spec cellSpec) *cell {
	t.Helper()
	s := theSuite
	cfg := rest.CopyConfig(s.cfg)
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.Timeout = 5 * time.Second
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if keep := os.Getenv("FAULTS_DIR"); keep != "" {
		// Keep every cell's history and manager logs for a look afterwards.
		if dir, err = os.MkdirTemp(keep, "cell-"); err != nil {
			t.Fatal(err)
		}
	}
	ce := &cell{t: t, s: s, spec: spec, scenario: scenario, dir: dir, cfg: cfg, c: c}
	ce.ns = "faults-" + strings.ToLower(strings.NewReplacer(" ", "-", "_", "-").Replace(t.Name()[strings.LastIndex(t.Name(), "/")+1:]))
	ce.ns = fmt.Sprintf("%.50s-%d", ce.ns, time.Now().UnixNano()%100000)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ce.ns}}); err != nil {
		t.Fatalf("creating namespace %s: %v", ce.ns, err)
	}
	ce.startBackend(ctx)
	ce.historyPath = filepath.Join(ce.dir, "history.jsonl")
	if ce.rec, err = history.Open(ce.historyPath); err != nil {
		t.Fatal(err)
	}
	for i := range s.profile.locks {
		ce.createLock(ctx, fmt.Sprintf("lock-%d", i))
	}
	for i := range max(spec.replicas, 1) {
		ce.managers = append(ce.managers, ce.startManager(s.testEnv, fmt.Sprintf("manager-%d", i), s.cfg, "faults"))
	}
	t.Cleanup(func() {
		for _, m := range ce.managers {
			m.close()
		}
		if t.Failed() {
			for _, m := range ce.managers {
				t.Log(m.logs(20000))
			}
		}
	})
	return ce
}

// startBackend starts the cell's redis-server (behind a proxy) or proxies
// to the shared ZooKeeper ensemble.
func (ce *cell) startBackend(ctx context.Context) {
	switch ce.spec.backend {
	case redisBackend:
		opts := ce.spec.redisOptions
		if ce.spec.password != "" {
			opts = append(opts, testservers.WithRedisPassword(ce.spec.password))
		}
		r, err := testservers.StartRedis(ctx, opts...)
		if err != nil {
			ce.t.Fatalf("starting redis-server: %v", err)
		}
		ce.t.Cleanup(func() { _ = r.Stop() })
		ce.redis, ce.redisProxy = r, testservers.NewProxy(ce.t, r.Addr)
	case zkBackend:
		for _, addr := range ce.s.zk.Servers() {
			ce.zkProxies = append(ce.zkProxies, testservers.NewProxy(ce.t, addr))
		}
	}
	if ce.spec.password != "" {
		ce.writeSecret(ctx, ce.spec.password)
	}
}

const secretName = "backend-credentials"

// writeSecret creates or updates the credentials Secret.
func (ce *cell) writeSecret(ctx context.Context, password string) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ce.ns, Name: secretName,
		Annotations: map[string]string{locksv1alpha1.AllowedLocksAnnotation: "*"}},
		StringData: map[string]string{"password": password}}
	if ce.spec.backend == zkBackend {
		secret.StringData["username"] = "distlock"
	}
	err := retry(ctx, func() error {
		err := ce.c.Create(ctx, secret.DeepCopy())
		if apierrors.IsAlreadyExists(err) {
			return ce.c.Update(ctx, secret.DeepCopy())
		}
		return err
	})
	if err != nil {
		ce.t.Fatalf("writing the credentials Secret: %v", err)
	}
}

func (ce *cell) lockSpec(name string) locksv1alpha1.DistributedLockSpec {
	spec := locksv1alpha1.DistributedLockSpec{LeaseDuration: &metav1.Duration{Duration: lockLease},
		MaxHolders: int32(max(ce.spec.maxHolders, 1))}
	if ce.spec.maxHold > 0 {
		spec.MaxHoldDuration = &metav1.Duration{Duration: ce.spec.maxHold}
	}
	key := ce.spec.key
	if ce.spec.backend == zkBackend {
		key = ce.spec.zkKey
	}
	if key != "" {
		spec.Key = strings.NewReplacer("{ns}", ce.ns, "{lock}", name).Replace(key)
	}
	var secret *locksv1alpha1.SecretReference
	if ce.spec.password != "" {
		secret = &locksv1alpha1.SecretReference{Name: secretName}
	}
	switch ce.spec.backend {
	case redisBackend:
		spec.Backend.Redis = &locksv1alpha1.RedisBackend{Address: ce.redisProxy.Addr, CredentialsSecretRef: secret}
	case zkBackend:
		var servers []string
		for _, p := range ce.zkProxies {
			servers = append(servers, p.Addr)
		}
		spec.Backend.ZooKeeper = &locksv1alpha1.ZooKeeperBackend{Servers: servers,
			SessionTimeout: &metav1.Duration{Duration: zkSessionTimeout}, CredentialsSecretRef: secret}
	}
	return spec
}

func (ce *cell) lockNames() []string {
	names := make([]string, 0, ce.s.profile.locks)
	for i := range ce.s.profile.locks {
		names = append(names, fmt.Sprintf("lock-%d", i))
	}
	return names
}

func (ce *cell) createLock(ctx context.Context, name string) {
	lock := &locksv1alpha1.DistributedLock{ObjectMeta: metav1.ObjectMeta{Namespace: ce.ns, Name: name}, Spec: ce.lockSpec(name)}
	if err := retry(ctx, func() error { return client.IgnoreAlreadyExists(ce.c.Create(ctx, lock)) }); err != nil {
		ce.t.Fatalf("creating lock %s: %v", name, err)
	}
}

// startManager starts a supervised manager replica against the API server
// at cfg, handling this cell's namespace only.
func (ce *cell) startManager(env *envtest.Environment, name string, cfg *rest.Config, clusterID string) *manager {
	user, err := env.AddUser(envtest.User{Name: ce.ns + "-" + name, Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		ce.t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		ce.t.Fatal(err)
	}
	path := filepath.Join(ce.dir, name+".kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		ce.t.Fatal(err)
	}
	args := append([]string{"--kubeconfig", path, "--cluster-id", clusterID,
		"--leader-elect", "--leader-election-namespace", ce.ns, "--watch-namespace", ce.ns,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0"}, ce.spec.managerArgs...)
	m := newManager(name, ce.s.managerBin, ce.dir, args)
	if err := m.start(); err != nil {
		ce.t.Fatal(err)
	}
	return m
}

// fault and heal record a fault's injection and healing.
func (ce *cell) fault(name string) {
	ce.record(history.Event{Kind: history.Fault, Holder: name})
}

func (ce *cell) heal(name string) { ce.healAt(name, "", time.Time{}) }

// healAt records a heal of a fault that concerns lock ("" for every lock),
// at a given time (now when zero): the recovery is measured to that lock's
// next grant.
func (ce *cell) healAt(name, lock string, at time.Time) {
	ce.record(history.Event{Kind: history.Heal, Holder: name, Lock: lock, At: at})
}

// note adds a remark to the cell's row.
func (ce *cell) note(format string, args ...any) {
	ce.notes = append(ce.notes, fmt.Sprintf(format, args...))
}

// leader is the replica the election Lease names now, and the identity the
// Lease names (nil and "" if none; nil if no running replica has that
// identity, as after its process was killed).
func (ce *cell) leader(ctx context.Context) (*manager, string) {
	var lease coordinationv1.Lease
	if err := ce.c.Get(ctx, client.ObjectKey{Namespace: ce.ns, Name: leader.DefaultLeaseName}, &lease); err != nil ||
		lease.Spec.HolderIdentity == nil {
		return nil, ""
	}
	for _, m := range ce.managers {
		if m.identity() == *lease.Spec.HolderIdentity {
			return m, *lease.Spec.HolderIdentity
		}
	}
	return nil, *lease.Spec.HolderIdentity
}

// waitLeader waits until a running replica leads whose identity is not
// formerIdentity ("" for any). A replica's process gets a new identity each
// time it starts, so after a leader's process is killed the new leader may
// be another replica or the killed one started again: either has taken over.
func (ce *cell) waitLeader(ctx context.Context, formerIdentity string) (*manager, string, error) {
	for {
		if m, identity := ce.leader(ctx); m != nil && identity != formerIdentity {
			return m, identity, nil
		}
		select {
		case <-ctx.Done():
			return nil, "", fmt.Errorf("no replica leads but %q: %w", formerIdentity, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sleep waits d, or less if ctx ends: a fault lasts d.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
