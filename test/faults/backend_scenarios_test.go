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

package faults

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/testservers"
)

var (
	redisOnly = []string{redisBackend}
	zkOnly    = []string{zkBackend}
)

// Scenario 3: redis-server.

func TestRedisKilledAndRestartedWithPersistence(t *testing.T) {
	scenario{name: "redis kill -9 and restart, appendonly fsync always", backends: redisOnly,
		spec: cellSpec{redisOptions: []testservers.RedisOption{
			testservers.WithRedisConfig("appendonly", "yes"), testservers.WithRedisConfig("appendfsync", "always")}},
		inject: restartRedis}.run(t)
}

func TestRedisKilledAndRestartedWithoutPersistence(t *testing.T) {
	scenario{name: "redis kill -9 and restart, no persistence", backends: redisOnly, inject: restartRedis}.run(t)
}

func restartRedis(ctx context.Context, ce *cell) error {
	if err := ce.redis.Kill(); err != nil {
		return err
	}
	ce.fault("redis killed")
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	if err := ce.redis.Restart(ctx); err != nil {
		return err
	}
	ce.heal("redis killed")
	return nil
}

func TestRedisPausedPastTheLease(t *testing.T) {
	scenario{name: "redis SIGSTOP past the lease", backends: redisOnly, inject: func(ctx context.Context, ce *cell) error {
		if err := ce.redis.Pause(); err != nil {
			return err
		}
		ce.fault("redis paused")
		if err := sleep(ctx, pastTheLease); err != nil {
			return err
		}
		if err := ce.redis.Resume(); err != nil {
			return err
		}
		ce.heal("redis paused")
		return nil
	}}.run(t)
}

func TestRedisLinkCutPastTheLease(t *testing.T) {
	scenario{name: "redis link cut past the lease", backends: redisOnly, inject: func(ctx context.Context, ce *cell) error {
		return cutLinks(ctx, ce, pastTheLease, ce.redisProxy)
	}}.run(t)
}

func TestRedisLinkSlowed(t *testing.T) {
	scenario{name: "redis link slowed by 200 ms each way for 10 s", backends: redisOnly, inject: func(ctx context.Context, ce *cell) error {
		return slowLinks(ctx, ce, 200*time.Millisecond, 10*time.Second, ce.redisProxy)
	}}.run(t)
}

// cutLinks cuts the links through proxies for d.
func cutLinks(ctx context.Context, ce *cell, d time.Duration, proxies ...*testservers.Proxy) error {
	for _, p := range proxies {
		p.Cut()
	}
	ce.fault("link cut")
	if err := sleep(ctx, d); err != nil {
		return err
	}
	for _, p := range proxies {
		if err := p.Heal(); err != nil {
			return err
		}
	}
	ce.heal("link cut")
	return nil
}

// slowLinks delays every chunk through proxies by delay, for d.
func slowLinks(ctx context.Context, ce *cell, delay, d time.Duration, proxies ...*testservers.Proxy) error {
	for _, p := range proxies {
		p.SetDelay(delay)
	}
	ce.fault("link slowed")
	err := sleep(ctx, d)
	for _, p := range proxies {
		p.SetDelay(0)
	}
	ce.heal("link slowed")
	return err
}

// Scenario 4: ZooKeeper.

func TestZooKeeperSessionExpired(t *testing.T) {
	scenario{name: "zookeeper: the manager's session expired", backends: zkOnly, inject: func(ctx context.Context, ce *cell) error {
		before := expiredSessions(ce.s.zk)
		if err := cutLinks(ctx, ce, 2*zkSessionTimeout, ce.zkProxies...); err != nil {
			return err
		}
		// The fault is the expiry: make sure the ensemble did expire it.
		for expiredSessions(ce.s.zk) == before {
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return fmt.Errorf("the ensemble logged no session expiry after the links were cut for %v: %w", 2*zkSessionTimeout, err)
			}
		}
		return nil
	}}.run(t)
}

// expiredSessions counts the sessions the ensemble's servers have expired,
// from their logs.
func expiredSessions(ens *testservers.ZooKeeperEnsemble) int {
	n := 0
	for _, node := range ens.Nodes {
		data, _ := os.ReadFile(node.LogPath())
		n += bytes.Count(data, []byte("Expiring session"))
	}
	return n
}

func TestZooKeeperLeaderNodeKilled(t *testing.T) {
	scenario{name: "zookeeper: the ensemble's leader kill -9, back after 5 s", backends: zkOnly,
		inject: func(ctx context.Context, ce *cell) error {
			ens := ce.s.zk
			leader, err := ens.Leader(ctx)
			if err != nil {
				return err
			}
			if err := leader.Kill(); err != nil {
				return err
			}
			ce.fault("zookeeper leader killed")
			if err := sleep(ctx, 5*time.Second); err != nil {
				return err
			}
			if err := leader.Restart(ctx); err != nil {
				return err
			}
			if err := ens.WaitServing(ctx); err != nil {
				return err
			}
			ce.heal("zookeeper leader killed")
			return nil
		}}.run(t)
}

func TestZooKeeperEnsembleRestarted(t *testing.T) {
	scenario{name: "zookeeper: the whole ensemble kill -9 and restarted", backends: zkOnly,
		inject: func(ctx context.Context, ce *cell) error {
			ens := ce.s.zk
			for _, n := range ens.Nodes {
				if err := n.Kill(); err != nil {
					return err
				}
			}
			ce.fault("zookeeper ensemble killed")
			if err := sleep(ctx, 2*time.Second); err != nil {
				return err
			}
			if err := restartAll(ctx, ens); err != nil {
				return err
			}
			ce.heal("zookeeper ensemble killed")
			return nil
		}}.run(t)
}

func TestZooKeeperEnsemblePausedPastTheSessionTimeout(t *testing.T) {
	scenario{name: "zookeeper: the whole ensemble SIGSTOP past the session timeout", backends: zkOnly,
		inject: func(ctx context.Context, ce *cell) error {
			ens := ce.s.zk
			for _, n := range ens.Nodes {
				if err := n.Pause(); err != nil {
					return err
				}
			}
			ce.fault("zookeeper ensemble paused")
			err := sleep(ctx, zkSessionTimeout+2*time.Second)
			for _, n := range ens.Nodes {
				if rerr := n.Resume(); rerr != nil {
					return rerr
				}
			}
			if err != nil {
				return err
			}
			if err := ens.WaitServing(ctx); err != nil {
				return err
			}
			ce.heal("zookeeper ensemble paused")
			return nil
		}}.run(t)
}

// restartAll starts every node of the ensemble again, at once (a node
// waits for a quorum before it serves).
func restartAll(ctx context.Context, ens *testservers.ZooKeeperEnsemble) error {
	errs := make(chan error, len(ens.Nodes))
	for _, n := range ens.Nodes {
		go func() { errs <- n.Restart(ctx) }()
	}
	for range ens.Nodes {
		if err := <-errs; err != nil {
			return fmt.Errorf("restarting the ensemble: %w", err)
		}
	}
	if err := ens.WaitServing(ctx); err != nil {
		return fmt.Errorf("restarting the ensemble: %w", err)
	}
	return nil
}
