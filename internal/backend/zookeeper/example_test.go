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

package zookeeper_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/zookeeper"
)

// The controller takes a lock for a pod, renews it well within its TTL, and
// releases it when the pod is done. Curator's InterProcessMutex, go-zookeeper's
// zk.Lock and (with NodeNames Kazoo, or kazoo's extra_lock_patterns) kazoo's
// Lock on /distlock/shop/billing exclude the pod and are excluded by it. The
// pod keeps its place in line while it waits, and waits on a watch rather
// than by polling.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	locker, err := zookeeper.New(ctx, backend.Config{
		Servers:  []string{"zk-0.zk:2181", "zk-1.zk:2181", "zk-2.zk:2181"},
		Username: "distlock",
		Password: "s3cret",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer locker.Close()

	const key, holder, ttl = "/distlock/shop/billing", "shop/billing-7d9f-x2x4c", 30 * time.Second
	// lastToken is the highest fencing token seen for the key (0 at first).
	var lastToken int64
	acquire := func() (backend.Lease, error) {
		return locker.Acquire(ctx, key, holder, ttl, backend.WithQueue(), backend.WithMinToken(lastToken))
	}
	lease, err := acquire()
	for errors.Is(err, backend.ErrNotAcquired) {
		// lease.Queued: the place in line is kept for one TTL per Acquire.
		st, _ := locker.Inspect(ctx, key)
		fmt.Printf("waiting (queued %v) while %s holds (fencing token %d)\n", lease.Queued, st.Holder, st.Token)
		waitCtx, stop := context.WithTimeout(ctx, ttl/3)
		if changed, err := locker.(backend.Watcher).Watch(waitCtx, key, holder); err == nil {
			<-changed // the predecessor went, or ttl/3 passed: look again
		}
		stop()
		lease, err = acquire()
	}
	if err != nil {
		log.Fatal(err) // e.g. backend.ErrFencingRegressed: the ensemble's data was wiped
	}
	lastToken = lease.Token

	// Renew every ttl/3; the token stays the same for the whole hold.
	if lease, err = locker.Renew(ctx, lease, ttl); errors.Is(err, backend.ErrNotHeld) {
		fmt.Println("lost the lock")
		return
	}
	fmt.Printf("%s holds %s with fencing token %d\n", lease.Holder, lease.Key, lease.Token)

	if err := locker.Release(ctx, lease); err != nil {
		log.Fatal(err)
	}
}
