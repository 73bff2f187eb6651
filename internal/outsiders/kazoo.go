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

package outsiders

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"
)

// KazooLock follows the Lock recipe of Python's kazoo
// (kazoo/recipe/lock.py, class Lock) step by step, as a Python program on
// the same path would.
type KazooLock struct {
	conn *zk.Conn
	path string
	// prefix is uuid4().hex + "__lock__", new for every Lock object.
	prefix string
	// contenders is kazoo's _contenders_re: the names that exclude this
	// contender, "__lock__" and the extra_lock_patterns.
	contenders *regexp.Regexp
	node       string
}

// NewKazooLock is kazoo's Lock(client, path, extra_lock_patterns=...).
func NewKazooLock(conn *zk.Conn, path string, extraLockPatterns ...string) *KazooLock {
	patterns := append([]string{"__lock__"}, extraLockPatterns...)
	return &KazooLock{
		conn:       conn,
		path:       path,
		prefix:     hex.EncodeToString([]byte(rand.Text())[:16]) + "__lock__",
		contenders: regexp.MustCompile(`(?:` + strings.Join(patterns, "|") + `)(-?\d{10})$`),
	}
}

// Acquire is kazoo's Lock.acquire(blocking): ensure the path (persistent
// nodes), create an EPHEMERAL_SEQUENTIAL node, and hold when no contender
// comes before it; otherwise give up (deleting the node) or wait for the
// predecessor's getData watch.
func (k *KazooLock) Acquire(ctx context.Context, blocking bool) (bool, error) {
	for i := 1; i <= len(k.path); i++ {
		if i == len(k.path) || k.path[i] == '/' {
			_, err := k.conn.Create(k.path[:i], nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return false, fmt.Errorf("kazoo: creating %s: %w", k.path[:i], err)
			}
		}
	}
	created, err := k.conn.Create(k.path+"/"+k.prefix, []byte("kazoo"), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		return false, fmt.Errorf("kazoo: creating the lock node: %w", err)
	}
	k.node = created[len(k.path)+1:]
	for {
		predecessor, err := k.predecessor()
		if err != nil {
			return false, err
		}
		if predecessor == "" {
			return true, nil
		}
		if !blocking {
			return false, k.Release()
		}
		_, _, events, err := k.conn.GetW(k.path + "/" + predecessor)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("kazoo: watching %s: %w", predecessor, err)
		}
		select {
		case <-events:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// predecessor is kazoo's _get_predecessor: among the children that match
// the contenders pattern, those whose sequence, compared as a string, is
// below this node's; the highest of them.
func (k *KazooLock) predecessor() (string, error) {
	children, _, err := k.conn.Children(k.path)
	if err != nil {
		return "", fmt.Errorf("kazoo: listing %s: %w", k.path, err)
	}
	ownSeq := k.node[len(k.prefix):]
	type match struct{ name, seq string }
	var before []match
	for _, child := range children {
		if m := k.contenders.FindStringSubmatch(child); m != nil && m[1] < ownSeq {
			before = append(before, match{child, m[1]})
		}
	}
	if len(before) == 0 {
		return "", nil
	}
	slices.SortFunc(before, func(a, b match) int { return strings.Compare(a.seq, b.seq) })
	return before[len(before)-1].name, nil
}

// Release is kazoo's Lock.release: delete the node.
func (k *KazooLock) Release() error {
	err := k.conn.Delete(k.path+"/"+k.node, -1)
	k.node = ""
	if err != nil {
		return fmt.Errorf("kazoo: deleting the lock node: %w", err)
	}
	return nil
}

// Node is the name of the lock node this Lock holds or waits with ("" when
// none).
func (k *KazooLock) Node() string { return k.node }

// KazooNodeName matches the names of kazoo Lock's nodes.
var KazooNodeName = regexp.MustCompile(`^[0-9a-f]{32}__lock__\d{10}$`)
