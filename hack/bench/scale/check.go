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

package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	goredis "github.com/redis/go-redis/v9"
)

// backendChecker reads every held lock's key in its backend directly: the
// key must exist and carry the fencing token that status records. This is
// the check that does not trust the controller's own account.
type backendChecker struct {
	redis *goredis.Client
	zk    *zk.Conn
	t     *tracker

	mu     sync.Mutex
	rounds int
	keys   int
	errs   int
	slow   time.Duration // the longest round
}

func newBackendChecker(env *environment, t *tracker) (*backendChecker, error) {
	c := &backendChecker{t: t, redis: goredis.NewClient(&goredis.Options{Addr: env.redis.Addr})}
	if env.zk != nil {
		conn, _, err := zk.Connect(env.zk.Servers(), 10*time.Second, zk.WithLogInfo(false))
		if err != nil {
			_ = c.redis.Close()
			return nil, fmt.Errorf("connecting to ZooKeeper: %w", err)
		}
		c.zk = conn
	}
	return c, nil
}

func (c *backendChecker) close() {
	_ = c.redis.Close()
	if c.zk != nil {
		c.zk.Close()
	}
}

// run checks every held lock except skip every interval until ctx ends.
func (c *backendChecker) run(ctx context.Context, interval time.Duration, skip string) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		c.round(ctx, skip)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// round checks every held lock once: Redis keys in one pipeline, ZooKeeper
// nodes concurrently.
func (c *backendChecker) round(ctx context.Context, skip string) {
	start := time.Now()
	held := c.t.heldView(skip)
	var redisLocks, zkLocks []heldLock
	for _, h := range held {
		if h.backend == backendZooKeeper {
			zkLocks = append(zkLocks, h)
		} else {
			redisLocks = append(redisLocks, h)
		}
	}
	errs := c.checkRedis(ctx, redisLocks) + c.checkZooKeeper(ctx, zkLocks)
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rounds++
	c.keys += len(held)
	c.errs += errs
	c.slow = max(c.slow, time.Since(start))
}

// checkRedis returns how many keys could not be read.
func (c *backendChecker) checkRedis(ctx context.Context, locks []heldLock) int {
	if len(locks) == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pipe := c.redis.Pipeline()
	cmds := make([]*goredis.StringCmd, len(locks))
	for i, h := range locks {
		cmds[i] = pipe.Get(ctx, h.key)
	}
	_, _ = pipe.Exec(ctx) // per-command results below
	errs := 0
	for i, h := range locks {
		v, err := cmds[i].Result()
		switch {
		case errors.Is(err, goredis.Nil):
			c.t.backendDisagrees(h, fmt.Sprintf("redis key %s is gone (pod %s, token %d)", h.key, h.holder.pod, h.holder.token))
		case err != nil:
			errs++
		default:
			token, ok := redisToken(v)
			if !ok || token != h.holder.token {
				c.t.backendDisagrees(h, fmt.Sprintf("redis key %s holds %q; status records pod %s, token %d",
					h.key, v, h.holder.pod, h.holder.token))
			}
		}
	}
	return errs
}

// redisToken reads the fencing token from a Redis lock value
// ("<holder>;fence=<token>", see docs/design.md).
func redisToken(v string) (int64, bool) {
	i := strings.LastIndex(v, ";fence=")
	if i < 0 {
		return 0, false
	}
	token, err := strconv.ParseInt(v[i+len(";fence="):], 10, 64)
	return token, err == nil
}

// checkZooKeeper returns how many nodes could not be read. The holder is the
// lowest lock node under the lock's path (ordered by the sequence suffix);
// its token is the node's creation zxid.
func (c *backendChecker) checkZooKeeper(ctx context.Context, locks []heldLock) int {
	if len(locks) == 0 || c.zk == nil {
		return 0
	}
	var mu sync.Mutex
	errs := 0
	work := make(chan heldLock)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for h := range work {
				token, held, err := zkHeldToken(c.zk, h.key)
				switch {
				case err != nil:
					mu.Lock()
					errs++
					mu.Unlock()
				case !held:
					c.t.backendDisagrees(h, fmt.Sprintf("no lock node under %s (pod %s, token %d)", h.key, h.holder.pod, h.holder.token))
				case token != h.holder.token:
					c.t.backendDisagrees(h, fmt.Sprintf("the lowest node under %s has czxid %d; status records pod %s, token %d",
						h.key, token, h.holder.pod, h.holder.token))
				}
			}
		})
	}
	for _, h := range locks {
		select {
		case work <- h:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return errs
}

func zkHeldToken(conn *zk.Conn, path string) (token int64, held bool, err error) {
	children, _, err := conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("listing %s: %w", path, err)
	}
	lowest, lowestSeq := "", int64(-1)
	for _, child := range children {
		i := strings.LastIndex(child, "lock-")
		if i < 0 {
			continue
		}
		seq, err := strconv.ParseInt(child[i+len("lock-"):], 10, 64)
		if err == nil && (lowestSeq < 0 || seq < lowestSeq) {
			lowest, lowestSeq = child, seq
		}
	}
	if lowest == "" {
		return 0, false, nil
	}
	ok, stat, err := conn.Exists(path + "/" + lowest)
	if err != nil {
		return 0, false, fmt.Errorf("reading %s/%s: %w", path, lowest, err)
	}
	if !ok {
		return 0, false, nil
	}
	return stat.Czxid, true, nil
}

// summary describes the checks made.
func (c *backendChecker) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d rounds, %d key reads, %d read errors, slowest round %v", c.rounds, c.keys, c.errs,
		c.slow.Round(time.Millisecond))
}
