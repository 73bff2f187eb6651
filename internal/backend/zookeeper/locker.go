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

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

// Inspect implements backend.Locker. The State's TTL is always zero: the
// server does not report a node's TTL. When the lock path has a
// semaphore's lease nodes, it reports them all (State.Holds), oldest
// first.
func (l *locker) Inspect(ctx context.Context, key string) (backend.State, error) {
	if err := validateKey(key); err != nil {
		return backend.State{}, fmt.Errorf("zookeeper: inspect %q: %w", key, err)
	}
	for attempt := 1; ; attempt++ {
		v, err := l.observe(ctx, key)
		if err == nil && v.leases {
			st, ok, err := l.inspectSemaphore(ctx, key)
			if err != nil {
				return backend.State{}, wrap("inspect", key, err)
			}
			if ok {
				return st, nil
			}
		}
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

// Purge implements backend.Locker. It refuses while a semaphore at key
// has a hold or a place in line, and deletes the semaphore's empty
// P/locks and P/leases when this package made them. It deletes the lock
// node when this
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
		if err == nil && (v.leases || v.locks) {
			deleted, err := l.purgeSemaphore(ctx, key, v)
			switch {
			case errors.Is(err, errRetry) && attempt < attempts:
				continue
			case errors.Is(err, backend.ErrNotAcquired):
				return fmt.Errorf("zookeeper: purge %q: %w", key, err)
			case err != nil:
				return wrap("purge", key, err)
			case deleted && attempt < attempts:
				continue // look again without them
			}
		}
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return nil
		case err != nil:
			return wrap("purge", key, err)
		case v.ephemeral():
			return fmt.Errorf("zookeeper: purge %q: the lock is %s: %w", key, describeEphemeral(key, v.stat), backend.ErrNotAcquired)
		case len(v.contenders) > 0:
			return fmt.Errorf("zookeeper: purge %q: the lock is %s: %w",
				key, l.describe(ctx, key, v.stat.Czxid, v.contenders[0]), backend.ErrNotAcquired)
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
		err = l.deleteEmptyLockNode(ctx, key, stat.Version)
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
