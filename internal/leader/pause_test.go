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
	"sync/atomic"
	"testing"
	"time"
)

// pauser simulates a pause of the whole process at the worst moments:
// armed, it stops the elector at its next renewal (an Update of the Lease),
// either after the call's start is stamped and before the request goes out,
// or after the answer came and before it is recorded, until resume.
type pauser struct {
	afterAnswer bool
	armed       atomic.Bool
	paused      chan time.Time
	resumed     chan struct{}
}

func newPauser(afterAnswer bool) *pauser {
	return &pauser{afterAnswer: afterAnswer, paused: make(chan time.Time, 1), resumed: make(chan struct{})}
}

func (p *pauser) hook(h *testHooks) {
	pause := func(op string) {
		if op == "update" && p.armed.CompareAndSwap(true, false) {
			p.paused <- time.Now()
			<-p.resumed
		}
	}
	if p.afterAnswer {
		h.afterCall = pause
	} else {
		h.beforeCall = pause
	}
}

// TestALeaderResumingFromAPauseActsOnNothingUntilItHasAskedTheAPIServer
// pauses the leader's election loop while a standby takes over, and while
// nobody does.
func TestALeaderResumingFromAPauseActsOnNothingUntilItHasAskedTheAPIServer(t *testing.T) {
	t.Parallel()

	// With a standby: the resumed leader, deposed meanwhile, must not lead,
	// must not renew holds, must not release the new leader's Lease, and is
	// told it was deposed.
	for name, afterAnswer := range map[string]bool{
		"replaced during a pause before a renewal went out":    false,
		"replaced during a pause after a renewal was answered": true,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lease := leaseName(t)
			p := newPauser(afterAnswer)
			a := startElector(t, apiConfig, lease, "a", p.hook)
			cfg := a.Config()
			receive(t, a.leads, cfg.FailoverBound()+slack, "the first elector leads")
			b := startElector(t, apiConfig, lease, "b", nil)
			watchOverlap(t, a, b)

			p.armed.Store(true)
			pausedAt := receive(t, p.paused, 2*cfg.RetryPeriod+slack, "the leader's next renewal")
			receive(t, b.leads, cfg.FailoverBound()+slack, "the standby takes over from the paused leader")
			_, transitions := leaseHolder(t, lease)

			// The instant the process resumes, before any answer is recorded.
			t.Logf("resuming after a pause of %s", time.Since(pausedAt).Round(time.Millisecond))
			if s := a.Status(); s.Leading || s.MayRenewHolds {
				t.Fatalf("on resume: %s", s)
			}
			close(p.resumed)

			d := receive(t, a.deposals, cfg.RenewDeadline+maxRetryInterval(cfg.RetryPeriod)+slack,
				"the resumed leader learns it was deposed")
			if d.holder != b.Identity() || d.mayRenewHolds {
				t.Errorf("deposal: %+v, want holder %q and MayRenewHolds false", d, b.Identity())
			}
			for end := time.Now().Add(4 * cfg.RetryPeriod); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				if a.Leading() || a.MayRenewHolds() || !b.Leading() {
					t.Fatalf("after the resume: first %s; second %s", a, b)
				}
			}
			// client-go alone would have released b's Lease by now: it checks
			// that the Lease is its own against what it saw before the pause.
			holder, after := leaseHolder(t, lease)
			if holder != b.Identity() || after != transitions {
				t.Errorf("the Lease names %q after %d transitions, want %q after %d", holder, after, b.Identity(), transitions)
			}
			if a.starts.Load() != 1 {
				t.Errorf("the resumed leader started leading again")
			}
		})
	}

	// Alone: a pause longer than RenewDeadline ends Leading and
	// MayRenewHolds the same; the answers after the resume bring leadership
	// back.
	t.Run("alone", func(t *testing.T) {
		t.Parallel()
		p := newPauser(false)
		a := startElector(t, apiConfig, leaseName(t), "a", p.hook)
		cfg := a.Config()
		receive(t, a.leads, cfg.FailoverBound()+slack, "the elector leads")

		p.armed.Store(true)
		pausedAt := receive(t, p.paused, 2*cfg.RetryPeriod+slack, "the leader's next renewal")
		waitFor(t, cfg.RenewDeadline+slack, "Leading ends during the pause", func() bool { return !a.Leading() })
		// Pause well past RenewDeadline, not past LeaseDuration.
		time.Sleep(time.Until(pausedAt.Add(cfg.RenewDeadline + cfg.RetryPeriod)))
		if s := a.Status(); s.Leading || s.MayRenewHolds {
			t.Fatalf("on resume after %s: %s", time.Since(pausedAt).Round(time.Millisecond), s)
		}
		close(p.resumed)
		receive(t, a.leads, cfg.RenewDeadline+maxRetryInterval(cfg.RetryPeriod)+slack, "the elector leads again after the resume")
		if len(a.deposals) != 0 {
			t.Errorf("deposed although nobody else took part")
		}
	})
}
