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

package zookeeper

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/testservers"
)

// eventually polls cond until it holds or d has passed.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

func waitClosed(t *testing.T, changed <-chan struct{}, why string) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-changed:
		return time.Since(start)
	case <-time.After(5 * time.Second):
		t.Fatalf("the watch channel was not closed within 5s %s", why)
		return 0
	}
}

func TestWatchSetsOneWatchAndEndsItsGoroutine(t *testing.T) {
	t.Parallel()
	srv := testservers.NewZooKeeper(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	p := newProxy(t, srv.Addr)
	bl, err := New(ctx, backend.Config{Servers: []string{p.addr()}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer bl.Close()
	l := bl.(*locker)
	holder, err := New(ctx, backend.Config{Servers: []string{srv.Addr}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer holder.Close()

	const key = "/watch/lock"
	lease, err := holder.Acquire(ctx, key, "holder-b", 30*time.Second)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	v, err := l.observe(ctx, key)
	if err != nil || len(v.contenders) != 1 {
		t.Fatalf("observe = %+v, %v; want one contender", v, err)
	}
	watched := v.contenders[0].path(key)

	t.Run("a renewal of the watched hold sets the watch again and leaves the channel open", func(t *testing.T) {
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		changed, err := l.Watch(wctx, key, "holder-a")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		if _, err := holder.Renew(ctx, lease, 30*time.Second); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		// The renewal fired the server's watch (the server drops a watch
		// when it fires, before it answers the write); the locker sets it
		// again, which the server lists for the locker's session.
		entry := fmt.Sprintf("%s\n\t%#x\n", watched, l.conn.SessionID())
		eventually(t, 5*time.Second, "the watch set again after the renewal", func() bool {
			out, err := srv.FourLetterWord(ctx, "wchp")
			return err == nil && strings.Contains(out, entry)
		})
		select {
		case <-changed:
			t.Fatal("the watch channel closed on a renewal of the watched hold")
		default:
		}
	})

	t.Run("ending the context closes the channel and ends the goroutine", func(t *testing.T) {
		eventually(t, 5*time.Second, "earlier watches ended", func() bool { return l.watching.Load() == 0 })
		wctx, wcancel := context.WithCancel(ctx)
		changed, err := l.Watch(wctx, key, "holder-a")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		if n := l.watching.Load(); n != 1 {
			t.Fatalf("%d watch goroutines running; want 1", n)
		}
		wcancel()
		waitClosed(t, changed, "after its context ended")
		eventually(t, 5*time.Second, "the watch goroutine ended", func() bool { return l.watching.Load() == 0 })
	})

	t.Run("a lost connection closes the channel", func(t *testing.T) {
		changed, err := l.Watch(ctx, key, "holder-a")
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		p.cut()
		defer p.heal()
		took := waitClosed(t, changed, "after the connection was cut")
		t.Logf("the watch channel closed %v after the connection was cut", took)
		eventually(t, 5*time.Second, "the watch goroutine ended", func() bool { return l.watching.Load() == 0 })

		// While the connection is down, a new watch ends at once or fails.
		callCtx, callCancel := context.WithTimeout(ctx, 500*time.Millisecond)
		if changed, err := l.Watch(callCtx, key, "holder-a"); err == nil {
			waitClosed(t, changed, "set while the connection was down")
		}
		callCancel()
	})

	t.Run("closing the Locker ends every watch", func(t *testing.T) {
		var changed <-chan struct{}
		eventually(t, 30*time.Second, "a watch after the connection came back", func() bool {
			c, err := l.Watch(ctx, key, "holder-a")
			if err != nil {
				return false
			}
			select {
			case <-c:
				return false // set while the link was still down
			default:
				changed = c
				return true
			}
		})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, changed, "after Close")
		eventually(t, 5*time.Second, "every watch goroutine ended", func() bool { return l.watching.Load() == 0 })
	})
}
