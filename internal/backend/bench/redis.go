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

package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/redis"
)

// RedisLibraries are distlock's Redis backend and its anchors, distlock
// first.
var RedisLibraries = []Library{
	{Name: "distlock", Ours: true, Connect: connectDistlockRedis},
	{Name: "bsm/redislock", Connect: connectRedislock},
	{Name: "redsync", Connect: connectRedsync},
}

// redisClient returns a go-redis client for addr with the options that
// distlock's Redis backend gives its own (internal/backend/redis: timeouts,
// one retry, maintenance notifications off, RESP2), so that the anchors and
// distlock differ only in their lock code. Pool size is go-redis's default
// for all of them.
func redisClient(ctx context.Context, addr string) (*goredis.Client, error) {
	c := goredis.NewClient(&goredis.Options{
		Addr:                     addr,
		DialTimeout:              redis.DefaultDialTimeout,
		DialerRetries:            2,
		ReadTimeout:              2 * time.Second,
		WriteTimeout:             2 * time.Second,
		MaxRetries:               1,
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		Protocol:                 2,
	})
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("connect to redis at %s: %w", addr, err)
	}
	return c, nil
}

// connectDistlockRedis connects distlock's Redis backend (redis.New).
func connectDistlockRedis(ctx context.Context, addr string) (Conn, error) {
	l, err := redis.New(ctx, backend.Config{Servers: []string{addr}})
	if err != nil {
		return nil, err
	}
	return lockerConn{l}, nil
}

// lockerConn is a backend.Locker as a Conn; its clients try once.
type lockerConn struct{ l backend.Locker }

func (c lockerConn) Client(id int) Client {
	return lockerClient{c.l, fmt.Sprintf("bench-client-%d", id)}
}
func (c lockerConn) Close() error { return c.l.Close() }

// lockerClient acquires and releases through a backend.Locker as one holder.
type lockerClient struct {
	l      backend.Locker
	holder string
}

// Cycle is Acquire then Release.
func (c lockerClient) Cycle(ctx context.Context, key string, _ <-chan struct{}) (bool, error) {
	lease, err := c.l.Acquire(ctx, key, c.holder, TTL)
	switch {
	case errors.Is(err, backend.ErrNotAcquired):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, c.l.Release(ctx, lease)
}

// goredisConn is a go-redis client that a lock library uses.
type goredisConn struct {
	client    *goredis.Client
	newClient func(id int) Client
}

func (c goredisConn) Client(id int) Client { return c.newClient(id) }
func (c goredisConn) Close() error {
	if err := c.client.Close(); err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

// connectRedislock connects bsm/redislock: Obtain (no retries) and Release.
func connectRedislock(ctx context.Context, addr string) (Conn, error) {
	c, err := redisClient(ctx, addr)
	if err != nil {
		return nil, err
	}
	locks := redislock.New(c)
	return goredisConn{c, func(int) Client { return redislockClient{locks} }}, nil
}

type redislockClient struct{ locks *redislock.Client }

func (c redislockClient) Cycle(ctx context.Context, key string, _ <-chan struct{}) (bool, error) {
	lock, err := c.locks.Obtain(ctx, key, TTL, nil)
	switch {
	case errors.Is(err, redislock.ErrNotObtained):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("redislock obtain: %w", err)
	}
	if err := lock.Release(ctx); err != nil {
		return true, fmt.Errorf("redislock release: %w", err)
	}
	return true, nil
}

// connectRedsync connects redsync with one pool (a single Redis server, so
// the quorum is 1): TryLockContext (one try) and UnlockContext.
func connectRedsync(ctx context.Context, addr string) (Conn, error) {
	c, err := redisClient(ctx, addr)
	if err != nil {
		return nil, err
	}
	rs := redsync.New(redsyncgoredis.NewPool(c))
	return goredisConn{c, func(int) Client { return &redsyncClient{rs: rs} }}, nil
}

type redsyncClient struct {
	rs    *redsync.Redsync
	mutex *redsync.Mutex // for the key of the last cycle
}

func (c *redsyncClient) Cycle(ctx context.Context, key string, _ <-chan struct{}) (bool, error) {
	if c.mutex == nil || c.mutex.Name() != key {
		c.mutex = c.rs.NewMutex(key, redsync.WithExpiry(TTL), redsync.WithTries(1))
	}
	var taken *redsync.ErrTaken
	err := c.mutex.TryLockContext(ctx)
	switch {
	case errors.As(err, &taken), errors.Is(err, redsync.ErrFailed):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("redsync lock: %w", err)
	}
	ok, err := c.mutex.UnlockContext(ctx)
	switch {
	case err != nil:
		return true, fmt.Errorf("redsync unlock: %w", err)
	case !ok:
		return true, errors.New("redsync unlock: the lock was not released")
	}
	return true, nil
}
