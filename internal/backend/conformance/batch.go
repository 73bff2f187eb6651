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

package conformance

import (
	"errors"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// testRenewBatch checks that RenewBatch is Renew for many holds at once:
// every live hold is renewed with its token, a released one is reported
// lost and not taken again, and a Lease rebuilt without its backend data
// (after a restart) renews too. That a renewal pushes the expiry out is
// testRenewal's business (and the backends' own batch tests').
func testRenewBatch(t *testing.T, h Harness) {
	ctx := ctxFor(t, time.Minute)
	l := h.locker(t)
	batcher, ok := l.(backend.BatchRenewer)
	if !ok {
		t.Fatalf("the locker (%T) does not implement backend.BatchRenewer", l)
	}
	const holder = "batch-holder"
	renewals := make([]backend.Renewal, 0, 5)
	for range cap(renewals) {
		lease := mustAcquire(ctx, t, l, h.key(), holder, h.TTL)
		renewals = append(renewals, backend.Renewal{Lease: lease, TTL: h.TTL})
	}
	const released, rebuilt = 1, 3
	if err := l.Release(ctx, renewals[released].Lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
	r := renewals[rebuilt].Lease
	renewals[rebuilt].Lease = backend.Lease{Key: r.Key, Holder: r.Holder, Token: r.Token, TTL: r.TTL}

	batcher.RenewBatch(ctx, renewals)
	for i, rn := range renewals {
		switch {
		case i == released:
			if !errors.Is(rn.Err, backend.ErrNotHeld) {
				t.Errorf("renewal of the released hold: err = %v; want ErrNotHeld", rn.Err)
			}
			wantFree(ctx, t, l, rn.Lease.Key)
		case rn.Err != nil:
			t.Errorf("renewal %d: %v", i, rn.Err)
		case rn.Renewed.Token != rn.Lease.Token || rn.Renewed.Holder != holder || rn.Renewed.TTL <= 0:
			t.Errorf("renewal %d = %+v; want %s's hold with token %d and a TTL", i, rn.Renewed, holder, rn.Lease.Token)
		default:
			wantHeldBy(ctx, t, l, rn.Lease.Key, holder)
		}
	}
}
