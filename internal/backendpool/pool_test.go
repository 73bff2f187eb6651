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
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// fakeLocker counts Close calls; the pool never calls anything else.
type fakeLocker struct {
	backend.Locker
	closed atomic.Int32
}

func (f *fakeLocker) Close() error { f.closed.Add(1); return nil }

var _ backend.Locker = &fakeLocker{}

var connects atomic.Int32

func init() {
	backend.Register("pool-test", func(_ context.Context, cfg backend.Config) (backend.Locker, error) {
		if len(cfg.Servers) == 0 {
			return nil, errors.New("no servers")
		}
		connects.Add(1)
		return &fakeLocker{}, nil
	})
}

func TestPoolSharesConnectionsByFingerprintAndClosesIdleOnes(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	p := &Pool{IdleTimeout: time.Minute, Now: func() time.Time { return now }}
	cfg := backend.Config{Servers: []string{"127.0.0.1:1"}}
	start := connects.Load()

	a, err := p.Get(ctx, "fp-1", "pool-test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Get(ctx, "fp-1", "pool-test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || connects.Load()-start != 1 {
		t.Fatalf("two Gets with one fingerprint connected %d times; want 1 shared connection", connects.Load()-start)
	}
	c, err := p.Get(ctx, "fp-2", "pool-test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c == a {
		t.Fatalf("a different fingerprint shared a connection")
	}

	now = now.Add(2 * time.Minute)
	if _, err := p.Get(ctx, "fp-2", "pool-test", cfg); err != nil { // touches fp-2 after closing idle ones
		t.Fatal(err)
	}
	if got := a.(*fakeLocker).closed.Load(); got != 1 {
		t.Errorf("idle connection closed %d times; want 1", got)
	}

	p.Forget("fp-2")
	if got := c.(*fakeLocker).closed.Load(); got != 1 {
		t.Errorf("forgotten connection closed %d times; want 1", got)
	}
	p.Close()
}

func TestPoolReportsUnknownBackendsAndConnectErrors(t *testing.T) {
	p := &Pool{}
	if _, err := p.Get(context.Background(), "x", "no-such-backend", backend.Config{}); err == nil {
		t.Errorf("Get with an unregistered backend succeeded")
	}
	if _, err := p.Get(context.Background(), "y", "pool-test", backend.Config{}); err == nil {
		t.Errorf("Get with a failing connect succeeded")
	}
}
