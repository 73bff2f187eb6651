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

package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

// Renew implements backend.Locker. It refuses a queued Lease: a place in
// line is not a hold, and Acquire refreshes it.
func (l *locker) Renew(ctx context.Context, lease backend.Lease, ttl time.Duration) (backend.Lease, error) {
	if err := validate(lease.Key, lease.Holder, ttl); err != nil {
		return backend.Lease{}, fmt.Errorf("zookeeper: renew %q: %w", lease.Key, err)
	}
	key, own := lease.Key, newOwner(lease.Holder)
	if lease.Queued {
		return backend.Lease{}, fmt.Errorf("zookeeper: renew %q for %q (token %d): the lease is a place in line, not a hold; "+
			"Acquire refreshes it", key, lease.Holder, lease.Token)
	}
	notHeld := func(why string) error {
		return fmt.Errorf("zookeeper: renew %q for %q (token %d): %s: %w",
			key, lease.Holder, lease.Token, why, backend.ErrNotHeld)
	}
	for attempt := 1; ; attempt++ {
		v, err := l.observe(ctx, key)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return backend.Lease{}, notHeld("the lock node is gone")
		case err != nil:
			return backend.Lease{}, wrap("renew", key, err)
		case v.ephemeral():
			return backend.Lease{}, notHeld(describeEphemeral(key, v.stat))
		case len(v.contenders) == 0:
			return backend.Lease{}, notHeld("nobody holds the lock")
		case !own.owns(v.contenders[0].name):
			return backend.Lease{}, notHeld(l.describe(ctx, key, v.contenders[0]))
		}
		head := v.contenders[0]
		stat, err := l.stat(ctx, head.path(key))
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return backend.Lease{}, notHeld("the hold expired")
		case err != nil:
			return backend.Lease{}, wrap("renew", key, err)
		case stat.Czxid != lease.Token:
			return backend.Lease{}, notHeld(fmt.Sprintf("the holder's node %s is another hold, with token %d", head.name, stat.Czxid))
		}
		// The version makes the write conditional on the node read above.
		_, err = call(ctx, func() (*zk.Stat, error) {
			return l.conn.Set(head.path(key), []byte(lease.Holder), stat.Version)
		}, nil)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return backend.Lease{}, notHeld("the hold expired")
		case errors.Is(err, zk.ErrBadVersion) && attempt < attempts:
			continue // renewed concurrently
		case err != nil:
			return backend.Lease{}, wrap("renew", key, err)
		}
		lease.TTL = ttl
		return lease, nil
	}
}

// Release implements backend.Locker. It deletes the holder's node whose
// creation zxid is the lease's token, a hold or a place in line, and with
// it the lock node when this package created that and nothing else is left
// in it.
func (l *locker) Release(ctx context.Context, lease backend.Lease) error {
	if err := validateKey(lease.Key); err != nil {
		return fmt.Errorf("zookeeper: release %q: %w", lease.Key, err)
	}
	key, own := lease.Key, newOwner(lease.Holder)
	v, err := l.observe(ctx, key)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return wrap("release", key, err)
	}
	for _, n := range own.mine(v.contenders) {
		for attempt := 1; ; attempt++ {
			stat, err := l.stat(ctx, n.path(key))
			if errors.Is(err, zk.ErrNoNode) {
				break
			}
			if err != nil {
				return wrap("release", key, err)
			}
			if stat.Czxid != lease.Token {
				break // another hold of the same holder
			}
			// The version makes the delete conditional on the node read
			// above.
			err = l.removeNode(ctx, key, n.name, stat.Version, v.stat.NumChildren == 1)
			if errors.Is(err, zk.ErrBadVersion) && attempt < attempts {
				continue // renewed concurrently
			}
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				return wrap("release", key, err)
			}
			return nil
		}
	}
	return nil
}

// Inspect implements backend.Locker. The State's TTL is always zero: the
// server does not report a node's TTL.
func (l *locker) Inspect(ctx context.Context, key string) (backend.State, error) {
	if err := validateKey(key); err != nil {
		return backend.State{}, fmt.Errorf("zookeeper: inspect %q: %w", key, err)
	}
	for attempt := 1; ; attempt++ {
		v, err := l.observe(ctx, key)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return backend.State{}, nil
		case err != nil:
			return backend.State{}, wrap("inspect", key, err)
		case v.ephemeral():
			return ephemeralState(key, v.stat), nil
		case len(v.contenders) == 0:
			return backend.State{}, nil
		}
		st, err := l.state(ctx, key, v.contenders[0])
		if errors.Is(err, zk.ErrNoNode) && attempt < attempts {
			continue // released in the meantime; look again
		}
		if err != nil {
			return backend.State{}, wrap("inspect", key, err)
		}
		return st, nil
	}
}

// probeName names the child that Purge creates and deletes in the
// transaction that deletes a lock node; it never outlives the transaction.
const probeName = "distlock-purge-probe"

// Purge implements backend.Locker. It deletes the lock node when this
// package created it and it has no children; a lock node that someone else
// made (a persistent node, or a container from before this package marked
// its own) stays: the server deletes empty containers by itself. The
// delete runs in one transaction with the creation and deletion of a
// probe child, so it cannot remove an outside program's ephemeral node that
// took the path in the meantime.
func (l *locker) Purge(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("zookeeper: purge %q: %w", key, err)
	}
	for attempt := 1; ; attempt++ {
		v, err := l.observe(ctx, key)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return nil
		case err != nil:
			return wrap("purge", key, err)
		case v.ephemeral():
			return fmt.Errorf("zookeeper: purge %q: the lock is %s: %w", key, describeEphemeral(key, v.stat), backend.ErrNotAcquired)
		case len(v.contenders) > 0:
			return fmt.Errorf("zookeeper: purge %q: the lock is %s: %w", key, l.describe(ctx, key, v.contenders[0]), backend.ErrNotAcquired)
		case v.stat.NumChildren > 0:
			return fmt.Errorf("zookeeper: purge %q: the lock node has children of other programs: %w", key, backend.ErrNotAcquired)
		}
		data, stat, err := l.get(ctx, key)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return nil
		case err != nil:
			return wrap("purge", key, err)
		case !bytes.Equal(data, containerMark):
			return nil // not ours to delete
		}
		probe := key + "/" + probeName
		_, err = call(ctx, func() ([]zk.MultiResponse, error) {
			return l.conn.Multi(
				&zk.CreateRequest{Path: probe, Acl: l.acl},
				&zk.DeleteRequest{Path: probe, Version: 0},
				&zk.DeleteRequest{Path: key, Version: stat.Version})
		}, nil)
		switch {
		case err == nil:
			return nil
		case (errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNoChildrenForEphemerals) ||
			errors.Is(err, zk.ErrNotEmpty) || errors.Is(err, zk.ErrBadVersion)) && attempt < attempts:
			continue // the lock node changed; look again
		case errors.Is(err, zk.ErrNotEmpty):
			return fmt.Errorf("zookeeper: purge %q: the lock node has children (a hold taken in the meantime, or another program's nodes): %w",
				key, backend.ErrNotAcquired)
		default:
			return wrap("purge", key, err)
		}
	}
}
