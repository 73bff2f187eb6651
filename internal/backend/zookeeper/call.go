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
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	const (
		pending int32 = iota
		delivered
		givenUp
	)
	var state atomic.Int32
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
		if !state.CompareAndSwap(pending, delivered) && err == nil && abandoned != nil {
			abandoned(v)
		}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		if state.CompareAndSwap(pending, givenUp) {
			var zero T
			return zero, ctx.Err()
		}
		r := <-done // finished just now; its result is the caller's
		return r.v, r.err
	}
}
