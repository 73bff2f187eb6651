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
	"testing"
	"time"
)

// outageLength is how long the tests keep the API server out of reach.
const outageLength = 8 * time.Second

// cutModes are the two ways an API server goes out of reach: refusing
// connections (kube-apiserver down) and swallowing them (a partition, or a
// hung API server), where only the call time-out tells.
var cutModes = map[string]func(*apiProxy){
	"connections refused": (*apiProxy).refuse,
	"no answer":           (*apiProxy).blackhole,
}

// TestDuringAnAPIServerOutageTheLeaderStopsLeadingButKeepsRenewingHolds cuts
// the only elector off the API server for outageLength: Leading turns false
// RenewDeadline after its last renewal, MayRenewHolds stays true all along,
// and after the heal it leads again promptly.
func TestDuringAnAPIServerOutageTheLeaderStopsLeadingButKeepsRenewingHolds(t *testing.T) {
	t.Parallel()
	for mode, cut := range cutModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			proxy := startAPIProxy(t)
			a := startElector(t, proxy.config(), leaseName(t), "a", nil)
			cfg := a.Config()
			receive(t, a.leads, cfg.FailoverBound()+slack, "the elector leads")

			cutAt := time.Now()
			cut(proxy)
			waitFor(t, cfg.RenewDeadline+slack, "Leading turns false in the outage", func() bool { return !a.Leading() })
			notLeading := time.Now()
			if since := notLeading.Sub(a.Status().LastRenewal); since < cfg.RenewDeadline {
				t.Errorf("Leading turned false %s after the last renewal, before RenewDeadline %s", since, cfg.RenewDeadline)
			}
			t.Logf("Leading turned false %s into the outage", notLeading.Sub(cutAt).Round(time.Millisecond))

			var samples int
			for time.Since(cutAt) < outageLength {
				samples++
				if s := a.Status(); !s.MayRenewHolds || s.Leading || s.Role != RoleOutage {
					t.Fatalf("%s into the outage: want an outage (not leading, may renew holds), got %s",
						time.Since(cutAt).Round(time.Millisecond), s)
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Logf("MayRenewHolds held in %d samples over %s; %s", samples, outageLength, a)

			healed := time.Now()
			proxy.heal()
			renewed := receive(t, a.leads, maxRetryInterval(cfg.RetryPeriod)+2*cfg.APICallTimeout+slack, "the elector leads again after the heal")
			t.Logf("leading again %s after the heal", renewed.Sub(healed).Round(time.Millisecond))
			if got := a.starts.Load(); got != 2 {
				t.Errorf("OnStartedLeading ran %d times, want 2 (at the start and after the outage)", got)
			}
			if len(a.deposals) != 0 {
				t.Errorf("deposed although nobody else took part: %v", <-a.deposals)
			}
		})
	}
}

// TestALeaderCutOffWhileAnotherTakesOverStopsRenewingHoldsAsSoonAsItSeesTheNewHolder
// cuts the leader off the API server long enough for a second elector,
// which reaches the API server directly, to take over; once healed, the
// first is deposed at its first look at the Lease, and the two never lead
// at once.
func TestALeaderCutOffWhileAnotherTakesOverStopsRenewingHoldsAsSoonAsItSeesTheNewHolder(t *testing.T) {
	t.Parallel()
	lease := leaseName(t)
	proxy := startAPIProxy(t)
	a := startElector(t, proxy.config(), lease, "a", nil)
	cfg := a.Config()
	receive(t, a.leads, cfg.FailoverBound()+slack, "the first elector leads")
	b := startElector(t, apiConfig, lease, "b", nil)
	watchOverlap(t, a, b)
	waitFor(t, cfg.FailoverBound(), "the second elector reads the Lease", func() bool { return !b.Status().LastAttempt.IsZero() })
	if b.Leading() || b.Status().Holder != a.Identity() {
		t.Fatalf("the second elector should stand by: %s", b)
	}

	cutAt := time.Now()
	proxy.refuse()
	acquired := receive(t, b.leads, cfg.FailoverBound()+cfg.RenewDeadline+slack, "the second elector takes over")
	t.Logf("the second elector took over %s after the cut, %s after the first's last renewal",
		acquired.Sub(cutAt).Round(time.Millisecond), acquired.Sub(a.Status().LastRenewal).Round(time.Millisecond))
	// Cut off, the first cannot know: it goes on renewing holds, which is
	// harmless (a renewal neither creates nor steals a hold).
	if s := a.Status(); s.Leading || !s.MayRenewHolds {
		t.Errorf("cut off, the first elector should be in an outage: %s", s)
	}
	time.Sleep(time.Until(cutAt.Add(outageLength)))

	healed := time.Now()
	proxy.heal()
	d := receive(t, a.deposals, maxRetryInterval(cfg.RetryPeriod)+2*cfg.APICallTimeout+slack, "the first elector is deposed")
	t.Logf("deposed %s after the heal: %s", d.at.Sub(healed).Round(time.Millisecond), a)
	if d.holder != b.Identity() {
		t.Errorf("deposed by %q, want %q", d.holder, b.Identity())
	}
	if d.mayRenewHolds {
		t.Errorf("MayRenewHolds was still true when OnDeposed ran")
	}
	// From then on the first neither leads nor renews, and the second leads.
	for end := time.Now().Add(4 * cfg.RetryPeriod); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if a.MayRenewHolds() || a.Leading() || !b.Leading() {
			t.Fatalf("after the deposal: first %s; second %s", a, b)
		}
	}
	if a.Status().Role != RoleDeposed {
		t.Errorf("role %s, want %s", a.Status().Role, RoleDeposed)
	}
	if holder, _ := leaseHolder(t, lease); holder != b.Identity() {
		t.Errorf("the Lease names %q, want %q", holder, b.Identity())
	}
}
