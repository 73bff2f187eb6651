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
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

// Renew implements backend.Locker. It refuses a queued Lease: a place in
// line is not a hold, and Acquire refreshes it.
//
// With the Lease's Handle it writes the hold's node by name, one round trip:
// node names are never used twice for a holder (see owner), and a node that
// came first stays first while it exists (later nodes get higher sequence
// numbers), so the write succeeds exactly while the hold lasts; it never
// creates a node. Without a Handle (a Lease rebuilt after a restart) it
// finds the node by the holder's prefix and checks its creation zxid, and
// returns the Lease with a Handle.
func (l *locker) Renew(ctx context.Context, lease backend.Lease, ttl time.Duration) (backend.Lease, error) {
	if err := validate(lease.Key, lease.Holder, ttl); err != nil {
		return backend.Lease{}, fmt.Errorf("zookeeper: renew %q: %w", lease.Key, err)
	}
	key := lease.Key
	if lease.Queued {
		return backend.Lease{}, fmt.Errorf("zookeeper: renew %q for %q (token %d): the lease is a place in line, not a hold; "+
			"Acquire refreshes it", key, lease.Holder, lease.Token)
	}
	notHeld := func(why string) error {
		return fmt.Errorf("zookeeper: renew %q for %q (token %d): %s: %w",
			key, lease.Holder, lease.Token, why, backend.ErrNotHeld)
	}
	if name, ok := parseLeaseHandle(lease, l.hints.owner(lease.Holder)); ok {
		return l.renewLease(ctx, lease, name, -1, ttl, notHeld)
	}
	h, ok := parseHandle(lease, l.hints.owner(lease.Holder))
	if !ok {
		return l.renewByPrefix(ctx, lease, ttl, notHeld)
	}
	stat, err := l.startSet(ctx, key+"/"+h.name, []byte(lease.Holder)).wait(ctx)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return backend.Lease{}, notHeld(fmt.Sprintf("the hold's node %s is gone: it expired or was released", h.name))
	case err != nil:
		return backend.Lease{}, wrap("renew", key, err)
	case stat.Czxid != lease.Token:
		return backend.Lease{}, notHeld(fmt.Sprintf("the node %s is another hold, with token %d", h.name, stat.Czxid))
	}
	lease.TTL = ttl
	return lease, nil
}

// renewByPrefix renews a Lease without a Handle: the holder's lease node
// with the Lease's token when the lock path has a semaphore's nodes, else
// the holder's node, which must come first and have the Lease's token as
// creation zxid.
func (l *locker) renewByPrefix(ctx context.Context, lease backend.Lease, ttl time.Duration, notHeld func(string) error) (
	backend.Lease, error) {
	key, own := lease.Key, l.hints.owner(lease.Holder)
	for attempt := 1; ; attempt++ {
		v, kind, err := l.observeAndRead(ctx, key)
		if err == nil && v.leases {
			// A semaphore's hold, if the holder has a lease node.
			if renewed, ok, err := l.renewLeaseByPrefix(ctx, lease, ttl, notHeld); ok {
				return renewed, err
			}
		}
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
			return backend.Lease{}, notHeld(l.describe(ctx, key, v.stat.Czxid, v.contenders[0]))
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
		lease.Handle = l.handleFor(key, lease.Holder, v, kind, head, lease.Token).String()
		return lease, nil
	}
}

// handleFor makes the handle of node n, the holder's, with creation zxid
// token, in the lock node listed in v, of kind, and remembers the node.
func (l *locker) handleFor(key, holder string, v view, kind lockNodeKind, n contender, token int64) handle {
	l.hints.update(key, func(k *keyHints) {
		k.setNode(holder, nodeHint{name: n.name, czxid: token})
		k.sawLockNode(v.stat.Czxid, kind)
	})
	return handle{name: n.name, token: token, parent: v.stat.Czxid, lockNode: kind, alone: v.stat.NumChildren == 1}
}

// observeAndRead lists the lock node at key and, in the same round trip,
// reads it, to know whether it is ours (for a Lease without Handle).
func (l *locker) observeAndRead(ctx context.Context, key string) (view, lockNodeKind, error) {
	list, read := l.startObserve(ctx, key), l.startGet(ctx, key)
	v, err := list.wait(ctx)
	if err != nil {
		read.abandon()
		return view{}, lockNodeUnknown, err
	}
	got, err := read.wait(ctx)
	switch {
	case err != nil || got.stat.Czxid != v.stat.Czxid:
		return v, lockNodeUnknown, nil // gone or made again in between: the listing tells
	case bytes.Equal(got.data, containerMark):
		return v, lockNodeOurs, nil
	}
	return v, lockNodeForeign, nil
}

// Release implements backend.Locker. It deletes the holder's node whose
// creation zxid is the lease's token, a hold or a place in line, and with
// it the lock node when this package created that and nothing else is left
// in it (dropNode). With the Lease's Handle it deletes the node by name:
// one round trip. Without, it finds the node by the holder's prefix.
func (l *locker) Release(ctx context.Context, lease backend.Lease) error {
	if err := validateKey(lease.Key); err != nil {
		return fmt.Errorf("zookeeper: release %q: %w", lease.Key, err)
	}
	if guard, ok := guardLease(lease); ok {
		// A place in line for a semaphore's guard mutex.
		return l.Release(ctx, guard)
	}
	if name, ok := parseLeaseHandle(lease, l.hints.owner(lease.Holder)); ok {
		if _, err := l.releaseSemaphore(ctx, lease, name); err != nil {
			return wrap("release", lease.Key, err)
		}
		return nil
	}
	h, ok := parseHandle(lease, l.hints.owner(lease.Holder))
	if !ok {
		var found bool
		var err error
		if h, found, err = l.findHold(ctx, lease); err != nil || !found {
			return err
		}
	}
	gone, err := l.dropNode(ctx, lease.Key, h, l.hints.get(lease.Key, lease.Holder).othersQueued)
	if err != nil {
		return wrap("release", lease.Key, err)
	}
	l.hints.update(lease.Key, func(k *keyHints) {
		k.forgetNode(lease.Holder, h.name)
		k.lockNodeGone = gone
	})
	return nil
}

// findHold finds the holder's node whose creation zxid is the lease's
// token. It reports false when there is none, or when the Lease was a
// semaphore's, which it then releases: the holder's lease node under
// P/leases, or its place in line for the guard mutex at P/locks.
func (l *locker) findHold(ctx context.Context, lease backend.Lease) (handle, bool, error) {
	key := lease.Key
	v, kind, err := l.observeAndRead(ctx, key)
	if errors.Is(err, zk.ErrNoNode) {
		return handle{}, false, nil
	}
	if err != nil {
		return handle{}, false, wrap("release", key, err)
	}
	if v.leases {
		if released, err := l.releaseSemaphore(ctx, lease, ""); released || err != nil {
			return handle{}, false, wrapIf("release", key, err)
		}
	}
	for _, n := range l.hints.owner(lease.Holder).mine(v.contenders) {
		stat, err := l.stat(ctx, n.path(key))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return handle{}, false, wrap("release", key, err)
		}
		if stat.Czxid == lease.Token {
			return l.handleFor(key, lease.Holder, v, kind, n, lease.Token), true, nil
		}
	}
	if v.locks {
		guard := backend.Lease{Key: guardKey(key), Holder: lease.Holder, Token: lease.Token}
		return handle{}, false, l.Release(ctx, guard)
	}
	return handle{}, false, nil
}

// RenewBatch implements backend.BatchRenewer. Every renewal's request goes
// out at once on the session's one connection, which ZooKeeper answers in
// order: the batch costs one round trip, not one per hold. Each renewal is
// exactly Renew (a setData by the hold's node name, or the lookup of a Lease
// without a Handle), so a hold that is gone is reported, never re-created.
func (l *locker) RenewBatch(ctx context.Context, renewals []backend.Renewal) {
	var wg sync.WaitGroup
	for i := range renewals {
		r := &renewals[i]
		wg.Go(func() { r.Renewed, r.Err = l.Renew(ctx, r.Lease, r.TTL) })
	}
	wg.Wait()
}
