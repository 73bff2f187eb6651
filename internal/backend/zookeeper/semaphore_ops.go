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
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

// What Renew, Release, Inspect, Purge and the mutex's Acquire do with a
// semaphore's nodes. None of them is told the Limit: a holder's lease node
// under P/leases makes its Lease a semaphore's.

// leaseNode is a child of P/leases as one read shows it.
type leaseNode struct {
	name string
	data []byte
	stat *zk.Stat
}

// readLeases lists P/leases of the lock path key and reads every child at
// once (one round trip after the listing). Children deleted in between
// are left out; a missing P/leases reads as empty.
func (l *locker) readLeases(ctx context.Context, key string) ([]leaseNode, error) {
	children, err := l.startListLeases(ctx, key).wait(ctx)
	if err != nil || len(children) == 0 {
		return nil, err
	}
	reads := make([]*future[lockNodeData], len(children))
	for i, name := range children {
		reads[i] = l.startGet(ctx, leasesKey(key)+"/"+name)
	}
	nodes := make([]leaseNode, 0, len(children))
	for i, r := range reads {
		got, err := r.wait(ctx)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading lease node %s: %w", children[i], err)
		}
		nodes = append(nodes, leaseNode{name: children[i], data: got.data, stat: got.stat})
	}
	slices.SortFunc(nodes, func(a, b leaseNode) int {
		switch {
		case a.stat.Czxid < b.stat.Czxid:
			return -1
		case a.stat.Czxid > b.stat.Czxid:
			return 1
		}
		return 0
	})
	return nodes, nil
}

// heldOffBySemaphore reports why the mutex node created at czxid under key
// does not hold (mutexExcluded), or "" when it does: a lease node of the
// semaphore at key is older. The read follows the node's creation.
func (l *locker) heldOffBySemaphore(ctx context.Context, key string, czxid int64) (string, error) {
	nodes, err := l.readLeases(ctx, key)
	if err != nil {
		return "", err
	}
	zxids := make([]int64, len(nodes))
	for i, n := range nodes {
		zxids[i] = n.stat.Czxid
	}
	if !mutexExcluded(czxid, zxids) {
		return "", nil
	}
	return fmt.Sprintf("the path is held as a semaphore, by %d lease nodes (the first %s)", len(nodes), holderOf(nodes[0])), nil
}

// holderOf names the holder of lease node n: the holder identity for
// distlock's nodes, else the node's name (Curator stores the client's IP
// address, or what setNodeData gave).
func holderOf(n leaseNode) string {
	if holder := string(n.data); holder != "" && newOwner(holder).ownsLease(n.name) {
		return holder
	}
	return n.name
}

// inspectSemaphore reports the holds of the semaphore at key, or false
// when it has none.
func (l *locker) inspectSemaphore(ctx context.Context, key string) (backend.State, bool, error) {
	nodes, err := l.readLeases(ctx, key)
	if err != nil || len(nodes) == 0 {
		return backend.State{}, false, err
	}
	st := backend.State{Held: true, Holds: make([]backend.Hold, len(nodes))}
	for i, n := range nodes {
		st.Holds[i] = backend.Hold{Holder: holderOf(n), Token: n.stat.Czxid}
	}
	st.Holder, st.Token = st.Holds[0].Holder, st.Holds[0].Token
	return st, true, nil
}

// findLease finds the holder's lease node under P/leases of key whose
// creation zxid is token. It reports false when there is none.
func (l *locker) findLease(ctx context.Context, key string, own owner, token int64) (string, *zk.Stat, bool, error) {
	children, err := l.startListLeases(ctx, key).wait(ctx)
	if err != nil {
		return "", nil, false, err
	}
	for _, name := range myLeases(children, own) {
		stat, err := l.stat(ctx, leasesKey(key)+"/"+name)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			continue
		case err != nil:
			return "", nil, false, err
		case stat.Czxid == token:
			return name, stat, true, nil
		}
	}
	return "", nil, false, nil
}

// renewLease renews the hold of lease on its lease node name: it writes
// the node's data (restarting its clock) if its version is still version
// (any when -1), and checks that it is the hold the Lease's token names.
// It never creates a node.
func (l *locker) renewLease(ctx context.Context, lease backend.Lease, name string, version int32, ttl time.Duration,
	notHeld func(string) error) (backend.Lease, error) {
	stat, err := call(ctx, func() (*zk.Stat, error) {
		return l.conn.Set(leasesKey(lease.Key)+"/"+name, []byte(lease.Holder), version)
	}, nil)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return backend.Lease{}, notHeld(fmt.Sprintf("the hold's lease node %s is gone: it expired or was released", name))
	case errors.Is(err, zk.ErrBadVersion):
		return backend.Lease{}, retry("the lease node was renewed concurrently")
	case err != nil:
		return backend.Lease{}, wrap("renew", lease.Key, err)
	case stat.Czxid != lease.Token:
		return backend.Lease{}, notHeld(fmt.Sprintf("the lease node %s is another hold, with token %d", name, stat.Czxid))
	}
	lease.TTL, lease.Handle = ttl, leaseHandle(name, lease.Token)
	return lease, nil
}

// renewLeaseByPrefix renews a semaphore's Lease without a Handle: the
// holder's lease node with the Lease's token. It reports false when the
// holder has no such node (the Lease is then no semaphore's, or gone).
func (l *locker) renewLeaseByPrefix(ctx context.Context, lease backend.Lease, ttl time.Duration,
	notHeld func(string) error) (backend.Lease, bool, error) {
	for attempt := 1; ; attempt++ {
		name, stat, found, err := l.findLease(ctx, lease.Key, l.hints.owner(lease.Holder), lease.Token)
		if err != nil {
			return backend.Lease{}, true, wrap("renew", lease.Key, err)
		}
		if !found {
			return backend.Lease{}, false, nil
		}
		renewed, err := l.renewLease(ctx, lease, name, stat.Version, ttl, notHeld)
		if errors.Is(err, errRetry) && attempt < attempts {
			continue
		}
		if errors.Is(err, errRetry) {
			err = wrap("renew", lease.Key, err)
		}
		return renewed, true, err
	}
}

// releaseSemaphore gives up a semaphore's hold named by its Handle (name)
// or found by the holder's prefix (name empty), and the holder's places in
// the guard mutex. It reports false when the Lease has no lease node (it
// is then no semaphore's, or gone).
func (l *locker) releaseSemaphore(ctx context.Context, lease backend.Lease, name string) (bool, error) {
	own := l.hints.owner(lease.Holder)
	if name == "" {
		found, _, ok, err := l.findLease(ctx, lease.Key, own, lease.Token)
		if err != nil || !ok {
			return false, err
		}
		name = found
	}
	del := l.startDelete(ctx, leasesKey(lease.Key)+"/"+name, -1)
	guardErr := l.dropGuardPlaces(ctx, lease.Key, own)
	_, err := del.wait(ctx)
	return true, errors.Join(ignoreNoNode(err), guardErr)
}

// purgeSemaphore refuses while the semaphore at key has a hold or a place
// in line, and otherwise deletes its empty P/locks and P/leases when this
// package made them (they carry containerMark), so that the mutex's Purge
// can go on with the lock node. It reports whether it deleted any.
func (l *locker) purgeSemaphore(ctx context.Context, key string, v view) (bool, error) {
	nodes, err := l.readLeases(ctx, key)
	switch {
	case err != nil:
		return false, err
	case len(nodes) > 0:
		return false, fmt.Errorf("the path is held as a semaphore, by %d lease nodes (the first %s): %w",
			len(nodes), holderOf(nodes[0]), backend.ErrNotAcquired)
	}
	deleted := false
	for _, child := range []struct {
		name    string
		present bool
	}{{locksChild, v.locks}, {leasesChild, v.leases}} {
		if !child.present {
			continue
		}
		path := key + "/" + child.name
		data, stat, err := l.get(ctx, path)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			continue
		case err != nil:
			return false, err
		case stat.NumChildren > 0:
			return false, fmt.Errorf("the semaphore's %s has %d nodes (places in line, or other programs' nodes): %w",
				path, stat.NumChildren, backend.ErrNotAcquired)
		case !bytes.Equal(data, containerMark):
			continue // not ours to delete
		}
		err = l.deleteEmptyLockNode(ctx, path, stat.Version)
		switch {
		case err == nil:
			deleted = true
		case errors.Is(err, zk.ErrNoNode):
		case errors.Is(err, zk.ErrNotEmpty) || errors.Is(err, zk.ErrBadVersion):
			return false, retry(path + " changed")
		default:
			return false, err
		}
	}
	return deleted, nil
}
