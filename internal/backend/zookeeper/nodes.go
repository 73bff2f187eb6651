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
	"math"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

const (
	// cleanupTimeout bounds the deletion of a node left by a failed
	// Acquire, which runs after the caller's context may have ended.
	cleanupTimeout = 5 * time.Second
	// attempts bounds the retries of an operation that raced with the
	// server (a container parent deleted, a node renewed concurrently).
	attempts = 3
)

// containerMark is the data of the lock nodes that this package creates
// (as container nodes). The server reports no difference between a
// container node and a persistent one (both have EphemeralOwner 0), so the
// mark is what tells a lock node this package may delete from one that
// someone else made.
var containerMark = []byte("distlock container")

// view is what one getChildren of a lock node shows.
type view struct {
	// stat is the lock node's own Stat.
	stat *zk.Stat
	// contenders are its contender children, lowest sequence number first.
	contenders []contender
}

// ephemeral reports whether the lock node is itself a session's ephemeral
// node: the plainest recipe, "create the lock path, ephemeral; delete it to
// release". The server reports the owning session only for such nodes; it
// reports 0 for persistent, container and TTL nodes. math.MinInt64 is the
// server's internal mark of a container, never a session.
func (v view) ephemeral() bool {
	return v.stat.EphemeralOwner != 0 && v.stat.EphemeralOwner != math.MinInt64
}

// observe lists the lock node at key. It returns an error wrapping
// zk.ErrNoNode when key does not exist.
func (l *locker) observe(ctx context.Context, key string) (view, error) {
	return call(ctx, func() (view, error) {
		children, stat, err := l.conn.Children(key)
		if err != nil {
			return view{}, err //nolint:wrapcheck // call's callers classify and wrap it
		}
		return view{stat: stat, contenders: sortContenders(children)}, nil
	}, nil)
}

// stat returns the Stat of the node at path, or an error wrapping
// zk.ErrNoNode.
func (l *locker) stat(ctx context.Context, path string) (*zk.Stat, error) {
	return call(ctx, func() (*zk.Stat, error) {
		ok, stat, err := l.conn.Exists(path)
		if err == nil && !ok {
			err = zk.ErrNoNode
		}
		return stat, err
	}, nil)
}

// get reads the node at path.
func (l *locker) get(ctx context.Context, path string) ([]byte, *zk.Stat, error) {
	type node struct {
		data []byte
		stat *zk.Stat
	}
	got, err := call(ctx, func() (node, error) {
		data, stat, err := l.conn.Get(path)
		return node{data, stat}, err //nolint:wrapcheck // call's callers classify and wrap it
	}, nil)
	return got.data, got.stat, err
}

// ephemeralState reports the plain ephemeral node at key as the holder.
func ephemeralState(key string, stat *zk.Stat) backend.State {
	return backend.State{
		Held:   true,
		Holder: fmt.Sprintf("ephemeral node %s of session %#x", key, stat.EphemeralOwner),
		Token:  stat.Czxid,
	}
}

// describeEphemeral says who holds the lock through the plain ephemeral
// node at key, for error messages.
func describeEphemeral(key string, stat *zk.Stat) string {
	return fmt.Sprintf("held by another program through the ephemeral node %s of session %#x (fencing token %d)",
		key, stat.EphemeralOwner, stat.Czxid)
}

// state reads the contender node n under key and reports it as the holder.
func (l *locker) state(ctx context.Context, key string, n contender) (backend.State, error) {
	data, stat, err := l.get(ctx, n.path(key))
	if err != nil {
		return backend.State{}, err
	}
	st := backend.State{Held: true, Holder: n.name, Token: stat.Czxid}
	if holder := string(data); holder != "" && newOwner(holder).owns(n.name) {
		st.Holder = holder
	}
	return st, nil
}

// describe says who holds the lock through node n, for error messages.
func (l *locker) describe(ctx context.Context, key string, n contender) string {
	st, err := l.state(ctx, key, n)
	switch {
	case err != nil:
		return fmt.Sprintf("held through node %s", n.name)
	case st.Holder == n.name:
		return fmt.Sprintf("held by another program (%s) through node %s (fencing token %d)", n.recipe(), n.name, st.Token)
	default:
		return fmt.Sprintf("held by %q through node %s (fencing token %d)", st.Holder, n.name, st.Token)
	}
}

// deleteLeftovers deletes nodes, the holder's nodes that must not stay.
func (l *locker) deleteLeftovers(ctx context.Context, key string, nodes []contender) error {
	for _, n := range nodes {
		err := l.deleteNode(ctx, n.path(key), -1)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("deleting the holder's leftover node %s: %w", n.name, err)
		}
	}
	return nil
}

// removeNode deletes the holder's node name under key if its version is
// still version (any version if -1). When it is the last child of a lock
// node that this package created (alone says whether the caller saw it as
// the only child; the server decides), the lock node goes with it, in the
// same transaction: a program that locks by creating a node at the lock
// path can then do so at once, rather than after the server's container
// reaper ran. The transaction cannot remove anything else: the lock node
// cannot have been replaced while it had the holder's node as a child, and
// the transaction fails if another child came meanwhile, in which case only
// the holder's node is deleted. The version check of a lone delete could
// not tell a replaced lock node from ours. The error wraps zk.ErrNoNode or
// zk.ErrBadVersion when the holder's node is gone or was changed.
func (l *locker) removeNode(ctx context.Context, key, name string, version int32, alone bool) error {
	path := key + "/" + name
	if !alone {
		return l.deleteNode(ctx, path, version)
	}
	data, parent, err := l.get(ctx, key)
	if err == nil && parent.NumChildren == 1 && bytes.Equal(data, containerMark) {
		res, err := call(ctx, func() ([]zk.MultiResponse, error) {
			return l.conn.Multi(
				&zk.DeleteRequest{Path: path, Version: version},
				&zk.DeleteRequest{Path: key, Version: parent.Version})
		}, nil)
		switch {
		case err == nil:
			return nil
		case len(res) != 2 || res[0].Error != nil:
			return err // the holder's node is gone or changed, or the call failed
		}
		// The lock node gained a child or changed: delete only the
		// holder's node.
	}
	return l.deleteNode(ctx, path, version)
}

// deleteNode deletes the node at path if its version is still version (any
// version if -1).
func (l *locker) deleteNode(ctx context.Context, path string, version int32) error {
	_, err := call(ctx, func() (struct{}, error) {
		return struct{}{}, l.conn.Delete(path, version)
	}, nil)
	return err
}

// deleteBestEffort deletes the node name under key that a failed Acquire
// created, and the lock node with it when that is left empty (removeNode;
// alone as there). It runs even when ctx has ended; a node it cannot
// delete is found and deleted (or adopted) by the holder's next Acquire, or
// expires.
func (l *locker) deleteBestEffort(ctx context.Context, key, name string, alone bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = l.removeNode(ctx, key, name, -1, alone)
}

// ensurePath creates key and its missing ancestors as container nodes. The
// lock node key gets containerMark as data.
func (l *locker) ensurePath(ctx context.Context, key string) error {
	create := func(path string) error {
		acl, data := l.ancestorACL, []byte(nil)
		if path == key {
			acl, data = l.acl, containerMark
		}
		_, err := call(ctx, func() (string, error) {
			return l.conn.CreateContainer(path, data, zk.FlagContainer, acl)
		}, nil)
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	}
	err := create(key)
	if !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	for i := 1; i < len(key); i++ {
		if key[i] == '/' {
			if err := create(key[:i]); err != nil {
				return err
			}
		}
	}
	return create(key)
}

// validate checks the arguments shared by Acquire and Renew.
func validate(key, holder string, ttl time.Duration) error {
	if err := validateKey(key); err != nil {
		return err
	}
	switch {
	case holder == "":
		return errors.New("empty holder")
	case ttl < time.Millisecond:
		return fmt.Errorf("TTL %v is below ZooKeeper's resolution of 1ms", ttl)
	case ttl > MaxTTL:
		return fmt.Errorf("TTL %v is above ZooKeeper's maximum of %v", ttl, MaxTTL)
	}
	return nil
}

// validateKey checks that key is an absolute ZooKeeper path that may hold
// lock nodes.
func validateKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case key[0] != '/':
		return errors.New("the key must be an absolute path starting with '/'")
	case key == "/":
		return errors.New("the key must not be the root node")
	case strings.HasSuffix(key, "/"):
		return errors.New("the key must not end with '/'")
	case strings.ContainsRune(key, 0):
		return errors.New("the key must not contain NUL")
	case key == "/zookeeper" || strings.HasPrefix(key, "/zookeeper/"):
		return errors.New("/zookeeper is reserved for the server")
	}
	for part := range strings.SplitSeq(key[1:], "/") {
		switch part {
		case "":
			return errors.New("the key must not contain an empty path element")
		case ".", "..":
			return errors.New("the key must not contain relative path elements")
		}
	}
	return nil
}
