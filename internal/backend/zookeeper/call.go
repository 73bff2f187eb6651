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
	"sync/atomic"
)

// call runs fn, one blocking go-zookeeper request, and waits for it at most
// until ctx ends, then returns ctx.Err(). The request then goes on in the
// background (go-zookeeper fails it at the latest when the session times
// out); when it succeeds after all, abandoned, if not nil, is called with
// its result, to undo it.
func call[T any](ctx context.Context, fn func() (T, error), abandoned func(T)) (T, error) {
	return start(ctx, fn, abandoned).wait(ctx)
}

// future is one go-zookeeper request running in the background, so that
// several can be in flight at once on the connection (go-zookeeper
// pipelines the requests of concurrent callers).
type future[T any] struct {
	done      chan struct{}
	v         T
	err       error
	state     atomic.Int32
	abandoned func(T)
}

const (
	pending int32 = iota
	delivered
	givenUp
)

// start runs fn in the background. When ctx has ended already, it does not
// run fn and the future fails with ctx.Err(). abandoned is as for call.
func start[T any](ctx context.Context, fn func() (T, error), abandoned func(T)) *future[T] {
	f := &future[T]{done: make(chan struct{}), abandoned: abandoned}
	if err := ctx.Err(); err != nil {
		f.err = err
		f.state.Store(delivered)
		close(f.done)
		return f
	}
	go func() {
		v, err := fn()
		f.v, f.err = v, err
		close(f.done)
		if !f.state.CompareAndSwap(pending, delivered) && err == nil && abandoned != nil {
			abandoned(v)
		}
	}()
	return f
}

// wait returns the request's result, or ctx.Err() once ctx ends first;
// the request is then abandoned (see call).
func (f *future[T]) wait(ctx context.Context) (T, error) {
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		if f.state.CompareAndSwap(pending, givenUp) {
			var zero T
			return zero, ctx.Err()
		}
		<-f.done // finished just now; its result is the caller's
		return f.v, f.err
	}
}

// abandon gives the request up without waiting: its result, now or when it
// comes, goes to abandoned.
func (f *future[T]) abandon() {
	if f.state.CompareAndSwap(pending, givenUp) {
		return
	}
	<-f.done
	if f.state.CompareAndSwap(delivered, givenUp) && f.err == nil && f.abandoned != nil {
		f.abandoned(f.v)
	}
}

// step is one request of an ordered pipeline (inOrder).
type step struct {
	// op and path name the request on the wire, for the tap.
	op   int32
	path string
	// run starts the request (with start) and returns its done channel.
	run func() <-chan struct{}
}

// inOrder starts steps one after another, each once the one before it has
// been handed to the connection (or answered, or ctx ended), so that the
// server executes them in this order and they take about one round trip
// together. It returns once every step has started; each step's future
// holds its result. Without the tap's signal (a connection being
// replaced), a step waits for the answer to the one before it.
func (l *locker) inOrder(ctx context.Context, steps ...step) {
	for i, s := range steps {
		if i == len(steps)-1 {
			s.run()
			return
		}
		sent, stop := l.tap.expectSent(s.op, s.path)
		done := s.run()
		select {
		case <-sent:
		case <-done:
		case <-ctx.Done():
		}
		stop()
	}
}
