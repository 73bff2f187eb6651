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
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/history"
	"github.com/distlock/distlock/internal/outsiders"
	"github.com/distlock/distlock/internal/testservers"
)

// Scenario 7: two control planes, each with its own manager, share every
// lock's key with each other and with programs outside Kubernetes.

func TestTwoControlPlanesAndOutsidePrograms(t *testing.T) {
	scenario{name: "two control planes and outside programs on the same keys",
		spec:  cellSpec{key: "{ns}/{lock}", zkKey: "/{ns}/{lock}", managerArgs: []string{"--allow-custom-keys"}},
		setup: shareWithAnotherClusterAndOutsiders,
		inject: func(ctx context.Context, ce *cell) error {
			// Contention is the fault: nothing more is injected.
			return sleep(ctx, 2*time.Second)
		}}.run(t)
}

func shareWithAnotherClusterAndOutsiders(ctx context.Context, ce *cell) error {
	env, cfg, err := testservers.StartControlPlane(ce.s.crdDir)
	if err != nil {
		return err
	}
	ce.t.Cleanup(func() { _ = env.Stop() })
	cfg.QPS, cfg.Burst, cfg.Timeout = 500, 1000, 5*time.Second
	other, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return err
	}
	if err := other.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ce.ns}}); err != nil {
		return fmt.Errorf("creating the namespace in the second cluster: %w", err)
	}
	for _, name := range ce.lockNames() {
		lock := &locksv1alpha1.DistributedLock{ObjectMeta: metav1.ObjectMeta{Namespace: ce.ns, Name: name}, Spec: ce.lockSpec(name)}
		if err := other.Create(ctx, lock); err != nil {
			return fmt.Errorf("creating lock %s in the second cluster: %w", name, err)
		}
	}
	m := ce.startManager(env, "cluster-b-manager", cfg, "faults-b")
	ce.t.Cleanup(m.close)
	b := &driver{name: "b", ns: ce.ns, c: other, cfg: rest.CopyConfig(cfg), rec: ce.rec, locks: ce.lockNames(),
		line: ce.s.profile.line, errorf: ce.t.Errorf}
	if err := b.start(ctx); err != nil {
		return err
	}
	ce.others = append(ce.others, b)
	return ce.startOutsiders(ctx)
}

// outsider is a program outside Kubernetes taking one lock in a loop,
// recording its critical sections (without a token: its recipe has none).
type outsider struct {
	name, lock string
	rec        func(history.Event)
	// tryLock takes the lock or reports it busy; unlock releases it.
	tryLock func(ctx context.Context) (bool, error)
	unlock  func(ctx context.Context) error
	holds   atomic.Int64
}

func (o *outsider) run(ctx context.Context, errorf func(string, ...any)) {
	for ctx.Err() == nil {
		ok, err := o.tryLock(ctx)
		if err != nil && ctx.Err() == nil {
			errorf("outsider %s: %v", o.name, err)
			return
		}
		if !ok {
			_ = sleep(ctx, 20*time.Millisecond)
			continue
		}
		o.rec(history.Event{Kind: history.Enter, Lock: o.lock, Holder: o.name})
		o.holds.Add(1)
		_ = sleep(context.Background(), 20*time.Millisecond)
		o.rec(history.Event{Kind: history.Exit, Lock: o.lock, Holder: o.name})
		if err := o.unlock(context.Background()); err != nil {
			errorf("outsider %s: releasing: %v", o.name, err)
			return
		}
		_ = sleep(ctx, 100*time.Millisecond+rand.N(200*time.Millisecond))
	}
}

// startOutsiders starts, on each lock's key: for Redis, the SET NX PX
// recipe with a compare-and-delete release; for ZooKeeper, go-zookeeper's
// zk.Lock on the first lock and a plain ephemeral node on the others.
func (ce *cell) startOutsiders(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var all []*outsider
	var closers []func()
	for i, name := range ce.lockNames() {
		key := ce.lockSpec(name).Key
		o := &outsider{name: fmt.Sprintf("outsider-%d", i), lock: name, rec: ce.record}
		switch ce.spec.backend {
		case redisBackend:
			o.tryLock, o.unlock = ce.redisRecipe(key, &closers)
		case zkBackend:
			var err error
			if o.tryLock, o.unlock, err = ce.zkRecipe(key, i == 0, &closers); err != nil {
				cancel()
				return err
			}
		}
		all = append(all, o)
		wg.Add(1)
		go func() { defer wg.Done(); o.run(ctx, ce.t.Errorf) }()
	}
	ce.stoppers = append(ce.stoppers, func() {
		cancel()
		for _, c := range closers {
			c()
		}
		wg.Wait()
		var holds []string
		for _, o := range all {
			holds = append(holds, fmt.Sprintf("%d", o.holds.Load()))
		}
		ce.note("outside programs' holds per lock: %s", strings.Join(holds, ", "))
	})
	return nil
}

// record appends e to the cell's history.
func (ce *cell) record(e history.Event) {
	if err := ce.rec.Record(e); err != nil {
		ce.t.Error(err)
	}
}

var compareAndDelete = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)

// redisRecipe is the single-instance recipe: SET key value NX PX with a
// random value, and a compare-and-delete release.
func (ce *cell) redisRecipe(key string, closers *[]func()) (func(context.Context) (bool, error), func(context.Context) error) {
	cl := redis.NewClient(&redis.Options{Addr: ce.redis.Addr, Protocol: 2})
	*closers = append(*closers, func() { _ = cl.Close() })
	var value string
	try := func(ctx context.Context) (bool, error) {
		b := make([]byte, 16)
		_, _ = crand.Read(b)
		value = hex.EncodeToString(b)
		return cl.SetNX(ctx, key, value, lockLease).Result()
	}
	unlock := func(ctx context.Context) error {
		n, err := compareAndDelete.Run(ctx, cl, []string{key}, value).Int()
		if err == nil && n != 1 {
			err = fmt.Errorf("its hold on %s was gone when it released it", key)
		}
		return err
	}
	return try, unlock
}

// zkRecipe is zk.Lock (queueing) when queue, else a plain ephemeral node at
// the lock path.
func (ce *cell) zkRecipe(path string, queue bool, closers *[]func()) (func(context.Context) (bool, error), func(context.Context) error, error) {
	conn, _, err := zk.Connect(ce.s.zk.Servers(), zkSessionTimeout, zk.WithLogInfo(false))
	if err != nil {
		return nil, nil, fmt.Errorf("an outside ZooKeeper client: %w", err)
	}
	*closers = append(*closers, conn.Close)
	if queue {
		l := zk.NewLock(conn, path, zk.WorldACL(zk.PermAll))
		// zk.Lock waits in line; closing the connection ends a wait.
		return func(context.Context) (bool, error) {
				if err := l.Lock(); err != nil {
					return false, fmt.Errorf("zk.Lock: %w", err)
				}
				return true, nil
			}, func(context.Context) error {
				return l.Unlock()
			}, nil
	}
	p := outsiders.NewPlainEphemeral(conn, path)
	return func(context.Context) (bool, error) { return p.TryLock() },
		func(context.Context) error { return p.Unlock() }, nil
}

// Scenario 8: a sick backend beside healthy ones. Sick locks point at their
// own proxies to the same server; the fault makes those proxies hang
// (connections open, nothing answered) past the lease.

const sickPrefix = "sick-"

func TestASickBackendBesideHealthyOnes(t *testing.T) {
	var sick []*testservers.Proxy
	scenario{name: "a backend hanging past the lease beside healthy ones",
		setup: func(ctx context.Context, ce *cell) error {
			sick = ce.addSickLocks(ctx)
			return nil
		},
		inject: func(ctx context.Context, ce *cell) error {
			return slowLinks(ctx, ce, time.Hour, pastTheLease, sick...)
		},
		check: healthyLocksUnaffected,
	}.run(t)
}

// addSickLocks adds as many locks as the cell has, each behind proxies of
// its own, to the driver's lines, and returns the proxies.
func (ce *cell) addSickLocks(ctx context.Context) []*testservers.Proxy {
	var proxies []*testservers.Proxy
	healthy := ce.lockNames()
	for _, name := range healthy {
		spec := ce.lockSpec(name)
		switch ce.spec.backend {
		case redisBackend:
			p := testservers.NewProxy(ce.t, ce.redis.Addr)
			proxies = append(proxies, p)
			spec.Backend.Redis.Address = p.Addr
		case zkBackend:
			spec.Backend.ZooKeeper.Servers = nil
			for _, addr := range ce.s.zk.Servers() {
				p := testservers.NewProxy(ce.t, addr)
				proxies = append(proxies, p)
				spec.Backend.ZooKeeper.Servers = append(spec.Backend.ZooKeeper.Servers, p.Addr)
			}
		}
		lock := &locksv1alpha1.DistributedLock{ObjectMeta: metav1.ObjectMeta{Namespace: ce.ns, Name: sickPrefix + name}, Spec: spec}
		if err := ce.c.Create(ctx, lock); err != nil {
			ce.t.Fatalf("creating lock %s: %v", lock.Name, err)
		}
		ce.extraLocks = append(ce.extraLocks, lock.Name)
	}
	return proxies
}

// healthyLocksUnaffected compares the healthy locks' handoffs that ended
// while the sick backend hung with the others.
func healthyLocksUnaffected(t *testing.T, ce *cell, events []history.Event) {
	var faultAt, healAt time.Time
	for _, e := range events {
		switch {
		case e.Kind == history.Fault && faultAt.IsZero():
			faultAt = e.At
		case e.Kind == history.Heal && healAt.IsZero():
			healAt = e.At
		}
	}
	var during, outside []handoff
	for _, h := range handoffs(events) {
		switch {
		case strings.HasPrefix(h.lock, sickPrefix):
		case !h.enter.Before(faultAt) && h.enter.Before(healAt):
			during = append(during, h)
		default:
			outside = append(outside, h)
		}
	}
	p50d, p99d := quantiles(during)
	p50o, p99o := quantiles(outside)
	ce.note("healthy locks' handoff p50/p99 while the sick backend hung: %s / %s (%d handoffs); otherwise %s / %s",
		ms(p50d), ms(p99d), len(during), ms(p50o), ms(p99o))
	if len(during) == 0 {
		t.Errorf("no healthy lock changed hands while the sick backend hung")
	}
	if p99d > max(3*p99o, p99o+100*time.Millisecond) {
		t.Errorf("healthy locks' handoff p99 was %v while the sick backend hung, against %v otherwise", p99d, p99o)
	}
}
