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

	"github.com/go-zookeeper/zk"
)

// Watch implements backend.Watcher. It watches, with one ZooKeeper data
// watch at a time:
//
//   - the lock node itself when it is an outside program's plain ephemeral
//     node;
//   - else, when holder has a node under it, the contender just before
//     that node (none when holder's node is first: the channel is closed at
//     once, holder may take the lock); after an Acquire of this locker
//     queued holder, the one that Acquire saw, without a read, unless it
//     is gone already;
//   - else the first contender, the holder of the lock;
//   - on a path with a semaphore's nodes (see semaphoreWatchTarget): the
//     predecessor of holder's place in the mutex at the path or in the
//     semaphore's guard mutex, or the first mutex contender that holds the
//     semaphore off, or else, with a children watch, P/leases, whose
//     change may make room.
//
// When nothing holds the lock the channel is closed at once. A data watch
// (getData, as Curator sets on its predecessor) fires when the node is
// deleted and when it is written; a write is a renewal, which changes
// nothing that matters, so the watch is set again and the channel stays
// open. The channel is also closed when ctx ends, when the connection to
// the server is lost, and when the Locker is closed; its goroutine ends
// then. A watch abandoned by ctx stays registered in the client until it
// fires or the session ends; it holds no goroutine.
func (l *locker) Watch(ctx context.Context, key, holder string) (<-chan struct{}, error) {
	if err := validateKey(key); err != nil {
		return nil, fmt.Errorf("zookeeper: watch %q: %w", key, err)
	}
	if holder == "" {
		return nil, fmt.Errorf("zookeeper: watch %q: empty holder", key)
	}
	// Taken before looking, so that a connection lost while looking closes
	// the channel too.
	lost := l.link.lost()
	w, ok, err := l.armFor(ctx, key, holder)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return closed(), nil
	}

	changed := make(chan struct{})
	l.watching.Add(1)
	go func() {
		defer l.watching.Add(-1)
		defer close(changed)
		for {
			select {
			case <-ctx.Done():
				return
			case <-lost:
				return
			case ev := <-w.events:
				if ev.Type == zk.EventNodeDeleted && w.hinted {
					// The holder's next Acquire need not list the lock node
					// to know that the node before its place is gone.
					l.hints.update(key, func(k *keyHints) { k.sawDeleted(holder, w.path[len(key)+1:]) })
				}
				if ev.Type != zk.EventNodeDataChanged {
					return // deleted, or the watch was dropped (EventNotWatching)
				}
				var gone bool
				if w.events, gone, err = l.arm(ctx, w.path, w.czxid); err != nil || gone {
					return
				}
			}
		}
	}()
	return changed, nil
}

// armed is a data watch that is set; hinted reports that its node is the
// one the last Acquire saw before the holder's place.
type armed struct {
	path   string
	czxid  int64
	events <-chan zk.Event
	hinted bool
}

// armFor sets the watch that matters to holder (watchPath), from the
// locker's hint first. It reports false when there is nothing to wait for.
func (l *locker) armFor(ctx context.Context, key, holder string) (armed, bool, error) {
	for _, useHint := range []bool{true, false} {
		t, err := l.watchPath(ctx, key, holder, useHint)
		if err != nil || t.path == "" {
			return armed{}, false, err
		}
		arm := l.arm
		if t.children {
			arm = l.armChildren
		}
		events, gone, err := arm(ctx, t.path, t.czxid)
		switch {
		case err != nil:
			return armed{}, false, wrap("watch", key, err)
		case !gone:
			return armed{t.path, t.czxid, events, t.hinted}, true, nil
		case !t.hinted:
			return armed{}, false, nil
		}
		// The node the last Acquire saw before the holder's place is gone
		// already: look at the lock node.
		l.hints.update(key, func(k *keyHints) { k.forgetBefore(holder) })
	}
	return armed{}, false, nil
}

// watchSpec is the watch to set: a data watch on the node at path, which
// must have the creation zxid czxid (0: any), or with children a children
// watch; hinted reports that path comes from the locker's hint. An empty
// path means there is nothing to wait for.
type watchSpec struct {
	path     string
	czxid    int64
	hinted   bool
	children bool
}

// watchPath returns the watch to set for holder. With useHint, when the
// locker's last Acquire for holder queued it, the node it saw before the
// holder's place is the one (hinted): nodes are only ever added after it,
// so it stays the holder's predecessor while it exists. Otherwise it lists
// the lock node; when that has a semaphore's nodes, semaphoreWatch picks.
func (l *locker) watchPath(ctx context.Context, key, holder string, useHint bool) (watchSpec, error) {
	if before, ok := l.hints.waitsBehind(key, holder); ok && useHint {
		return watchSpec{path: key + "/" + before, hinted: true}, nil
	}
	v, err := l.observe(ctx, key)
	if errors.Is(err, zk.ErrNoNode) {
		return watchSpec{}, nil
	}
	if err != nil {
		return watchSpec{}, wrap("watch", key, err)
	}
	if v.ephemeral() {
		return watchSpec{path: key, czxid: v.stat.Czxid}, nil
	}
	if v.leases || v.locks {
		return l.semaphoreWatch(ctx, key, holder, v)
	}
	target, ok := watchTarget(v.contenders, l.hints.owner(holder))
	if !ok {
		return watchSpec{}, nil
	}
	return watchSpec{path: target.path(key)}, nil
}

// semaphoreWatch returns the watch to set for holder on the lock path key
// with a semaphore's nodes, listed in v (semaphoreWatchTarget).
func (l *locker) semaphoreWatch(ctx context.Context, key, holder string, v view) (watchSpec, error) {
	leases := l.startListLeases(ctx, key)
	var guard []contender
	if v.locks {
		g, err := l.observe(ctx, guardKey(key))
		switch {
		case errors.Is(err, zk.ErrNoNode):
		case err != nil:
			leases.abandon()
			return watchSpec{}, wrap("watch", key, err)
		default:
			guard = g.contenders
		}
	}
	children, err := leases.wait(ctx)
	if err != nil {
		return watchSpec{}, wrap("watch", key, err)
	}
	w := semaphoreWatchTarget(v.contenders, guard, children, l.hints.owner(holder))
	if w.path == "" {
		return watchSpec{}, nil
	}
	return watchSpec{path: key + "/" + w.path, children: w.children}, nil
}

// watchTarget picks the node whose deletion matters to the holder that
// own describes: the contender before the holder's first node, or the
// first contender when the holder has none. It reports false when there is
// nothing to wait for: no contender, or the holder's node is first.
func watchTarget(nodes []contender, own owner) (contender, bool) {
	for i, n := range nodes {
		if own.owns(n.name) {
			if i == 0 {
				return contender{}, false
			}
			return nodes[i-1], true
		}
	}
	if len(nodes) == 0 {
		return contender{}, false
	}
	return nodes[0], true
}

// arm sets a data watch on the node at path. It reports gone when the node
// does not exist, or when czxid is not zero and the node at path is another
// one than the node created at czxid.
func (l *locker) arm(ctx context.Context, path string, czxid int64) (<-chan zk.Event, bool, error) {
	type armed struct {
		stat   *zk.Stat
		events <-chan zk.Event
	}
	got, err := call(ctx, func() (armed, error) {
		_, stat, events, err := l.conn.GetW(path)
		return armed{stat, events}, err //nolint:wrapcheck // the caller wraps it
	}, nil)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, true, nil
	case err != nil:
		return nil, false, err
	case czxid != 0 && got.stat.Czxid != czxid:
		return nil, true, nil
	}
	return got.events, false, nil
}

// armChildren sets a children watch on the node at path (czxid is not
// used: the node is a semaphore's P/leases, and its deletion fires the
// watch too). It reports gone when the node does not exist.
func (l *locker) armChildren(ctx context.Context, path string, _ int64) (<-chan zk.Event, bool, error) {
	events, err := call(ctx, func() (<-chan zk.Event, error) {
		_, _, events, err := l.conn.ChildrenW(path)
		return events, err //nolint:wrapcheck // the caller wraps it
	}, nil)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, true, nil
	case err != nil:
		return nil, false, err
	}
	return events, false, nil
}

// closed returns a closed channel.
func closed() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
