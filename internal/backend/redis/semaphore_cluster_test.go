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

package redis_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/redis"
	"github.com/distlock/distlock/internal/testservers"
)

// On a Redis Cluster the semaphore's acquire script touches the semaphore
// and its counter: they share a slot whether or not the key has a hash tag,
// and the outside recipe works there with the counter name of the package
// doc.
func TestClusterSemaphore(t *testing.T) {
	t.Parallel()
	c := testservers.NewRedisCluster(t)
	ctx := ctxFor(t, 60*time.Second)
	l, raw := connectCluster(t, c), newRawClusterClient(t, c)
	batcher, ok := l.(backend.BatchRenewer)
	if !ok {
		t.Fatalf("the Redis locker does not renew in batches")
	}
	outsideAcquire := goredis.NewScript(redis.OutsideSemaphoreAcquire)

	tests := map[string]struct{ key, counter string }{
		"a key with a hash tag":    {key: "locks:{pool}:workers", counter: "locks:{pool}:workers:fencing"},
		"a key without a hash tag": {key: "distlock/ns/pool", counter: "{distlock/ns/pool}:fencing"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var renewals []backend.Renewal
			for i := range 2 {
				lease, err := l.Acquire(ctx, tc.key, fmt.Sprintf("pod-%d", i), time.Minute, backend.WithLimit(3))
				if err != nil {
					t.Fatalf("Acquire(%q, pod-%d, limit 3): %v", tc.key, i, err)
				}
				renewals = append(renewals, backend.Renewal{Lease: lease, TTL: time.Minute})
			}
			member, err := outsideAcquire.Run(ctx, raw, []string{tc.key, tc.counter}, "batch-job", 60000, 3).Text()
			if err != nil || !strings.HasPrefix(member, "batch-job;fence=") {
				t.Fatalf("outside acquire on the cluster = %q, %v; want batch-job's hold", member, err)
			}
			if _, err := l.Acquire(ctx, tc.key, "pod-x", time.Minute, backend.WithLimit(3)); !errors.Is(err, backend.ErrNotAcquired) {
				t.Fatalf("Acquire of a full semaphore: err = %v; want ErrNotAcquired", err)
			}
			if v, err := raw.Get(ctx, tc.counter).Int64(); err != nil || member != fmt.Sprintf("batch-job;fence=%d", v) {
				t.Fatalf("GET %q = %d, %v; want the outside hold's token (member %q)", tc.counter, v, err, member)
			}
			st, err := l.Inspect(ctx, tc.key)
			if err != nil || len(st.Holds) != 3 || st.Holds[0].Token != renewals[0].Lease.Token || st.Holds[2].Holder != "batch-job" {
				t.Fatalf("Inspect(%q) = %+v, %v; want pod-0, pod-1 and batch-job", tc.key, st, err)
			}
			if err := l.Release(ctx, renewals[1].Lease); err != nil {
				t.Fatalf("Release: %v", err)
			}
			batcher.RenewBatch(ctx, renewals)
			if err := renewals[0].Err; err != nil {
				t.Errorf("batch renewal of pod-0's permit: %v", err)
			}
			if err := renewals[1].Err; !errors.Is(err, backend.ErrNotHeld) {
				t.Errorf("batch renewal of pod-1's released permit: err = %v; want ErrNotHeld", err)
			}
			if _, err := l.Acquire(ctx, tc.key, "pod-x", time.Minute, backend.WithLimit(3)); err != nil {
				t.Fatalf("Acquire after a release: %v", err)
			}
		})
	}
}
