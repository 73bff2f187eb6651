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

package backendpool

import (
	"errors"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
	_ "github.com/distlock/distlock/internal/backend/redis" // registers "redis"
	"github.com/distlock/distlock/internal/testservers"
)

// A hung Redis server (a listener that accepts and never answers) fails the
// first Get after the backend's own timeouts, is answered from memory
// within the back-off, and never delays a Get for a healthy real server
// made meanwhile.
func TestAHungRedisFailsFastFromMemoryAndDoesNotDelayAHealthyOne(t *testing.T) {
	hung := testservers.NewBlackhole(t)
	healthy := testservers.NewRedis(t)
	p := &Pool{}
	defer p.Close()
	hungCfg := backend.Config{Servers: []string{hung.Addr}, DialTimeout: time.Second}

	type result struct {
		err  error
		took time.Duration
	}
	firstDone := make(chan result, 1)
	go func() {
		start := time.Now()
		r, err := p.Get(ctxFor(t, 20*time.Second), "hung", "redis", hungCfg)
		if r != nil {
			r.Close()
		}
		firstDone <- result{err, time.Since(start)}
	}()
	if err := hung.WaitAccepted(ctxFor(t, 5*time.Second), 1); err != nil {
		t.Fatal(err)
	}

	// The hung dial is under way (connected, waiting for a reply): a Get for
	// the healthy server must not wait for it.
	start := time.Now()
	ref, err := p.Get(ctxFor(t, time.Second), "healthy", "redis", backend.Config{Servers: []string{healthy.Addr}})
	healthyTook := time.Since(start)
	if err != nil {
		t.Fatalf("Get for a healthy server while another dial hangs: %v", err)
	}
	defer ref.Close()
	if _, err := ref.Locker().Inspect(ctxFor(t, time.Second), "backendpool-test"); err != nil {
		t.Fatalf("Inspect on the healthy server: %v", err)
	}
	select {
	case res := <-firstDone:
		t.Fatalf("the hung dial ended (%v after %v) before the healthy Get was checked; the test proves nothing", res.err, res.took)
	default:
	}
	if healthyTook > 500*time.Millisecond {
		t.Errorf("Get for a healthy server took %v while another dial hung; want it prompt", healthyTook)
	}

	first := <-firstDone
	if !errors.Is(first.err, backend.ErrUnreachable) {
		t.Fatalf("first Get for the hung server: err = %v; want ErrUnreachable", first.err)
	}
	if first.took > 10*time.Second {
		t.Errorf("first Get for the hung server took %v; want it bounded by the backend's timeouts", first.took)
	}

	start = time.Now()
	_, err = p.Get(ctxFor(t, 5*time.Second), "hung", "redis", hungCfg)
	rememberedTook := time.Since(start)
	var de *DialError
	if !errors.Is(err, backend.ErrUnreachable) || !errors.As(err, &de) {
		t.Fatalf("second Get for the hung server: err = %v; want a *DialError wrapping ErrUnreachable", err)
	}
	if rememberedTook > 100*time.Millisecond {
		t.Errorf("second Get within the back-off took %v; want well under 100ms", rememberedTook)
	}
	if n := hung.Accepted(); n == 0 || !de.RetryAt.After(time.Now()) {
		t.Errorf("accepted %d connections, RetryAt %v; want the second Get answered from memory", n, de.RetryAt)
	}
	t.Logf("healthy Get during the hung dial: %v; first hung Get: %v; remembered failure: %v; error: %v",
		healthyTook, first.took, rememberedTook, err)
}
