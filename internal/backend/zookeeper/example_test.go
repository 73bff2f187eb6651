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
// releases it when the pod is done. Curator's InterProcessMutex and
// go-zookeeper's zk.Lock on /distlock/shop/billing exclude the pod and are
// excluded by it.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
	lease, err := locker.Acquire(ctx, key, holder, ttl)
	switch {
	case errors.Is(err, backend.ErrNotAcquired):
		st, _ := locker.Inspect(ctx, key)
		fmt.Printf("busy: held by %s (fencing token %d)\n", st.Holder, st.Token)
		return
	case err != nil:
		log.Fatal(err)
	}

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
