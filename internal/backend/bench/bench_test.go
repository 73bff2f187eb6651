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
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/backend/bench"
	"github.com/distlock/distlock/internal/testservers"
)

// The servers are started by the first benchmark that needs them, so that
// `go test` without -bench starts nothing.
var (
	servers struct {
		sync.Mutex
		redis *testservers.Redis
		zk    *testservers.ZooKeeper
	}
)

func TestMain(m *testing.M) {
	code := m.Run()
	servers.Lock()
	if servers.redis != nil {
		_ = servers.redis.Stop()
	}
	if servers.zk != nil {
		_ = servers.zk.Stop()
	}
	servers.Unlock()
	os.Exit(code)
}

func redisAddr(b *testing.B) string {
	b.Helper()
	servers.Lock()
	defer servers.Unlock()
	if servers.redis == nil {
		r, err := testservers.StartRedis(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		servers.redis = r
	}
	return servers.redis.Addr
}

func zooKeeperAddr(b *testing.B) string {
	b.Helper()
	servers.Lock()
	defer servers.Unlock()
	if servers.zk == nil {
		z, err := testservers.StartZooKeeper(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		servers.zk = z
		if err := bench.PrepareZooKeeper(b.Context(), z.Addr); err != nil {
			b.Fatal(err)
		}
	}
	return servers.zk.Addr
}

// BenchmarkRedis runs acquire+release cycles of one client of each Redis
// library, on its own key.
func BenchmarkRedis(b *testing.B) {
	for _, lib := range bench.RedisLibraries {
		b.Run(lib.Name, func(b *testing.B) { benchmarkCycles(b, lib, redisAddr(b)) })
	}
}

// BenchmarkZooKeeper runs acquire+release cycles of one client of each
// ZooKeeper library, on its own key.
func BenchmarkZooKeeper(b *testing.B) {
	for _, lib := range bench.ZooKeeperLibraries {
		b.Run(lib.Name, func(b *testing.B) { benchmarkCycles(b, lib, zooKeeperAddr(b)) })
	}
}

func benchmarkCycles(b *testing.B, lib bench.Library, addr string) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	conn, err := lib.Connect(ctx, addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := conn.Client(0)
	key := fmt.Sprintf("gobench-%s-%d", b.Name(), time.Now().UnixNano())
	for range 100 { // warm up: scripts loaded, parents made
		if _, err := client.Cycle(ctx, key, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		held, err := client.Cycle(ctx, key, nil)
		if err != nil || !held {
			b.Fatalf("cycle: held %v, err %v", held, err)
		}
	}
}
