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
	"sync"
	"time"
)

// maxHintKeys bounds the locks a locker remembers; past it, it forgets
// them all and starts again.
const maxHintKeys = 4096

// hints is what a locker remembers of the locks it used, to choose the
// order of its requests (choosePlan) and to describe holders without a
// read. Nothing in it is trusted: every decision is made on what the
// server answers, and a wrong hint costs a round trip, no more.
type hints struct {
	mu     sync.Mutex
	keys   map[string]*keyHints
	owners map[string]owner
}

// keyHints is what a locker remembers of one lock.
type keyHints struct {
	// lockNodeGone: the locker's last Release deleted the lock node.
	lockNodeGone bool
	// contended: the last attempt found another holder first.
	contended bool
	// lockNode and kind: the creation zxid of the lock node last seen, and
	// whether it is ours (classifyLockNode).
	lockNode int64
	kind     lockNodeKind
	// nodes are the holders' nodes (a hold or a place in line) that the
	// locker's Acquires left, by holder; queued counts those that wait in
	// line.
	nodes  map[string]nodeHint
	queued int
	// firstName is the last node the locker saw come first, in the lock
	// node created at firstLockNode: once first, a node stays first until
	// it goes, so the node after it is first then.
	firstLockNode int64
	firstName     string
	// head describes the holder of a node, for messages: the node named
	// headName in the lock node created at headLockNode.
	headLockNode int64
	headName     string
	head         string
}

// nodeHint is what a locker remembers of a holder's node.
type nodeHint struct {
	// name and czxid name the node.
	name  string
	czxid int64
	// queued: the node waited in line when last seen, in the lock node
	// created at lockNode; before is the node just before it then, what
	// Watch waits for, and beforeIsHead reports that before was the first
	// contender. beforeGone: a Watch saw before deleted since.
	queued       bool
	lockNode     int64
	before       string
	beforeIsHead bool
	beforeGone   bool
	// written is when the locker sent the last write that restarted the
	// node's clock (its creation or a refresh), and ttl the node's TTL,
	// fixed at its creation (0 when the locker did not create it).
	written time.Time
	ttl     time.Duration
}

// remaining is how long the node lives at least without another write:
// the server measures its TTL from the write, which it received after
// written.
func (n nodeHint) remaining(now time.Time) time.Duration {
	if n.ttl == 0 || n.written.IsZero() {
		return 0
	}
	return n.ttl - now.Sub(n.written)
}

// hint is what choosePlan and Acquire read of a lock, for one holder.
type hint struct {
	node         nodeHint
	lockNodeGone bool
	contended    bool
	lockNode     int64
	kind         lockNodeKind
	// othersQueued: other holders' places in line that the locker knows
	// of.
	othersQueued bool
	// beforeWasFirst: the node before the holder's place (node.before) is
	// one the locker saw come first.
	beforeWasFirst bool
}

func newHints() *hints { return &hints{keys: map[string]*keyHints{}, owners: map[string]owner{}} }

// entry returns the hints of key, made if missing. Call with mu held.
func (h *hints) entry(key string) *keyHints {
	k, ok := h.keys[key]
	if !ok {
		if len(h.keys) >= maxHintKeys {
			h.keys = map[string]*keyHints{}
		}
		k = &keyHints{}
		h.keys[key] = k
	}
	return k
}

// owner returns newOwner(holder), remembered: it hashes.
func (h *hints) owner(holder string) owner {
	h.mu.Lock()
	defer h.mu.Unlock()
	if o, ok := h.owners[holder]; ok {
		return o
	}
	if len(h.owners) >= maxHintKeys {
		h.owners = map[string]owner{}
	}
	o := newOwner(holder)
	h.owners[holder] = o
	return o
}

// get returns the hint of key for holder.
func (h *hints) get(key, holder string) hint {
	h.mu.Lock()
	defer h.mu.Unlock()
	k, ok := h.keys[key]
	if !ok {
		return hint{}
	}
	got := hint{node: k.nodes[holder], lockNodeGone: k.lockNodeGone, contended: k.contended, lockNode: k.lockNode, kind: k.kind}
	others := k.queued
	if got.node.queued {
		others--
	}
	got.othersQueued = others > 0
	got.beforeWasFirst = got.node.before != "" && got.node.before == k.firstName && got.node.lockNode == k.firstLockNode
	return got
}

// update changes the hints of key.
func (h *hints) update(key string, change func(*keyHints)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	change(h.entry(key))
}

// setNode records holder's node in key (a zero n forgets it).
func (k *keyHints) setNode(holder string, n nodeHint) {
	if k.nodes[holder].queued {
		k.queued--
	}
	if n.name == "" {
		delete(k.nodes, holder)
		return
	}
	if k.nodes == nil {
		k.nodes = map[string]nodeHint{}
	}
	k.nodes[holder] = n
	if n.queued {
		k.queued++
	}
}

// forgetNode forgets holder's node if it is name.
func (k *keyHints) forgetNode(holder, name string) {
	if k.nodes[holder].name == name {
		k.setNode(holder, nodeHint{})
	}
}

// forgetBefore forgets the node before holder's place in line.
func (k *keyHints) forgetBefore(holder string) {
	if n, ok := k.nodes[holder]; ok {
		n.before = ""
		k.nodes[holder] = n
	}
}

// sawDeleted records that the node named before was deleted, if it is the
// one before holder's place in line.
func (k *keyHints) sawDeleted(holder, before string) {
	if n, ok := k.nodes[holder]; ok && n.queued && n.before == before {
		n.beforeGone = true
		k.nodes[holder] = n
	}
}

// sawFirst records that the node named name came first in the lock node
// created at lockNode.
func (k *keyHints) sawFirst(lockNode int64, name string) {
	k.firstLockNode, k.firstName = lockNode, name
}

// sawLockNode records the lock node created at czxid, of kind.
func (k *keyHints) sawLockNode(czxid int64, kind lockNodeKind) {
	k.lockNodeGone = false
	if kind != lockNodeUnknown {
		k.lockNode, k.kind = czxid, kind
	}
}

// waitsBehind returns the node before holder's place in line in key, as
// the Acquire that queued it saw it.
func (h *hints) waitsBehind(key, holder string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k, ok := h.keys[key]
	if !ok || !k.nodes[holder].queued || k.nodes[holder].before == "" {
		return "", false
	}
	return k.nodes[holder].before, true
}

// described returns the description of the holder of node name in the
// lock node created at lockNode, if the locker has one.
func (h *hints) described(key string, lockNode int64, name string) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k, ok := h.keys[key]
	if !ok || k.headLockNode != lockNode || k.headName != name || k.head == "" {
		return "", false
	}
	return k.head, true
}
