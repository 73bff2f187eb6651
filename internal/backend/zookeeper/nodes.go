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
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
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
	// leases and locks report children named "leases" and "locks", the
	// nodes of a semaphore (see semaphore_nodes.go).
	leases, locks bool
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
	return l.startObserve(ctx, key).wait(ctx)
}

// startObserve starts listing the lock node at key.
func (l *locker) startObserve(ctx context.Context, key string) *future[view] {
	return start(ctx, func() (view, error) {
		children, stat, err := l.conn.Children(key)
		if err != nil {
			return view{}, err //nolint:wrapcheck // the callers classify and wrap it
		}
		v := view{stat: stat, contenders: sortContenders(children)}
		v.leases, v.locks = slices.Contains(children, leasesChild), slices.Contains(children, locksChild)
		return v, nil
	}, nil)
}

// startSet starts writing data to the node at path, any version: it
// restarts a TTL node's clock, and never creates a node.
func (l *locker) startSet(ctx context.Context, path string, data []byte) *future[*zk.Stat] {
	return start(ctx, func() (*zk.Stat, error) { return l.conn.Set(path, data, -1) }, nil)
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
	got, err := l.startGet(ctx, path).wait(ctx)
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

// describe says who holds the lock through node n of the lock node key
// created at lockNode, for error messages. The locker remembers the last
// description of a lock (a node's name is never used twice in one lock
// node, and what it says of its holder does not change), so that refusing
// while the same holder holds costs no read.
func (l *locker) describe(ctx context.Context, key string, lockNode int64, n contender) string {
	if text, ok := l.hints.described(key, lockNode, n.name); ok {
		return text
	}
	st, err := l.state(ctx, key, n)
	var text string
	switch {
	case err != nil:
		return fmt.Sprintf("held through node %s", n.name)
	case st.Holder == n.name:
		text = fmt.Sprintf("held by another program (%s) through node %s (fencing token %d)", n.recipe(), n.name, st.Token)
	default:
		text = fmt.Sprintf("held by %q through node %s (fencing token %d)", st.Holder, n.name, st.Token)
	}
	l.hints.update(key, func(k *keyHints) { k.headLockNode, k.headName, k.head = lockNode, n.name, text })
	return text
}

// describeKnown is describe without a read: from the locker's memory, or
// by the node's name.
func (l *locker) describeKnown(key string, lockNode int64, n contender) string {
	if text, ok := l.hints.described(key, lockNode, n.name); ok {
		return text
	}
	return fmt.Sprintf("held through node %s", n.name)
}

// deleteNodes deletes nodes under key, all at once; nodes already gone
// are no error.
func (l *locker) deleteNodes(ctx context.Context, key string, nodes []contender) error {
	pending := make([]*future[struct{}], len(nodes))
	for i, n := range nodes {
		pending[i] = l.startDelete(ctx, n.path(key), -1)
	}
	var errs []error
	for i, f := range pending {
		if _, err := f.wait(ctx); err != nil && !errors.Is(err, zk.ErrNoNode) {
			errs = append(errs, fmt.Errorf("deleting the holder's node %s: %w", nodes[i].name, err))
		}
	}
	return errors.Join(errs...)
}

// startDelete starts deleting the node at path if its version is still
// version (any version if -1).
func (l *locker) startDelete(ctx context.Context, path string, version int32) *future[struct{}] {
	return start(ctx, func() (struct{}, error) { return struct{}{}, l.conn.Delete(path, version) }, nil)
}

// deleteNode deletes the node at path if its version is still version (any
// version if -1).
func (l *locker) deleteNode(ctx context.Context, path string, version int32) error {
	_, err := l.startDelete(ctx, path, version).wait(ctx)
	return err
}

// deleteBestEffort deletes the node of h under key that a failed Acquire
// created, and the lock node with it as Release would (dropNode). It runs
// even when ctx has ended; a node it cannot delete is found and deleted
// (or adopted) by the holder's next Acquire, or expires.
func (l *locker) deleteBestEffort(ctx context.Context, key string, h handle) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = l.dropNode(ctx, key, h, false)
}

// ensurePath creates key and its missing ancestors as container nodes. The
// lock node key gets containerMark as data. It returns the creation zxid
// of the lock node when it created it and the tap saw the answer, else 0.
func (l *locker) ensurePath(ctx context.Context, key string) (int64, error) {
	var made int64
	create := func(path string) error {
		acl, data := l.ancestorACL, []byte(nil)
		if path == key {
			acl, data = l.acl, containerMark
		}
		take, done := l.tap.expectCreated(path)
		defer done()
		created, err := call(ctx, func() (string, error) {
			return l.conn.CreateContainer(path, data, zk.FlagContainer, acl)
		}, nil)
		switch {
		case errors.Is(err, zk.ErrNodeExists):
			return nil
		case err == nil && path == key:
			made, _ = take(created)
		}
		return err
	}
	err := create(key)
	if !errors.Is(err, zk.ErrNoNode) {
		return made, err
	}
	for i := 1; i < len(key); i++ {
		if key[i] == '/' {
			if err := create(key[:i]); err != nil {
				return 0, err
			}
		}
	}
	return made, create(key)
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
