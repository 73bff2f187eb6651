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

package keeper

import (
	"context"
	"sync"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// Batching of renewals. Renewals are scheduled on a grid of renewTick (a
// hold is renewed up to one tick early, never late), so that holds of one
// connection fall due together; a batcher collects the renewals that arrive
// within batchWindow of the first and sends them in one round trip
// (backend.BatchRenewer: a Redis pipeline). At 1,000 holds with a 10s lease
// that is about 10 round trips a second instead of 300.
const (
	renewTick   = 100 * time.Millisecond
	batchWindow = 10 * time.Millisecond
	maxBatch    = 500
)

// alignDown rounds t down to the renewal grid.
func alignDown(t time.Time) time.Time { return t.Truncate(renewTick) }

// renewFunc renews one hold: Locker.Renew, or a batcher's renew.
type renewFunc func(ctx context.Context, lease backend.Lease, ttl time.Duration) (backend.Lease, error)

// batcher sends the renewals of one connection in batches.
type batcher struct {
	renewer backend.BatchRenewer
	timeout time.Duration

	mu      sync.Mutex
	pending []*batchRequest
	timer   *time.Timer
	refs    int // holds using it (guarded by the Keeper's lock)
}

type batchRequest struct {
	renewal backend.Renewal
	done    chan struct{}
}

// renew queues one renewal and waits for its batch, or for ctx.
func (b *batcher) renew(ctx context.Context, lease backend.Lease, ttl time.Duration) (backend.Lease, error) {
	req := &batchRequest{renewal: backend.Renewal{Lease: lease, TTL: ttl}, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, req)
	switch {
	case len(b.pending) >= maxBatch:
		if b.timer != nil {
			b.timer.Stop()
			b.timer = nil
		}
		go b.flush()
	case len(b.pending) == 1:
		b.timer = time.AfterFunc(batchWindow, b.flush)
	}
	b.mu.Unlock()
	select {
	case <-req.done:
		return req.renewal.Renewed, req.renewal.Err
	case <-ctx.Done():
		return backend.Lease{}, ctx.Err() // the batch's answer for it is dropped
	}
}

// flush sends the pending renewals in one batch.
func (b *batcher) flush() {
	b.mu.Lock()
	batch := b.pending
	b.pending, b.timer = nil, nil
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	renewals := make([]backend.Renewal, len(batch))
	for i, req := range batch {
		renewals[i] = req.renewal
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	b.renewer.RenewBatch(ctx, renewals)
	cancel()
	for i, req := range batch {
		req.renewal = renewals[i]
		close(req.done)
	}
}

// batchers hands out one batcher per connection (by its Locker), counting
// the holds that use it.
type batchers struct {
	timeout time.Duration

	mu sync.Mutex
	by map[backend.Locker]*batcher
}

// renewFor returns how to renew over l, and a function to call when the
// hold no longer uses it.
func (bs *batchers) renewFor(l backend.Locker) (renewFunc, func()) {
	renewer, ok := l.(backend.BatchRenewer)
	if !ok {
		return l.Renew, func() {}
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.by == nil {
		bs.by = map[backend.Locker]*batcher{}
	}
	b := bs.by[l]
	if b == nil {
		b = &batcher{renewer: renewer, timeout: bs.timeout}
		bs.by[l] = b
	}
	b.refs++
	var once sync.Once
	return b.renew, func() {
		once.Do(func() {
			bs.mu.Lock()
			defer bs.mu.Unlock()
			if b.refs--; b.refs == 0 {
				delete(bs.by, l)
			}
		})
	}
}
