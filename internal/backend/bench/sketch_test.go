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

package bench_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/uuid"

	"github.com/distlock/distlock/internal/backend/bench"
)

// BenchmarkZooKeeperSketch measures, for the record, what a leaner
// acquire+release protocol on the same TTL nodes would cost, to size the
// change docs/performance.md recommends. It is not distlock's backend:
//
//   - every hold gets a node name of its own (a fresh UUID per hold, as
//     Curator and zk.Lock do), so Release is one delete by name: no listing
//     and no Czxid check are needed to be sure it is this hold's node;
//   - the lock node is kept (the server's container reaper removes it once
//     it stays empty), so no cycle creates or deletes it;
//   - Acquire is create, then list (is it first?) and exists (its Czxid,
//     the fencing token; go-zookeeper's create does not return the Stat the
//     server sends).
//
// "precheck" lists the children before creating (what makes a failed
// try-once attempt one read); "pipelined" sends the list and the exists at
// once. Compare with BenchmarkZooKeeper/zk.Lock (3 requests).
func BenchmarkZooKeeperSketch(b *testing.B) {
	for _, v := range []struct {
		name                string
		precheck, pipelined bool
	}{
		{"precheck", true, false},
		{"no-precheck", false, false},
		{"no-precheck-pipelined", false, true},
	} {
		b.Run(v.name, func(b *testing.B) {
			addr := zooKeeperAddr(b)
			conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			path := bench.ZooKeeperPath(fmt.Sprintf("sketch-%s-%d", v.name, time.Now().UnixNano()))
			// Persistent here, so that the reaper cannot take it between two
			// cycles; a real backend would make a container and create it
			// again when a create finds it gone.
			if _, err := conn.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
				b.Fatal(err)
			}
			cycle := func() {
				if v.precheck {
					children, _, err := conn.Children(path)
					if err != nil || len(children) > 0 {
						b.Fatalf("precheck: %v %v", children, err)
					}
				}
				name, err := conn.CreateTTL(path+"/_c_"+uuid.NewString()+"-lock-", []byte("holder"),
					zk.FlagPersistentSequentialWithTTL, zk.WorldACL(zk.PermAll), bench.TTL)
				if err != nil {
					b.Fatal(err)
				}
				var children []string
				var stat *zk.Stat
				var childrenErr, statErr error
				list := func() { children, _, childrenErr = conn.Children(path) }
				exists := func() { _, stat, statErr = conn.Exists(name) }
				if v.pipelined {
					var wg sync.WaitGroup
					wg.Go(list)
					exists()
					wg.Wait()
				} else {
					list()
					exists()
				}
				if childrenErr != nil || statErr != nil || stat.Czxid == 0 {
					b.Fatalf("list: %v, exists: %v", childrenErr, statErr)
				}
				first := slices.MinFunc(children, func(x, y string) int { return strings.Compare(x[len(x)-10:], y[len(y)-10:]) })
				if !strings.HasSuffix(name, "/"+first) {
					b.Fatalf("%s is not first in %v", name, children)
				}
				if err := conn.Delete(name, -1); err != nil {
					b.Fatal(err)
				}
			}
			for range 100 {
				cycle()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				cycle()
			}
		})
	}
}
