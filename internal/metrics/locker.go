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

package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// InstrumentLocker wraps l so that every call's latency is observed in
// BackendCallSeconds and every failure counted in BackendErrorsTotal, under
// the backend's name. A Locker that is a backend.Watcher stays one. Use it
// as backendpool.Pool.Wrap.
func InstrumentLocker(name string, l backend.Locker) backend.Locker {
	il := &instrumented{name: name, inner: l}
	w, canWatch := l.(backend.Watcher)
	b, canBatch := l.(backend.BatchRenewer)
	switch {
	case canWatch && canBatch:
		return &instrumentedWatchBatcher{instrumentedWatcher: &instrumentedWatcher{il, w}, batcher: b}
	case canWatch:
		return &instrumentedWatcher{instrumented: il, watcher: w}
	case canBatch:
		return &instrumentedBatcher{instrumented: il, batcher: b}
	default:
		return il
	}
}

type instrumented struct {
	name  string
	inner backend.Locker
}

var _ backend.Locker = (*instrumented)(nil)

// observe records one call that started at start and ended with err.
func (i *instrumented) observe(op string, start time.Time, err error) {
	BackendCallSeconds.WithLabelValues(i.name, op).Observe(time.Since(start).Seconds())
	if kind := errorKind(err); kind != "" {
		BackendErrorsTotal.WithLabelValues(i.name, op, kind).Inc()
	}
}

// errorKind classifies a backend error for the "kind" label; "" for a
// success or an outcome that is not a failure (held by another, not held).
func errorKind(err error) string {
	switch {
	case err == nil, errors.Is(err, backend.ErrNotAcquired), errors.Is(err, backend.ErrNotHeld):
		return ""
	case errors.Is(err, backend.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, backend.ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, backend.ErrFencingRegressed):
		return "fencing_regressed"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "other"
	}
}

func (i *instrumented) Acquire(ctx context.Context, key, holder string, ttl time.Duration,
	opts ...backend.AcquireOption) (backend.Lease, error) {
	start := time.Now()
	lease, err := i.inner.Acquire(ctx, key, holder, ttl, opts...)
	i.observe("acquire", start, err)
	return lease, err
}

func (i *instrumented) Renew(ctx context.Context, lease backend.Lease, ttl time.Duration) (backend.Lease, error) {
	start := time.Now()
	renewed, err := i.inner.Renew(ctx, lease, ttl)
	i.observe("renew", start, err)
	return renewed, err
}

func (i *instrumented) Release(ctx context.Context, lease backend.Lease) error {
	start := time.Now()
	err := i.inner.Release(ctx, lease)
	i.observe("release", start, err)
	return err
}

func (i *instrumented) Inspect(ctx context.Context, key string) (backend.State, error) {
	start := time.Now()
	st, err := i.inner.Inspect(ctx, key)
	i.observe("inspect", start, err)
	return st, err
}

func (i *instrumented) Purge(ctx context.Context, key string) error {
	start := time.Now()
	err := i.inner.Purge(ctx, key)
	i.observe("purge", start, err)
	return err
}

func (i *instrumented) Close() error { return i.inner.Close() }

type instrumentedWatcher struct {
	*instrumented
	watcher backend.Watcher
}

var _ backend.Watcher = (*instrumentedWatcher)(nil)

func (i *instrumentedWatcher) Watch(ctx context.Context, key, holder string) (<-chan struct{}, error) {
	start := time.Now()
	ch, err := i.watcher.Watch(ctx, key, holder)
	i.observe("watch", start, err)
	return ch, err
}

type instrumentedBatcher struct {
	*instrumented
	batcher backend.BatchRenewer
}

var _ backend.BatchRenewer = (*instrumentedBatcher)(nil)

func (i *instrumentedBatcher) RenewBatch(ctx context.Context, renewals []backend.Renewal) {
	renewBatch(ctx, i.instrumented, i.batcher, renewals)
}

type instrumentedWatchBatcher struct {
	*instrumentedWatcher
	batcher backend.BatchRenewer
}

var (
	_ backend.BatchRenewer = (*instrumentedWatchBatcher)(nil)
	_ backend.Watcher      = (*instrumentedWatchBatcher)(nil)
)

func (i *instrumentedWatchBatcher) RenewBatch(ctx context.Context, renewals []backend.Renewal) {
	renewBatch(ctx, i.instrumented, i.batcher, renewals)
}

// renewBatch times one batch (op "renew_batch") and counts each renewal's
// failure under op "renew".
func renewBatch(ctx context.Context, i *instrumented, b backend.BatchRenewer, renewals []backend.Renewal) {
	start := time.Now()
	b.RenewBatch(ctx, renewals)
	BackendCallSeconds.WithLabelValues(i.name, "renew_batch").Observe(time.Since(start).Seconds())
	for _, r := range renewals {
		if kind := errorKind(r.Err); kind != "" {
			BackendErrorsTotal.WithLabelValues(i.name, "renew", kind).Inc()
		}
	}
}
