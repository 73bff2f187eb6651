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
	"math/rand/v2"
	"testing"
	"time"
)

// TestOfTwoElectorsExactlyOneLeadsAndAReleasedLeaseIsTakenOverWithinARetryInterval
// runs two electors on one Lease, then cancels the leader's context: it
// stops Leading at once, releases the Lease after StepDownDelay, and the
// other leads within one jittered retry interval of the release.
func TestOfTwoElectorsExactlyOneLeadsAndAReleasedLeaseIsTakenOverWithinARetryInterval(t *testing.T) {
	t.Parallel()
	lease := leaseName(t)
	a := startElector(t, apiConfig, lease, "a", nil)
	b := startElector(t, apiConfig, lease, "b", nil)
	watchOverlap(t, a, b)
	cfg := a.Config()

	waitFor(t, cfg.FailoverBound()+slack, "one of two electors leads", func() bool { return a.Leading() || b.Leading() })
	// Several renewal periods with both running: still exactly one leads.
	time.Sleep(4 * cfg.RetryPeriod)
	leader, standby := a, b
	if b.Leading() {
		leader, standby = b, a
	}
	if !leader.Leading() || standby.Leading() {
		t.Fatalf("want exactly one leader; a: %s; b: %s", a, b)
	}
	if standby.MayRenewHolds() {
		t.Fatalf("the standby may renew holds: %s", standby)
	}
	holder, _ := leaseHolder(t, lease)
	if holder != leader.Identity() {
		t.Fatalf("the Lease names %q, want the leader %q", holder, leader.Identity())
	}

	cancelled := time.Now()
	leader.cancel()
	waitFor(t, 100*time.Millisecond, "the cancelled leader stops Leading", func() bool { return !leader.Leading() })
	if !leader.MayRenewHolds() {
		t.Errorf("while stepping down, the leader still holds the election Lease and may renew holds: %s", leader)
	}
	receive(t, leader.done, cfg.StepDownDelay()+cfg.RenewDeadline+slack, "the cancelled leader's Start returns")
	released := time.Now()
	if leader.MayRenewHolds() || leader.Status().Role != RoleStopped {
		t.Errorf("after Start returned: %s", leader)
	}
	if stepDown := released.Sub(cancelled); stepDown < cfg.StepDownDelay() {
		t.Errorf("the leader released the Lease %s after its context ended, before StepDownDelay %s", stepDown, cfg.StepDownDelay())
	}

	acquired := receive(t, standby.leads, maxRetryInterval(cfg.RetryPeriod)+slack, "the standby leads after the release")
	handover := acquired.Sub(released)
	t.Logf("handover: the standby acquired %s after the release, %s after the leader's context was cancelled (bound %s)",
		handover.Round(time.Millisecond), acquired.Sub(cancelled).Round(time.Millisecond), cfg.HandoverBound())
	// Without the release the standby would wait out LeaseDuration.
	if handover > maxRetryInterval(cfg.RetryPeriod)+slack/2 {
		t.Errorf("handover took %s, want at most 2.2×RetryPeriod (%s) + %s", handover, maxRetryInterval(cfg.RetryPeriod), slack/2)
	}
	if holder, _ := leaseHolder(t, lease); holder != standby.Identity() {
		t.Errorf("the Lease names %q, want the new leader %q", holder, standby.Identity())
	}
}

// TestALeaderThatCrashesIsReplacedWithinTheFailoverBound kills the leader
// five times as kill -9 would (no release) and measures, each time, how
// long after the dead leader's last renewal a standby led: never before
// LeaseDuration, never after Config.FailoverBound (plus slack).
func TestALeaderThatCrashesIsReplacedWithinTheFailoverBound(t *testing.T) {
	t.Parallel()
	lease := leaseName(t)
	leader := startElector(t, apiConfig, lease, "e0", nil)
	cfg := leader.Config()
	receive(t, leader.leads, cfg.FailoverBound()+slack, "the first elector leads")
	var worst time.Duration
	for round := 1; round <= 5; round++ {
		standby := startElector(t, apiConfig, lease, "e"+string(rune('0'+round)), nil)
		watch := watchOverlap(t, leader, standby)
		// Crash at a random phase of the renewal period.
		time.Sleep(cfg.RetryPeriod + rand.N(cfg.RetryPeriod))
		crashed := time.Now()
		leader.crash()

		acquired := receive(t, standby.leads, cfg.FailoverBound()+slack, "a standby leads after the leader crashed")
		lastRenewal := leader.Status().LastRenewal
		takeover := acquired.Sub(lastRenewal)
		t.Logf("round %d: the standby acquired %s after the dead leader's last renewal, %s after the crash (bound %s)",
			round, takeover.Round(time.Millisecond), acquired.Sub(crashed).Round(time.Millisecond), cfg.FailoverBound())
		if takeover < cfg.LeaseDuration {
			t.Errorf("round %d: the standby took over %s after the last renewal, before LeaseDuration %s",
				round, takeover, cfg.LeaseDuration)
		}
		if takeover > cfg.FailoverBound()+slack {
			t.Errorf("round %d: takeover took %s, want at most %s + %s", round, takeover, cfg.FailoverBound(), slack)
		}
		worst = max(worst, takeover)
		watch.stop()
		leader = standby
	}
	t.Logf("slowest takeover: %s", worst.Round(time.Millisecond))
}
