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

package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/redis"
	"github.com/distlock/distlock/internal/testservers"
)

// The semaphore recipe, and its outside recipe, against a real server.

// Scripts of the outside recipe, run verbatim as the package exports them.
var (
	outsideAcquire = goredis.NewScript(redis.OutsideSemaphoreAcquire)
	outsideRenew   = goredis.NewScript(redis.OutsideSemaphoreRenew)
	outsideRelease = goredis.NewScript(redis.OutsideSemaphoreRelease)
)

// semOutsider is a program outside the cluster that shares semaphores by
// the outside recipe.
type semOutsider struct {
	client goredis.Scripter
	id     string
}

// newSemOutsider returns an outside program with identity id on srv.
func newSemOutsider(t *testing.T, srv *testservers.Redis, id string) *semOutsider {
	t.Helper()
	return &semOutsider{client: newRaw(t, srv), id: id}
}

// newRaw returns a plain go-redis client of srv, closed when the test ends.
func newRaw(t *testing.T, srv *testservers.Redis) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr, Password: srv.Password})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// acquire runs OutsideSemaphoreAcquire and returns the member taken, or ""
// when no permit was free.
func (o *semOutsider) acquire(ctx context.Context, key string, ttl time.Duration, limit int) (string, error) {
	member, err := outsideAcquire.Run(ctx, o.client, []string{key, key + ":fencing"}, o.id, ttl.Milliseconds(), limit).Text()
	if errors.Is(err, goredis.Nil) {
		return "", nil
	}
	return member, err
}

// renew runs OutsideSemaphoreRenew and reports whether the hold lives on.
func (o *semOutsider) renew(ctx context.Context, key, member string, ttl time.Duration) (bool, error) {
	n, err := outsideRenew.Run(ctx, o.client, []string{key}, member, ttl.Milliseconds()).Int64()
	return n == 1, err
}

// release runs OutsideSemaphoreRelease and reports whether it removed the
// hold.
func (o *semOutsider) release(ctx context.Context, key, member string) (bool, error) {
	n, err := outsideRelease.Run(ctx, o.client, []string{key}, member).Int64()
	return n == 1, err
}

// tokenOf is the fencing token of an outside hold's member.
func tokenOf(t *testing.T, member string) int64 {
	t.Helper()
	_, digits, ok := strings.Cut(member, ";fence=")
	token, err := strconv.ParseInt(digits, 10, 64)
	if !ok || err != nil || token <= 0 {
		t.Fatalf("outside member %q has no fencing token", member)
	}
	return token
}

func TestSemaphoreSharedByOutsideProgramsAndLockers(t *testing.T) {
	t.Parallel()
	const limit, lockers, outsiders, rounds = 3, 4, 4, 25
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 2*time.Minute)
	key, raw := newKey(t), newRaw(t, srv)

	var (
		live    atomic.Int64 // holds between acquire returning and release being sent
		takenBy [2]atomic.Int64
		wg      sync.WaitGroup
	)
	// hold runs while a worker holds a permit: the holds the server has
	// and those this process knows of never exceed the limit.
	hold := func(who string) bool {
		defer live.Add(-1)
		if n := live.Add(1); n > limit {
			t.Errorf("%s: %d permits held in this process; limit %d", who, n, limit)
			return false
		}
		if n, err := raw.ZCard(ctx, key).Result(); err != nil || n > limit {
			t.Errorf("%s: ZCARD = %d, %v; limit %d", who, n, err, limit)
			return false
		}
		return true
	}
	// Each worker stops at its first failure.
	for i := range lockers {
		l, holder := connect(t, srv), fmt.Sprintf("pod-%d", i)
		wg.Go(func() {
			for range rounds {
				lease, err := l.Acquire(ctx, key, holder, time.Minute, backend.WithLimit(limit))
				if errors.Is(err, backend.ErrNotAcquired) {
					continue
				}
				if err != nil {
					t.Errorf("Acquire by %s: %v", holder, err)
					return
				}
				takenBy[0].Add(1)
				ok := hold(holder)
				if err := l.Release(ctx, lease); err != nil {
					t.Errorf("Release by %s: %v", holder, err)
				}
				if err != nil || !ok {
					return
				}
			}
		})
	}
	for i := range outsiders {
		o := newSemOutsider(t, srv, fmt.Sprintf("batch-job-%d", i))
		wg.Go(func() {
			for range rounds {
				member, err := o.acquire(ctx, key, time.Minute, limit)
				if err != nil {
					t.Errorf("outside acquire by %s: %v", o.id, err)
					return
				}
				if member == "" {
					continue
				}
				takenBy[1].Add(1)
				ok := hold(o.id)
				if renewed, err := o.renew(ctx, key, member, time.Minute); err != nil || !renewed {
					t.Errorf("outside renew by %s = %v, %v; want renewed", o.id, renewed, err)
					ok = false
				}
				if released, err := o.release(ctx, key, member); err != nil || !released {
					t.Errorf("outside release by %s = %v, %v; want released", o.id, released, err)
					ok = false
				}
				if !ok {
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("permits taken: %d by lockers, %d by outside programs", takenBy[0].Load(), takenBy[1].Load())
	if takenBy[0].Load() == 0 || takenBy[1].Load() == 0 {
		t.Errorf("permits taken: %d by lockers, %d by outside programs; want both to get some", takenBy[0].Load(), takenBy[1].Load())
	}
	if n, err := raw.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS %s after every hold was released = %d, %v; want 0", key, n, err)
	}
}

func TestSemaphoreOutsideRecipe(t *testing.T) {
	t.Parallel()
	const limit = 3
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, o, raw, key := connect(t, srv), newSemOutsider(t, srv, "batch-job"), newRaw(t, srv), newKey(t)

	pod := mustSemAcquire(ctx, t, l, key, "pod-a", limit)
	member, err := o.acquire(ctx, key, time.Minute, limit)
	if err != nil || member == "" {
		t.Fatalf("outside acquire = %q, %v; want a permit", member, err)
	}
	token := tokenOf(t, member)
	if !strings.HasPrefix(member, "batch-job;fence=") || token <= pod.Token {
		t.Fatalf("outside member %q; want batch-job's with a token above the pod's %d", member, pod.Token)
	}
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.Hold{{Holder: "pod-a", Token: pod.Token}, {Holder: "batch-job", Token: token}}
	if len(st.Holds) != 2 || st.Holds[0].Holder != want[0].Holder || st.Holds[0].Token != want[0].Token ||
		st.Holds[1].Holder != want[1].Holder || st.Holds[1].Token != want[1].Token {
		t.Fatalf("Inspect holds = %+v; want %+v (with TTLs)", st.Holds, want)
	}

	// A full semaphore keeps both kinds of holder out.
	third := mustSemAcquire(ctx, t, l, key, "pod-b", limit)
	if m, err := newSemOutsider(t, srv, "other-job").acquire(ctx, key, time.Minute, limit); err != nil || m != "" {
		t.Fatalf("outside acquire of a full semaphore = %q, %v; want no permit", m, err)
	}
	_, err = l.Acquire(ctx, key, "pod-c", time.Minute, backend.WithLimit(limit))
	if !errors.Is(err, backend.ErrNotAcquired) || !strings.Contains(err.Error(), "3 of 3 permits held") {
		t.Fatalf("Acquire of a full semaphore: err = %v; want ErrNotAcquired saying 3 of 3 permits held", err)
	}

	if renewed, err := o.renew(ctx, key, member, 2*time.Minute); err != nil || !renewed {
		t.Fatalf("outside renew = %v, %v; want renewed", renewed, err)
	}
	if score, err := raw.ZScore(ctx, key, member).Result(); err != nil || int64(score) < time.Now().Add(90*time.Second).UnixMilli() {
		t.Fatalf("ZSCORE of the renewed outside hold = %v, %v; want about two minutes from now", score, err)
	}
	if pttl, err := raw.PTTL(ctx, key).Result(); err != nil || pttl < 90*time.Second {
		t.Fatalf("PTTL %s after the outside renewal = %v, %v; want the last hold's expiry, about two minutes", key, pttl, err)
	}
	for i, wantRemoved := range []bool{true, false} {
		if removed, err := o.release(ctx, key, member); err != nil || removed != wantRemoved {
			t.Fatalf("outside release #%d = %v, %v; want %v", i+1, removed, err, wantRemoved)
		}
	}
	if renewed, err := o.renew(ctx, key, member, time.Minute); err != nil || renewed {
		t.Fatalf("outside renew of a released hold = %v, %v; want lost", renewed, err)
	}
	mustSemAcquire(ctx, t, l, key, "pod-c", limit) // the outside release freed a permit
	if _, err := l.Renew(ctx, third, time.Minute); err != nil {
		t.Fatalf("Renew of pod-b's permit after the outside calls: %v", err)
	}
}

func TestSemaphoreOutsideRecipeLeavesAMutexAlone(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, o, key := connect(t, srv), newSemOutsider(t, srv, "batch-job"), newKey(t)

	mutex, err := l.Acquire(ctx, key, "pod-m", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := o.acquire(ctx, key, time.Minute, 3); err != nil || m != "" {
		t.Fatalf("outside acquire of a mutex's key = %q, %v; want no permit", m, err)
	}
	forged := fmt.Sprintf("pod-m;fence=%d", mutex.Token)
	if removed, err := o.release(ctx, key, forged); err != nil || removed {
		t.Fatalf("outside release on a mutex's key = %v, %v; want nothing removed", removed, err)
	}
	if renewed, err := o.renew(ctx, key, forged, time.Minute); err != nil || renewed {
		t.Fatalf("outside renew on a mutex's key = %v, %v; want nothing renewed", renewed, err)
	}
	if _, err := l.Renew(ctx, mutex, time.Minute); err != nil {
		t.Fatalf("Renew of the mutex after the outside calls: %v", err)
	}
}

// A member without the ";fence=<digits>" form is a tokenless hold: it
// counts, and Inspect shows it as it is, with token 0.
func TestSemaphoreTokenlessOutsideHold(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, raw, key := connect(t, srv), newRaw(t, srv), newKey(t)

	pod := mustSemAcquire(ctx, t, l, key, "pod-a", 2)
	expiry := serverNow(ctx, t, raw).Add(time.Minute).UnixMilli()
	if err := raw.ZAdd(ctx, key, goredis.Z{Score: float64(expiry), Member: "legacy-job"}).Err(); err != nil {
		t.Fatal(err)
	}
	st, err := l.Inspect(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Holds) != 2 || st.Holder != "legacy-job" || st.Token != 0 || st.Holds[1].Holder != "pod-a" || st.Holds[1].Token != pod.Token {
		t.Fatalf("Inspect = %+v; want the tokenless legacy-job first (token 0), then pod-a", st)
	}
	if st.TTL <= 50*time.Second || st.TTL > time.Minute {
		t.Errorf("Inspect TTL of the tokenless hold = %v; want about a minute", st.TTL)
	}
	if _, err := l.Acquire(ctx, key, "pod-b", time.Minute, backend.WithLimit(2)); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Acquire with the tokenless hold taking the second permit: err = %v; want ErrNotAcquired", err)
	}
}

// serverNow is the server's clock.
func serverNow(ctx context.Context, t *testing.T, raw *goredis.Client) time.Time {
	t.Helper()
	now, err := raw.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

// mustSemAcquire takes a permit of the semaphore at key, of limit permits,
// for a minute.
func mustSemAcquire(ctx context.Context, t *testing.T, l backend.Locker, key, holder string, limit int) backend.Lease {
	t.Helper()
	lease, err := l.Acquire(ctx, key, holder, time.Minute, backend.WithLimit(limit))
	if err != nil || lease.Token <= 0 {
		t.Fatalf("Acquire(%q, %q, limit %d) = %+v, %v; want a permit", key, holder, limit, lease, err)
	}
	return lease
}

func TestSemaphoreAndPlainSetExcludeEachOther(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, o, key := connect(t, srv), newOutsider(t, srv), newKey(t)

	// SET NX PX first: the semaphore is refused, naming the holder.
	if !o.take(ctx, t, key) {
		t.Fatalf("outside SET NX on a free key did not set it")
	}
	_, err := l.Acquire(ctx, key, "pod-a", time.Minute, backend.WithLimit(3))
	if !errors.Is(err, backend.ErrNotAcquired) || !strings.Contains(err.Error(), "held by a mutex holder") ||
		!strings.Contains(err.Error(), o.value) {
		t.Fatalf("semaphore Acquire while SET NX holds the key: err = %v; want ErrNotAcquired naming the mutex holder %q", err, o.value)
	}
	if n := o.release(ctx, t, key); n != 1 {
		t.Fatalf("outside compare-and-delete deleted %d keys; want 1", n)
	}

	// The semaphore first: SET NX fails, the mutex recipe is refused.
	lease := mustSemAcquire(ctx, t, l, key, "pod-a", 3)
	if o.take(ctx, t, key) {
		t.Fatalf("outside SET NX succeeded while a semaphore hold exists")
	}
	_, err = l.Acquire(ctx, key, "pod-b", time.Minute)
	if !errors.Is(err, backend.ErrNotAcquired) || !strings.Contains(err.Error(), "held by a semaphore with 1 holds") {
		t.Fatalf("mutex Acquire while a semaphore hold exists: err = %v; want ErrNotAcquired saying held by a semaphore with 1 holds", err)
	}
	// The mutex recipe's compare-and-delete cannot read a semaphore: it
	// fails, and deletes nothing.
	if err := compareAndDelete.Run(ctx, o.client, []string{key}, o.value).Err(); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("outside compare-and-delete on a semaphore: err = %v; want WRONGTYPE", err)
	}
	if err := l.Purge(ctx, key); !errors.Is(err, backend.ErrNotAcquired) {
		t.Fatalf("Purge of a held semaphore: err = %v; want ErrNotAcquired", err)
	}
	if _, err := l.Renew(ctx, lease, time.Minute); err != nil {
		t.Fatalf("Renew of the semaphore hold: %v", err)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if !o.take(ctx, t, key) {
		t.Fatalf("outside SET NX failed after the semaphore's last hold was released")
	}
}

func TestSemaphoreExpiryFreesPermitsAndTheKey(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, raw, key := connect(t, srv), newRaw(t, srv), newKey(t)

	const short, long = 300 * time.Millisecond, 1500 * time.Millisecond
	var leases []backend.Lease
	for i, ttl := range []time.Duration{short, long} {
		lease, err := l.Acquire(ctx, key, fmt.Sprintf("pod-%d", i), ttl, backend.WithLimit(2))
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, lease)
	}
	if pttl, err := raw.PTTL(ctx, key).Result(); err != nil || pttl <= short || pttl > long {
		t.Fatalf("PTTL %s = %v, %v; want the last hold's, in (%v, %v]", key, pttl, err, short, long)
	}
	// The short hold's permit comes free after its TTL.
	start := time.Now()
	var next backend.Lease
	eventually(t, 5*time.Second, "a permit freed by the short hold's expiry", func() error {
		var err error
		next, err = l.Acquire(ctx, key, "pod-next", short, backend.WithLimit(2))
		return err
	})
	if since := time.Since(start); since > long {
		t.Errorf("the short hold's permit came free after %v; want before the long hold expires (%v)", since, long)
	}
	if _, err := l.Renew(ctx, leases[0], time.Minute); !errors.Is(err, backend.ErrNotHeld) {
		t.Fatalf("Renew of the expired hold: err = %v; want ErrNotHeld", err)
	}
	// With no script run, the key goes away when its last hold expires.
	eventually(t, 5*time.Second, "the key to expire with its last hold", func() error {
		n, err := raw.Exists(ctx, key).Result()
		if err == nil && n != 0 {
			err = fmt.Errorf("%s still exists", key)
		}
		return err
	})
	for _, lease := range append(leases, next) {
		if _, err := l.Renew(ctx, lease, time.Minute); !errors.Is(err, backend.ErrNotHeld) {
			t.Fatalf("Renew of %s's expired hold: err = %v; want ErrNotHeld", lease.Holder, err)
		}
	}
	if n, err := raw.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS %s after renewals of expired holds = %d, %v; want 0 (nothing taken again)", key, n, err)
	}
}

// An expired member that an outside program left behind (its key without
// an expiry) is no hold: renewing it fails, and the mutex may take a key
// that holds only such members.
func TestSemaphoreExpiredMembersAreNoHolds(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, raw, key := connect(t, srv), newRaw(t, srv), newKey(t)

	past := serverNow(ctx, t, raw).Add(-time.Second).UnixMilli()
	if err := raw.ZAdd(ctx, key, goredis.Z{Score: float64(past), Member: "pod-a;fence=7"}).Err(); err != nil {
		t.Fatal(err)
	}
	stale := backend.Lease{Key: key, Holder: "pod-a", Token: 7}
	if _, err := l.Renew(ctx, stale, time.Minute); !errors.Is(err, backend.ErrNotHeld) {
		t.Fatalf("Renew of an expired member: err = %v; want ErrNotHeld", err)
	}
	if err := raw.ZAdd(ctx, key, goredis.Z{Score: float64(past), Member: "pod-a;fence=7"}).Err(); err != nil {
		t.Fatal(err)
	}
	if st, err := l.Inspect(ctx, key); err != nil || st.Held {
		t.Fatalf("Inspect of a semaphore of expired members = %+v, %v; want free", st, err)
	}
	if err := raw.ZAdd(ctx, key, goredis.Z{Score: float64(past), Member: "pod-a;fence=7"}).Err(); err != nil {
		t.Fatal(err)
	}
	lease, err := l.Acquire(ctx, key, "pod-b", time.Minute)
	if err != nil {
		t.Fatalf("mutex Acquire of a key holding only expired members: %v", err)
	}
	if v, err := raw.Get(ctx, key).Result(); err != nil || v != fmt.Sprintf("pod-b;fence=%d", lease.Token) {
		t.Fatalf("GET %s = %q, %v; want pod-b's mutex value", key, v, err)
	}
}

func TestSemaphoreMinTokenRaisesTheCounter(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, raw, key := connect(t, srv), newRaw(t, srv), newKey(t)
	counter := key + ":fencing"

	tests := []struct {
		name, holder string
		floor, want  int64
	}{
		{"a floor above the counter raises it", "pod-a", 1000, 1001},
		{"a floor below the counter changes nothing", "pod-b", 500, 1002},
		{"the holder of a permit keeps its token whatever the floor", "pod-a", 5000, 1001},
		{"a floor past 2^53 gives the exact next integer", "pod-c", 1<<53 + 1, 1<<53 + 2},
	}
	for _, tc := range tests {
		lease, err := l.Acquire(ctx, key, tc.holder, time.Minute, backend.WithLimit(4), backend.WithMinToken(tc.floor))
		if err != nil || lease.Token != tc.want {
			t.Fatalf("%s: Acquire(%s, MinToken %d) = %+v, %v; want token %d", tc.name, tc.holder, tc.floor, lease, err, tc.want)
		}
	}
	if v, err := raw.Get(ctx, counter).Int64(); err != nil || v != 1<<53+2 {
		t.Fatalf("GET %s = %d, %v; want %d", counter, v, err, int64(1<<53+2))
	}
	_, err := l.Acquire(ctx, key, "pod-d", time.Minute, backend.WithLimit(4), backend.WithMinToken(math.MaxInt64))
	if !errors.Is(err, backend.ErrFencingRegressed) {
		t.Fatalf("Acquire with MinToken MaxInt64: err = %v; want ErrFencingRegressed", err)
	}
	if n, err := raw.ZCard(ctx, key).Result(); err != nil || n != 3 {
		t.Fatalf("ZCARD %s after a regressed Acquire = %d, %v; want 3 (nothing added)", key, n, err)
	}
}
