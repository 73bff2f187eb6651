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

package leader

import (
	"context"
	"sync"
)

// callbacks holds the registered callbacks.
type callbacks struct {
	mu      sync.Mutex
	started []func()
	deposed []func(holder string)
}

func (c *callbacks) addStarted(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.started = append(c.started, f)
}

func (c *callbacks) addDeposed(f func(holder string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deposed = append(c.deposed, f)
}

// run calls the callbacks registered for ev, in the order of registration.
func (c *callbacks) run(ev event) {
	c.mu.Lock()
	started, deposed := c.started, c.deposed
	c.mu.Unlock()
	switch ev.kind {
	case eventStartedLeading:
		for _, f := range started {
			f()
		}
	case eventDeposed:
		for _, f := range deposed {
			f(ev.holder)
		}
	}
}

// dispatch runs the callbacks for the tracker's events, one at a time and in
// order, until ctx ends.
func (e *Elector) dispatch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.tracker.eventsReady:
		}
		for _, ev := range e.tracker.takeEvents() {
			e.callbacks.run(ev)
		}
	}
}
