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

	"github.com/go-zookeeper/zk"
)

// dropNode deletes the holder's node h.name under key and, when that leaves
// a lock node this package created empty, the lock node too, so that a
// program that locks by creating a node at the lock path can do so at once
// rather than after the server's container reaper ran. It reports whether
// the lock node went. A node already gone is no error (nor is the lock node
// then touched).
//
// How depends on what the handle says of the lock node:
//
//   - ours, and the node was its only child: one transaction deletes both
//     (one round trip). It cannot remove anything else: the lock node cannot
//     have been replaced while it had the holder's node as a child, and the
//     transaction fails if another child came meanwhile, in which case only
//     the holder's node is deleted.
//   - someone else's: the node alone.
//   - others waited in line when the hold was taken, and the locker knows
//     that places of other holders of its own are still there (othersQueued):
//     the node alone, as the lock node stays for them.
//   - otherwise (others were in line, or unknown): the node's deletion and,
//     right behind it on the wire, a read of the lock node (one round trip);
//     when that shows the lock node empty, still the one the hold was taken
//     in (its creation zxid) and ours (or marked so), deleteEmptyLockNode
//     removes it.
func (l *locker) dropNode(ctx context.Context, key string, h handle, othersQueued bool) (bool, error) {
	path := key + "/" + h.name
	switch {
	case h.lockNode == lockNodeOurs && h.alone:
		_, err := call(ctx, func() ([]zk.MultiResponse, error) {
			return l.conn.Multi(&zk.DeleteRequest{Path: path, Version: -1}, &zk.DeleteRequest{Path: key, Version: -1})
		}, nil)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, zk.ErrNoNode):
			return false, nil // the holder's node is gone
		case !errors.Is(err, zk.ErrNotEmpty):
			return false, err
		}
		// Someone else came into the lock node: delete only ours.
		return false, ignoreNoNode(l.deleteNode(ctx, path, -1))
	case h.lockNode == lockNodeForeign || othersQueued:
		return false, ignoreNoNode(l.deleteNode(ctx, path, -1))
	}

	var del *future[struct{}]
	var look *future[lockNodeData]
	l.inOrder(ctx,
		step{op: opDelete, path: path, run: func() <-chan struct{} {
			del = l.startDelete(ctx, path, -1)
			return del.done
		}},
		step{op: opGetData, path: key, run: func() <-chan struct{} {
			look = l.startGet(ctx, key)
			return look.done
		}})
	if _, err := del.wait(ctx); err != nil {
		look.abandon()
		return false, ignoreNoNode(err)
	}
	got, err := look.wait(ctx)
	if err != nil || !emptyLockNodeOf(got, h) {
		return false, nil // gone, or still in use, or not ours: nothing more to do
	}
	return l.deleteEmptyLockNode(ctx, key, got.stat.Version) == nil, nil
}

// emptyLockNodeOf reports whether got, the lock node read right after h's
// node was deleted, is the lock node h was taken in, empty, and one this
// package made.
func emptyLockNodeOf(got lockNodeData, h handle) bool {
	st := got.stat
	return st.NumChildren == 0 && st.Czxid == h.parent && st.EphemeralOwner == 0 &&
		(h.lockNode == lockNodeOurs || bytes.Equal(got.data, containerMark))
}

func ignoreNoNode(err error) error {
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	return err
}

// probeName names the child that deleteEmptyLockNode creates and deletes in
// the transaction that deletes a lock node; it never outlives the
// transaction.
const probeName = "distlock-purge-probe"

// deleteEmptyLockNode deletes the lock node key if its version is still
// version and it has no children. The delete runs in one transaction with
// the creation and deletion of a probe child, so it cannot remove an
// outside program's ephemeral node that took the path in the meantime (an
// ephemeral node has no children).
func (l *locker) deleteEmptyLockNode(ctx context.Context, key string, version int32) error {
	probe := key + "/" + probeName
	_, err := call(ctx, func() ([]zk.MultiResponse, error) {
		return l.conn.Multi(
			&zk.CreateRequest{Path: probe, Acl: l.acl},
			&zk.DeleteRequest{Path: probe, Version: 0},
			&zk.DeleteRequest{Path: key, Version: version})
	}, nil)
	return err
}

// lockNodeData is a lock node's data and Stat.
type lockNodeData struct {
	data []byte
	stat *zk.Stat
}

// startGet starts reading the node at path.
func (l *locker) startGet(ctx context.Context, path string) *future[lockNodeData] {
	return start(ctx, func() (lockNodeData, error) {
		data, stat, err := l.conn.Get(path)
		return lockNodeData{data, stat}, err //nolint:wrapcheck // the callers classify and wrap it
	}, nil)
}
