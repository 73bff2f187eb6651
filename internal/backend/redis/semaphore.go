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

package redis

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// The semaphore recipe (backend.WithLimit(n), n >= 2): see the package doc.

// acquireSemaphore takes a permit of the semaphore at key, of limit
// permits, for holder, or confirms the one holder already has (its token
// kept, its expiry set to ttl from now). counter and floor are as for the
// mutex.
func (l *locker) acquireSemaphore(ctx context.Context, key, counter, holder string,
	ttl time.Duration, floor int64, limit int,
) (backend.Lease, error) {
	reply, err := acquireSemaphoreScript.Run(ctx, l.client, []string{key, counter},
		holder+fenceSep, ttl.Milliseconds(), strconv.FormatInt(floor, 10), limit).Slice()
	if err != nil {
		return backend.Lease{}, l.wrap(ctx, "acquire", key, err)
	}
	taken, value, n, err := acquireReply(reply)
	if err != nil {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q: %w", key, err)
	}
	switch taken {
	case 1:
		return leaseOf(key, holder, value, n)
	case 0:
		return backend.Lease{}, fmt.Errorf("redis: acquire %q for %q: %d of %d permits held: %w",
			key, holder, n, limit, backend.ErrNotAcquired)
	case -1:
		return backend.Lease{}, regressed(key, holder, floor)
	case 2:
		return backend.Lease{}, fmt.Errorf("redis: acquire %q for %q with limit %d: held by a mutex holder, %s: %w",
			key, holder, limit, describe(parseValue(value, n)), backend.ErrNotAcquired)
	}
	return backend.Lease{}, fmt.Errorf("redis: acquire %q: unexpected reply %v", key, reply)
}

// parseHolds turns the inspect script's reply for a semaphore, member and
// remaining TTL in milliseconds by turns, into a State: every hold, by
// token ascending (ties, such as outside programs' tokenless holds with
// token 0, by holder), the first one's also in Holder, Token and TTL.
// Members are read as mutex values are (parseValue): one without the form
// "<holder>;fence=<token>" is an outside program's, with Holder the raw
// member and Token 0.
func parseHolds(pairs []any) (backend.State, error) {
	if len(pairs) == 0 || len(pairs)%2 != 0 {
		return backend.State{}, fmt.Errorf("unexpected holds %v", pairs)
	}
	holds := make([]backend.Hold, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		member, ok1 := pairs[i].(string)
		ttl, ok2 := pairs[i+1].(int64)
		if !ok1 || !ok2 {
			return backend.State{}, fmt.Errorf("unexpected hold %v, %v", pairs[i], pairs[i+1])
		}
		st := parseValue(member, ttl)
		holds = append(holds, backend.Hold{Holder: st.Holder, Token: st.Token, TTL: st.TTL})
	}
	slices.SortFunc(holds, func(a, b backend.Hold) int {
		return cmp.Or(cmp.Compare(a.Token, b.Token), cmp.Compare(a.Holder, b.Holder))
	})
	first := holds[0]
	return backend.State{Held: true, Holder: first.Holder, Token: first.Token, TTL: first.TTL, Holds: holds}, nil
}
