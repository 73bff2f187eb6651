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
	"sync"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/history"
)

// TestTheHarnessSeesALockBrokenOnPurpose runs a cell beside a program that
// ignores the lock: it enters lock-0's critical section whenever it likes,
// with a stale token, and one of its requests is never served. The run
// must report overlaps, token regressions and a stuck waiter, or a green
// table would prove nothing.
func TestTheHarnessSeesALockBrokenOnPurpose(t *testing.T) {
	scenario{name: "self-test: a program that ignores the lock", backends: redisOnly, selfTest: true,
		setup: func(ctx context.Context, ce *cell) error {
			ctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				lock := ce.lockNames()[0]
				ce.record(history.Event{Kind: history.Request, Lock: lock, Holder: "never-served"})
				for ctx.Err() == nil {
					ce.record(history.Event{Kind: history.Enter, Lock: lock, Holder: "ignorer", Token: 1})
					_ = sleep(ctx, 30*time.Millisecond)
					ce.record(history.Event{Kind: history.Exit, Lock: lock, Holder: "ignorer"})
					_ = sleep(ctx, 30*time.Millisecond)
				}
			}()
			ce.stoppers = append(ce.stoppers, func() { cancel(); wg.Wait() })
			return nil
		},
		inject: func(ctx context.Context, ce *cell) error { return sleep(ctx, time.Second) },
	}.run(t)
}
