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
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/testservers"
)

func TestMinTokenRestoresFencingAfterARestartWithoutPersistence(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t) // no persistence: a restart loses every key
	ctx := ctxFor(t, 60*time.Second)
	l, key := connect(t, srv), newKey(t)

	for range 5 {
		lease, err := l.Acquire(ctx, key, "holder-a", time.Minute)
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		if err := l.Release(ctx, lease); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	held, err := l.Acquire(ctx, key, "holder-a", time.Minute)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	n := held.Token

	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	// The first command after the restart may meet a connection the
	// server closed.
	deadline := time.Now().Add(10 * time.Second)
	var st backend.State
	for {
		st, err = l.Inspect(ctx, key)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || st.Held {
		t.Fatalf("Inspect after the restart = %+v, %v; want free (the server lost its data)", st, err)
	}

	// Without a floor the counter starts again: the token goes backwards.
	regressed, err := l.Acquire(ctx, key, "holder-b", time.Minute)
	if err != nil {
		t.Fatalf("Acquire without MinToken after the restart: %v", err)
	}
	if regressed.Token > n {
		t.Fatalf("token without MinToken after the restart = %d; want at most %d (the counter was lost)", regressed.Token, n)
	}
	if err := l.Release(ctx, regressed); err != nil {
		t.Fatalf("Release: %v", err)
	}
	// With the last token the caller saw as the floor, it does not.
	lease, err := l.Acquire(ctx, key, "holder-c", time.Minute, backend.WithMinToken(n))
	if err != nil {
		t.Fatalf("Acquire with MinToken %d after the restart: %v", n, err)
	}
	if lease.Token <= n {
		t.Fatalf("token with MinToken %d after the restart = %d; want above it", n, lease.Token)
	}
}

func TestMinTokenRaisesTheCounter(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, key := connect(t, srv), newKey(t)
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = raw.Close() })

	steps := []struct {
		name      string
		holder    string
		minToken  int64
		wantToken int64
		wantErr   error
		release   bool
	}{
		{name: "a first hold without a floor gets token 1", holder: "a", wantToken: 1, release: true},
		{name: "a floor above the counter gives a token above the floor", holder: "a", minToken: 1000, wantToken: 1001},
		{name: "the holder re-acquiring keeps its token whatever the floor", holder: "a", minToken: 5000, wantToken: 1001, release: true},
		{name: "a floor below the counter changes nothing", holder: "b", minToken: 5, wantToken: 1002, release: true},
		{name: "a floor beyond 2^53 is compared and raised exactly", holder: "c", minToken: 1<<53 + 1, wantToken: 1<<53 + 2, release: true},
		{name: "no token exceeds the largest int64", holder: "d", minToken: math.MaxInt64, wantErr: backend.ErrFencingRegressed},
		{name: "after a refused floor the counter goes on", holder: "d", wantToken: 1<<53 + 3, release: true},
	}
	for _, step := range steps {
		lease, err := l.Acquire(ctx, key, step.holder, testTTL, backend.WithMinToken(step.minToken))
		if step.wantErr != nil {
			if !errors.Is(err, step.wantErr) || lease != (backend.Lease{}) {
				t.Fatalf("%s: Acquire = %+v, %v; want %v", step.name, lease, err, step.wantErr)
			}
			if st, err := l.Inspect(ctx, key); err != nil || st.Held {
				t.Fatalf("%s: Inspect = %+v, %v; want free", step.name, st, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Acquire: %v", step.name, err)
		}
		if lease.Token != step.wantToken {
			t.Fatalf("%s: token = %d; want %d", step.name, lease.Token, step.wantToken)
		}
		if v, err := raw.Get(ctx, key).Result(); err != nil || v != fmt.Sprintf("%s;fence=%d", step.holder, step.wantToken) {
			t.Fatalf("%s: GET %s = %q, %v; want the token in the value", step.name, key, v, err)
		}
		if step.release {
			if err := l.Release(ctx, lease); err != nil {
				t.Fatalf("%s: Release: %v", step.name, err)
			}
		}
	}

	// A counter at its maximum refuses a new hold even without a floor, and
	// changes nothing; a counter that is not a number is an error, not a
	// refusal.
	for _, c := range []struct {
		counter string
		want    func(error) bool
	}{
		{counter: fmt.Sprint(int64(math.MaxInt64)), want: func(err error) bool { return errors.Is(err, backend.ErrFencingRegressed) }},
		{counter: "not-a-number", want: func(err error) bool { return err != nil && !errors.Is(err, backend.ErrFencingRegressed) }},
	} {
		if err := raw.Set(ctx, key+":fencing", c.counter, 0).Err(); err != nil {
			t.Fatal(err)
		}
		lease, err := l.Acquire(ctx, key, "e", testTTL)
		if !c.want(err) || lease != (backend.Lease{}) {
			t.Fatalf("counter %s: Acquire = %+v, %v; want a refusal and nothing held", c.counter, lease, err)
		}
		if v, err := raw.Get(ctx, key+":fencing").Result(); err != nil || v != c.counter {
			t.Fatalf("counter %s: after the refusal it is %q, %v; want it unchanged", c.counter, v, err)
		}
		if n, err := raw.Exists(ctx, key).Result(); err != nil || n != 0 {
			t.Fatalf("counter %s: the lock key exists after the refusal (%d, %v)", c.counter, n, err)
		}
	}
}

func TestQueueIsIgnored(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l, o, key := connect(t, srv), newOutsider(t, srv), newKey(t)
	if !o.take(ctx, t, key) {
		t.Fatalf("outside SET NX on a free key did not set it")
	}
	lease, err := l.Acquire(ctx, key, "holder-a", testTTL, backend.WithQueue())
	if !errors.Is(err, backend.ErrNotAcquired) || lease != (backend.Lease{}) {
		t.Fatalf("Acquire with Queue while an outside program holds = %+v, %v; want the zero Lease and ErrNotAcquired", lease, err)
	}
	if keys, err := o.client.Keys(ctx, key+"*").Result(); err != nil || len(keys) != 1 {
		t.Fatalf("keys after a queued Acquire = %q, %v; want only the outsider's %s", keys, err, key)
	}
}

func TestRenewBatchRenewsEveryHoldAndReportsTheLostOnes(t *testing.T) {
	t.Parallel()
	srv := testservers.NewRedis(t)
	ctx := ctxFor(t, 30*time.Second)
	l := connect(t, srv)
	batcher, ok := l.(backend.BatchRenewer)
	if !ok {
		t.Fatalf("the Redis locker does not renew in batches")
	}
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = raw.Close() })

	var renewals []backend.Renewal
	for i := range 3 {
		key := fmt.Sprintf("%s-%d", newKey(t), i)
		lease, err := l.Acquire(ctx, key, "holder-a", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		renewals = append(renewals, backend.Renewal{Lease: lease, TTL: time.Minute})
	}
	if err := raw.Del(ctx, renewals[1].Lease.Key).Err(); err != nil {
		t.Fatal(err)
	}
	// The server forgets its scripts, as after a restart: the batch must
	// still go through.
	if err := raw.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	batcher.RenewBatch(ctx, renewals)
	for i, r := range renewals {
		switch {
		case i == 1 && !errors.Is(r.Err, backend.ErrNotHeld):
			t.Errorf("renewal of the deleted hold: err = %v; want ErrNotHeld", r.Err)
		case i != 1 && r.Err != nil:
			t.Errorf("renewal %d: %v", i, r.Err)
		case i != 1 && (r.Renewed.TTL <= 30*time.Second || r.Renewed.Token != r.Lease.Token):
			t.Errorf("renewal %d = %+v; want the same token with about a minute left", i, r.Renewed)
		}
	}
	if n, err := raw.Exists(ctx, renewals[1].Lease.Key).Result(); err != nil || n != 0 {
		t.Errorf("the batch re-created the deleted hold (exists=%d, err=%v)", n, err)
	}
}
