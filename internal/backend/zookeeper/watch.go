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
//     once, holder may take the lock);
//   - else the first contender, the holder of the lock.
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
	v, err := l.observe(ctx, key)
	if errors.Is(err, zk.ErrNoNode) {
		return closed(), nil
	}
	if err != nil {
		return nil, wrap("watch", key, err)
	}
	path, czxid := key, v.stat.Czxid
	if !v.ephemeral() {
		target, ok := watchTarget(v.contenders, newOwner(holder))
		if !ok {
			return closed(), nil
		}
		path, czxid = target.path(key), 0
	}
	events, gone, err := l.arm(ctx, path, czxid)
	switch {
	case err != nil:
		return nil, wrap("watch", key, err)
	case gone:
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
			case ev := <-events:
				if ev.Type != zk.EventNodeDataChanged {
					return // deleted, or the watch was dropped (EventNotWatching)
				}
				if events, gone, err = l.arm(ctx, path, czxid); err != nil || gone {
					return
				}
			}
		}
	}()
	return changed, nil
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

// closed returns a closed channel.
func closed() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
