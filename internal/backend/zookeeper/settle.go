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
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

// What an Acquire attempt does once it has a listing of the lock node.

// touched is the holder's node that an attempt created or refreshed, or
// that the locker knew of.
type touched struct {
	name    string
	created bool
	// czxid is the node's creation zxid, 0 when not known.
	czxid int64
	// written is when the last write that restarted the node's clock was
	// sent, and wroteNow whether this attempt made it; ttl is the node's
	// TTL when known (0 otherwise).
	written  time.Time
	wroteNow bool
	ttl      time.Duration
}

// act does what the listing v means for the holder (decide); t is the
// holder's node this attempt created or refreshed, or knew of.
func (a *acquisition) act(ctx context.Context, v view, t touched) (backend.Lease, error) {
	if v.ephemeral() {
		// Nothing can queue under an ephemeral node.
		return backend.Lease{}, a.notAcquired(describeEphemeral(a.key, v.stat))
	}
	h := a.l.hints.get(a.key, a.owner.holder)
	kind := classifyLockNode(v.stat, a.madeLockNode, h.lockNode, h.kind)
	created := ""
	if t.created {
		created = t.name
	}
	d := decide(v.contenders, a.owner, created, a.opts.Queue)
	switch d.outcome {
	case outcomeVanished:
		return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q for %q: node %s vanished right after it was created",
			a.key, a.owner.holder, created)
	case outcomeCreate:
		return a.create(ctx, false)
	case outcomeRefuse:
		return backend.Lease{}, a.refuse(ctx, v, d, kind)
	}

	t, err := a.settle(ctx, d, t)
	if err != nil {
		return backend.Lease{}, err
	}
	heldOff := ""
	if d.outcome == outcomeHold && v.leases {
		// The path has a semaphore's nodes: its holds keep the mutex.
		if heldOff, err = a.l.heldOffBySemaphore(ctx, a.key, t.czxid); err != nil {
			return backend.Lease{}, wrap("acquire", a.key, err)
		}
		if heldOff != "" && !a.opts.Queue {
			return backend.Lease{}, a.refuseForSemaphore(ctx, d.keep, heldOff)
		}
		if heldOff != "" {
			d.outcome = outcomeQueue
		}
	}
	hold := handle{name: d.keep.name, token: t.czxid, parent: v.stat.Czxid, lockNode: kind,
		alone: d.outcome == outcomeHold && int(v.stat.NumChildren)-len(d.drop) == 1}
	if t.created && a.opts.MinToken > 0 && t.czxid <= a.opts.MinToken {
		// Nodes that existed were checked when they were created.
		a.l.deleteBestEffort(ctx, a.key, hold)
		a.forgetNode(t.name)
		return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q for %q: the new node's creation zxid %d does not exceed "+
			"the highest fencing token handed out before, %d (was the ensemble's data wiped?): %w",
			a.key, a.owner.holder, t.czxid, a.opts.MinToken, backend.ErrFencingRegressed)
	}
	before, _ := watchTarget(v.contenders, a.owner)
	if v.leases {
		// A semaphore's holds may keep the holder waiting even once its
		// predecessor is gone: no taking turns without a listing.
		before = contender{}
	}
	a.l.hints.update(a.key, func(k *keyHints) {
		k.setNode(a.owner.holder, nodeHint{name: t.name, czxid: t.czxid, queued: d.outcome == outcomeQueue,
			lockNode: v.stat.Czxid, before: before.name, beforeIsHead: before.name == d.head.name,
			written: t.written, ttl: t.ttl})
		k.sawLockNode(v.stat.Czxid, kind)
		k.sawFirst(v.stat.Czxid, v.contenders[0].name)
		k.contended = d.outcome == outcomeQueue
	})
	lease := backend.Lease{Key: a.key, Holder: a.owner.holder, Token: t.czxid, TTL: a.ttl, Handle: hold.String()}
	if !t.wroteNow {
		// A place in line that has just come first, written a moment ago
		// (planTakeTurn): the hold lasts what the place has left.
		lease.TTL = min(a.ttl, t.remaining())
	}
	if d.outcome == outcomeHold {
		return lease, nil
	}
	lease.Queued = true
	if heldOff != "" {
		return lease, a.notAcquired(fmt.Sprintf("%s; the holder waits first in line with node %s", heldOff, d.keep.name))
	}
	// Who holds is said from what the locker knows, without a read: the
	// caller of a queued Acquire waits rather than reports.
	return lease, a.notAcquired(fmt.Sprintf("%s; the holder waits in line with node %s",
		a.l.describeKnown(a.key, v.stat.Czxid, d.head), d.keep.name))
}

// settle deletes the holder's nodes that must go (d.drop) and makes sure
// of the one that stays, d.keep: its creation zxid, and its clock
// restarted unless t, the node this attempt created or refreshed, is it,
// or t is a place in line that has just come first (written a moment ago).
// It returns what it knows of d.keep.
func (a *acquisition) settle(ctx context.Context, d decision, t touched) (touched, error) {
	var set *future[*zk.Stat]
	written := time.Now()
	switch {
	case d.keep.name != t.name:
		// A node of the holder's that this locker did not know of (a
		// restarted controller's hold): restart its clock.
		t = touched{name: d.keep.name}
		set = a.l.startSet(ctx, d.keep.path(a.key), []byte(a.owner.holder))
	case !t.wroteNow && d.outcome == outcomeQueue:
		// A place in line that still waits: refresh it.
		set = a.l.startSet(ctx, d.keep.path(a.key), []byte(a.owner.holder))
	case t.czxid == 0:
		set = start(ctx, func() (*zk.Stat, error) { return a.l.stat(ctx, d.keep.path(a.key)) }, nil)
		written = time.Time{}
	}
	dropped := a.l.deleteNodes(ctx, a.key, d.drop)
	if set != nil {
		stat, err := set.wait(ctx)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return t, retry("the holder's node expired a moment ago")
		case err != nil:
			return t, wrap("acquire", a.key, err)
		}
		t.czxid = stat.Czxid
		if !written.IsZero() {
			t.written, t.wroteNow = written, true
		}
	}
	if dropped != nil {
		return t, wrap("acquire", a.key, dropped)
	}
	return t, nil
}

// refuse deletes the holder's nodes (its place in line, the node this
// attempt created) while it finds out who holds the lock.
func (a *acquisition) refuse(ctx context.Context, v view, d decision, kind lockNodeKind) error {
	a.l.hints.update(a.key, func(k *keyHints) {
		k.setNode(a.owner.holder, nodeHint{})
		k.sawLockNode(v.stat.Czxid, kind)
		k.sawFirst(v.stat.Czxid, d.head.name)
		k.contended = true
	})
	if len(d.drop) == 0 {
		return a.notAcquired(a.l.describe(ctx, a.key, v.stat.Czxid, d.head))
	}
	dropped := make(chan error, 1)
	go func() { dropped <- a.l.deleteNodes(ctx, a.key, d.drop) }()
	why := a.l.describe(ctx, a.key, v.stat.Czxid, d.head)
	if err := <-dropped; err != nil {
		return wrap("acquire", a.key, err)
	}
	return a.notAcquired(why)
}

// refuseForSemaphore deletes the holder's node keep, first in line but held
// off by a semaphore's holds (why), as the holder does not queue.
func (a *acquisition) refuseForSemaphore(ctx context.Context, keep contender, why string) error {
	a.l.hints.update(a.key, func(k *keyHints) {
		k.forgetNode(a.owner.holder, keep.name)
		k.contended = true
	})
	if err := a.l.deleteNodes(ctx, a.key, []contender{keep}); err != nil {
		return wrap("acquire", a.key, err)
	}
	return a.notAcquired(why)
}

// forgetNode forgets the holder's node name in the locker's hints.
func (a *acquisition) forgetNode(name string) {
	a.l.hints.update(a.key, func(k *keyHints) { k.forgetNode(a.owner.holder, name) })
}

func (a *acquisition) notAcquired(why string) error {
	return fmt.Errorf("zookeeper: acquire %q for %q: %s: %w", a.key, a.owner.holder, why, backend.ErrNotAcquired)
}

// remaining is how long t's node lives at least without another write.
func (t touched) remaining() time.Duration {
	return nodeHint{written: t.written, ttl: t.ttl}.remaining(time.Now())
}
