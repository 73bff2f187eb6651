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
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

// The decisions of Acquire, apart from its requests (acquire.go does what
// they say): which requests go first, and what a listing of the lock node
// means for the holder.

// plan is how an Acquire attempt starts.
type plan int

const (
	// planCreate creates the holder's node at once and lists the lock node
	// right behind it (and, when the lock node is probably gone, creates
	// that first): one round trip when the lock is free. A node of the
	// holder's that exists already (a restarted controller's hold) shows in
	// the listing; the new node is then deleted again.
	planCreate plan = iota
	// planRefresh restarts the clock of the holder's node that this locker
	// knows of while it lists the lock node: one round trip for a hold
	// taken again or a place in line refreshed.
	planRefresh
	// planTakeTurn lists the lock node to see whether the holder's place in
	// line, written a moment ago, has come first. Its clock is not
	// restarted when it has (the Lease reports the time it has left, at
	// least freshShare of the TTL), so taking one's turn costs one read, as
	// it does for zk.Lock; a place still waiting is refreshed.
	planTakeTurn
	// planTakeSeenTurn is planTakeTurn when a Watch saw the node before the
	// holder's place deleted, and that node had come first (it was the
	// first contender when the place was listed, or the locker saw it come
	// first since): the holder's place is first now if it still exists
	// (nodes before a first one are gone for good, later nodes come after
	// the place, and nothing was between), which a read of that one node
	// confirms, rather than a listing of them all.
	planTakeSeenTurn
	// planLook lists the lock node first: a lock held by someone else costs
	// that one read when Acquire does not queue.
	planLook
)

// freshShare is the share of the TTL that a place in line must have left
// to become a hold without a write (planTakeTurn): 9/10, so that a hold
// taken that way is as good as one written when its first renewal (at a
// third of the TTL) is due, bar a tenth.
const freshShare = 0.9

// choosePlan picks how an attempt asking for ttl starts at now, from what
// the locker remembers of the lock (h) and the options.
func choosePlan(h hint, opts backend.AcquireOptions, ttl time.Duration, now time.Time) plan {
	fresh := h.node.name != "" && h.node.queued && float64(h.node.remaining(now)) >= freshShare*float64(ttl)
	switch {
	case fresh && h.node.beforeGone && (h.node.beforeIsHead || h.beforeWasFirst) && h.node.czxid != 0:
		return planTakeSeenTurn
	case fresh:
		return planTakeTurn
	case h.node.name != "":
		return planRefresh
	case h.contended && !opts.Queue:
		return planLook
	}
	return planCreate
}

// outcome is what a listing of the lock node means for the holder.
type outcome int

const (
	// outcomeHold: the holder's node keep comes first; it holds.
	outcomeHold outcome = iota
	// outcomeQueue: keep waits in line behind head.
	outcomeQueue
	// outcomeRefuse: head, another holder's node, comes first and the
	// holder does not queue; all its nodes go.
	outcomeRefuse
	// outcomeCreate: the holder has no node, and either nobody holds the
	// lock or the holder queues: it creates one.
	outcomeCreate
	// outcomeVanished: the node this attempt created is not listed.
	outcomeVanished
)

// decision is the outcome with the nodes it concerns.
type decision struct {
	outcome outcome
	// keep is the holder's node that stays (outcomeHold, outcomeQueue).
	keep contender
	// drop are the holder's nodes to delete: nodes left by interrupted or
	// concurrent attempts (all but the lowest), or all of them when the
	// holder gives its place up.
	drop []contender
	// head is the first contender (outcomeQueue, outcomeRefuse).
	head contender
}

// decide reads a listing of the lock node (contenders, lowest first) for
// the holder own. created names the node this attempt created, or is
// empty; queue is the Queue option.
//
// A holder keeps at most one node, the lowest: one made before (a hold
// being taken again, a place in line, a restarted controller's hold)
// comes before the one this attempt made, which is then dropped, so that
// the hold keeps its token.
func decide(contenders []contender, own owner, created string, queue bool) decision {
	mine := own.mine(contenders)
	if created != "" && !containsNode(mine, created) {
		return decision{outcome: outcomeVanished}
	}
	if len(mine) == 0 {
		if len(contenders) > 0 && !queue {
			return decision{outcome: outcomeRefuse, head: contenders[0]}
		}
		return decision{outcome: outcomeCreate}
	}
	keep, head := mine[0], contenders[0]
	switch {
	case head.name == keep.name:
		return decision{outcome: outcomeHold, keep: keep, drop: mine[1:]}
	case queue:
		return decision{outcome: outcomeQueue, keep: keep, drop: mine[1:], head: head}
	}
	return decision{outcome: outcomeRefuse, drop: mine, head: head}
}

func containsNode(nodes []contender, name string) bool {
	for _, n := range nodes {
		if n.name == name {
			return true
		}
	}
	return false
}

// classifyLockNode tells what the lock node with Stat st is, for Release:
// ours when this attempt created it (made is its creation zxid as the
// server answered it) or the locker knew it as such (known, of kind);
// foreign when its data cannot be containerMark; unknown otherwise (its
// data is then read when the hold is released).
func classifyLockNode(st *zk.Stat, made int64, known int64, kind lockNodeKind) lockNodeKind {
	switch {
	case made != 0 && made == st.Czxid:
		return lockNodeOurs
	case known != 0 && known == st.Czxid:
		return kind
	case st.DataLength != int32(len(containerMark)):
		return lockNodeForeign
	}
	return lockNodeUnknown
}

// freshLockNode reports whether the holder's node name, created at czxid,
// is the first child of the lock node this attempt created at made (0 when
// it did not, or the creation's answer was not seen), and so holds without
// a listing: its sequence number is 0 (no child was created in the lock
// node before it) and its zxid follows the lock node's directly (no
// transaction in between: the lock node it was created in is the one made).
func freshLockNode(name string, made, czxid int64) bool {
	c, ok := parseContender(name)
	return ok && c.seq == 0 && made > 0 && czxid == made+1
}
