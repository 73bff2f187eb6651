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

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/zookeeper"
)

// ZooKeeperLibraries are distlock's ZooKeeper backend trying once, the same
// backend waiting in line (backend.WithQueue and Watch, as the controller waits),
// and go-zookeeper's zk.Lock, which always waits in line.
var ZooKeeperLibraries = []Library{
	{Name: "distlock", Ours: true, Connect: connectDistlockZooKeeper},
	{Name: "distlock (queue)", Ours: true, Waits: true, Connect: connectDistlockZooKeeperQueued},
	{Name: "zk.Lock", Waits: true, Connect: connectZkLock},
}

// ZooKeeperPath turns a key into a path under /bench, the ZooKeeper form of
// a lock key.
func ZooKeeperPath(key string) string { return "/bench/" + key }

// sessionTimeout is the session timeout of every ZooKeeper connection.
const sessionTimeout = 10 * time.Second

// connectDistlockZooKeeper connects distlock's ZooKeeper backend
// (zookeeper.New, Curator node names).
func connectDistlockZooKeeper(ctx context.Context, addr string) (Conn, error) {
	l, err := zookeeper.New(ctx, backend.Config{Servers: []string{addr}, SessionTimeout: sessionTimeout})
	if err != nil {
		return nil, err
	}
	return zkPathConn{lockerConn{l}}, nil
}

// zkPathConn turns the keys of its clients into ZooKeeper paths.
type zkPathConn struct{ Conn }

func (c zkPathConn) Client(id int) Client { return zkPathClient{c.Conn.Client(id)} }

type zkPathClient struct{ Client }

func (c zkPathClient) Cycle(ctx context.Context, key string, stop <-chan struct{}) (bool, error) {
	return c.Client.Cycle(ctx, ZooKeeperPath(key), stop)
}

// connectDistlockZooKeeperQueued connects distlock's ZooKeeper backend for
// clients that wait in line.
func connectDistlockZooKeeperQueued(ctx context.Context, addr string) (Conn, error) {
	l, err := zookeeper.New(ctx, backend.Config{Servers: []string{addr}, SessionTimeout: sessionTimeout})
	if err != nil {
		return nil, err
	}
	return queuedConn{l}, nil
}

type queuedConn struct{ l backend.Locker }

func (c queuedConn) Client(id int) Client {
	return queuedClient{c.l, c.l.(backend.Watcher), fmt.Sprintf("bench-client-%d", id)}
}
func (c queuedConn) Close() error { return c.l.Close() }

// queuedClient takes its place in line with backend.WithQueue and waits
// for its turn with Watch, as the controller does for a queued pod.
type queuedClient struct {
	l      backend.Locker
	w      backend.Watcher
	holder string
}

func (c queuedClient) Cycle(ctx context.Context, key string, stop <-chan struct{}) (bool, error) {
	path := ZooKeeperPath(key)
	for {
		lease, err := c.l.Acquire(ctx, path, c.holder, TTL, backend.WithQueue())
		switch {
		case err == nil:
			return true, c.l.Release(ctx, lease)
		case !errors.Is(err, backend.ErrNotAcquired) || !lease.Queued:
			return false, err
		}
		changed, err := c.w.Watch(ctx, path, c.holder)
		if err != nil {
			return false, err
		}
		select {
		case <-changed:
		case <-stop:
			return false, c.l.Release(ctx, lease)
		}
	}
}

// PrepareZooKeeper makes /bench, the parent of all lock paths, a persistent
// node on the server at addr, so that it exists throughout, as the
// ancestors of a deployment's lock nodes do.
func PrepareZooKeeper(ctx context.Context, addr string) error {
	conn, err := dialZooKeeper(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	return prepareZooKeeper(conn, ZooKeeperPath("x"), LockFree)
}

// connectZkLock opens a go-zookeeper session for zk.Lock.
func connectZkLock(ctx context.Context, addr string) (Conn, error) {
	conn, err := dialZooKeeper(ctx, addr)
	if err != nil {
		return nil, err
	}
	return zkLockConn{conn}, nil
}

// dialZooKeeper opens a go-zookeeper session and waits until it is
// established.
func dialZooKeeper(ctx context.Context, addr string) (*zk.Conn, error) {
	conn, events, err := zk.Connect([]string{addr}, sessionTimeout, zk.WithLogger(quiet{}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("connect to zookeeper at %s: %w", addr, err)
	}
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				go drain(events)
				return conn, nil
			}
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("connect to zookeeper at %s: no session: %w", addr, ctx.Err())
		}
	}
}

// drain discards session events until the connection closes.
func drain(events <-chan zk.Event) {
	for range events {
	}
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

type zkLockConn struct{ conn *zk.Conn }

func (c zkLockConn) Client(int) Client { return zkLockClient(c) }
func (c zkLockConn) Close() error      { c.conn.Close(); return nil }

// zkLockClient takes a zk.Lock (waiting in line: it has no try-once mode)
// and unlocks it.
type zkLockClient struct{ conn *zk.Conn }

func (c zkLockClient) Cycle(_ context.Context, key string, _ <-chan struct{}) (bool, error) {
	lock := zk.NewLock(c.conn, ZooKeeperPath(key), zk.WorldACL(zk.PermAll))
	if err := lock.Lock(); err != nil {
		return false, fmt.Errorf("zk.Lock lock: %w", err)
	}
	if err := lock.Unlock(); err != nil {
		return true, fmt.Errorf("zk.Lock unlock: %w", err)
	}
	return true, nil
}
