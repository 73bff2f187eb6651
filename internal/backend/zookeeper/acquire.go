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
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

// errRetry marks an Acquire attempt that raced with the server or with
// another Acquire for the same holder and is worth repeating.
var errRetry = errors.New("the lock changed during the attempt")

func retry(why string) error { return fmt.Errorf("%w: %s", errRetry, why) }

// Acquire implements backend.Locker. See the package documentation for the
// queue (backend.WithQueue), the fencing floor (backend.WithMinToken) and
// semaphores (backend.WithLimit), decide.go for the order of a mutex's
// requests and semaphore.go for a semaphore's.
func (l *locker) Acquire(
	ctx context.Context, key, holder string, ttl time.Duration, opts ...backend.AcquireOption,
) (backend.Lease, error) {
	if err := validate(key, holder, ttl); err != nil {
		return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q: %w", key, err)
	}
	o := backend.NewAcquireOptions(opts...)
	if o.Limit >= 2 {
		return l.acquireSemaphore(ctx, key, holder, ttl, o)
	}
	return l.acquireMutex(ctx, key, holder, ttl, o)
}

// acquireMutex is Acquire of the mutex at key (a Limit of 0 or 1), and of
// a semaphore's guard mutex.
func (l *locker) acquireMutex(
	ctx context.Context, key, holder string, ttl time.Duration, opts backend.AcquireOptions,
) (backend.Lease, error) {
	a := acquisition{l: l, key: key, owner: l.hints.owner(holder), ttl: ttl, opts: opts}
	for try := 1; ; try++ {
		lease, err := a.attempt(ctx)
		if !errors.Is(err, errRetry) {
			return lease, err
		}
		if try == attempts {
			return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q for %q: gave up after %d attempts: %w", key, holder, attempts, err)
		}
	}
}

// acquisition is one Acquire call.
type acquisition struct {
	l     *locker
	key   string
	owner owner
	ttl   time.Duration
	opts  backend.AcquireOptions
	// madeLockNode is the creation zxid of the lock node this Acquire
	// created, when the server's answer showed it.
	madeLockNode int64
}

// attempt looks at the lock once, in the order choosePlan picks, and acts
// on what it sees. It returns an error wrapping errRetry when the lock
// changed under it.
func (a *acquisition) attempt(ctx context.Context) (backend.Lease, error) {
	h := a.l.hints.get(a.key, a.owner.holder)
	switch choosePlan(h, a.opts, a.ttl, time.Now()) {
	case planRefresh:
		return a.refresh(ctx, h.node)
	case planTakeSeenTurn:
		return a.takeSeenTurn(ctx, h.node)
	case planTakeTurn:
		v, err := a.l.observe(ctx, a.key)
		if errors.Is(err, zk.ErrNoNode) {
			a.forgetNode(h.node.name)
			return a.create(ctx, true)
		}
		if err != nil {
			return backend.Lease{}, wrap("acquire", a.key, err)
		}
		return a.act(ctx, v, touched{name: h.node.name, czxid: h.node.czxid, written: h.node.written, ttl: h.node.ttl})
	case planLook:
		v, err := a.l.observe(ctx, a.key)
		if errors.Is(err, zk.ErrNoNode) {
			return a.create(ctx, true)
		}
		if err != nil {
			return backend.Lease{}, wrap("acquire", a.key, err)
		}
		return a.act(ctx, v, touched{})
	}
	return a.create(ctx, h.lockNodeGone)
}

// takeSeenTurn takes the hold with n, the holder's place in line, whose
// predecessor, a node that had come first, a Watch saw deleted
// (planTakeSeenTurn): when n still exists it is first. When it does not,
// the attempt is repeated without it.
func (a *acquisition) takeSeenTurn(ctx context.Context, n nodeHint) (backend.Lease, error) {
	stat, err := a.l.stat(ctx, a.key+"/"+n.name)
	switch {
	case errors.Is(err, zk.ErrNoNode) || err == nil && stat.Czxid != n.czxid:
		a.forgetNode(n.name)
		return backend.Lease{}, retry("the holder's place in line is gone")
	case err != nil:
		return backend.Lease{}, wrap("acquire", a.key, err)
	}
	h := a.l.hints.get(a.key, a.owner.holder)
	kind := lockNodeUnknown
	if h.lockNode == n.lockNode {
		kind = h.kind
	}
	hold := handle{name: n.name, token: n.czxid, parent: n.lockNode, lockNode: kind}
	a.l.hints.update(a.key, func(k *keyHints) {
		k.setNode(a.owner.holder, nodeHint{name: n.name, czxid: n.czxid, lockNode: n.lockNode, written: n.written, ttl: n.ttl})
		k.sawFirst(n.lockNode, n.name)
		k.contended = false
	})
	return backend.Lease{Key: a.key, Holder: a.owner.holder, Token: n.czxid, TTL: min(a.ttl, n.remaining(time.Now())),
		Handle: hold.String()}, nil
}

// refresh restarts the clock of n, the holder's node that the locker knows
// of, while it lists the lock node, then acts on the listing.
func (a *acquisition) refresh(ctx context.Context, n nodeHint) (backend.Lease, error) {
	written := time.Now()
	list := a.l.startObserve(ctx, a.key)
	set := a.l.startSet(ctx, a.key+"/"+n.name, []byte(a.owner.holder))
	v, err := list.wait(ctx)
	if err != nil {
		set.abandon()
	}
	switch {
	case errors.Is(err, zk.ErrNoNode):
		a.forgetNode(n.name)
		return a.create(ctx, true)
	case err != nil:
		return backend.Lease{}, wrap("acquire", a.key, err)
	}
	stat, err := set.wait(ctx)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		a.forgetNode(n.name) // expired or released: act on the listing alone
		return a.act(ctx, v, touched{})
	case err != nil:
		return backend.Lease{}, wrap("acquire", a.key, err)
	}
	return a.act(ctx, v, touched{name: n.name, czxid: stat.Czxid, written: written, wroteNow: true, ttl: n.ttl})
}

// create creates a node for the holder and lists the lock node right
// behind it: the requests go out back to back (inOrder) and are answered in
// about one round trip. Then it acts on the listing. When lockNodeGone, it
// creates the lock node first and lists it only if it must: a node created
// right after the lock node, with no transaction between (freshLockNode),
// is its first child and holds.
func (a *acquisition) create(ctx context.Context, lockNodeGone bool) (backend.Lease, error) {
	nodePath := a.key + "/" + a.owner.newNodeName(a.l.naming)
	written := time.Now()
	takeNode, untapNode := a.l.tap.expectCreated(nodePath)
	defer untapNode()
	var steps []step
	var container *future[string]
	takeLock := func(string) (int64, bool) { return 0, false }
	if lockNodeGone {
		var untapLock func()
		takeLock, untapLock = a.l.tap.expectCreated(a.key)
		defer untapLock()
		steps = append(steps, step{op: opCreateContainer, path: a.key, run: func() <-chan struct{} {
			container = start(ctx, func() (string, error) {
				return a.l.conn.CreateContainer(a.key, containerMark, zk.FlagContainer, a.l.acl)
			}, nil)
			return container.done
		}})
	}
	var node, list = (*future[string])(nil), (*future[view])(nil)
	steps = append(steps, step{op: opCreateTTL, path: nodePath, run: func() <-chan struct{} {
		node = start(ctx, func() (string, error) {
			return a.l.conn.CreateTTL(nodePath, []byte(a.owner.holder), zk.FlagPersistentSequentialWithTTL, a.l.acl, a.ttl)
		}, func(path string) {
			// The caller gave up before the node was created: remove it.
			_ = a.l.conn.Delete(path, -1)
		})
		return node.done
	}})
	if !lockNodeGone {
		steps = append(steps, step{op: opGetChildren2, path: a.key, run: func() <-chan struct{} {
			list = a.l.startObserve(ctx, a.key)
			return list.done
		}})
	}
	a.l.inOrder(ctx, steps...)

	var made int64
	if container != nil {
		if created, err := container.wait(ctx); err == nil {
			made, _ = takeLock(created)
			a.madeLockNode = made
		}
		// Otherwise it existed (someone made it again), or its parent is
		// missing too: the node's creation tells.
	}
	path, err := node.wait(ctx)
	if err != nil {
		return a.createFailed(ctx, err, list)
	}
	name := path[strings.LastIndex(path, "/")+1:]
	czxid, _ := takeNode(path)
	t := touched{name: name, created: true, czxid: czxid, written: written, wroteNow: true, ttl: a.ttl}
	if list == nil && freshLockNode(name, made, czxid) {
		c, _ := parseContender(name)
		fresh := &zk.Stat{Czxid: made, NumChildren: 1, DataLength: int32(len(containerMark))}
		return a.act(ctx, view{stat: fresh, contenders: []contender{c}}, t)
	}
	if list == nil {
		list = a.l.startObserve(ctx, a.key)
	}
	v, err := list.wait(ctx)
	if err != nil {
		a.l.deleteBestEffort(ctx, a.key, handle{name: name, lockNode: lockNodeForeign})
		return backend.Lease{}, wrap("acquire", a.key, err)
	}
	return a.act(ctx, v, t)
}

// createFailed handles the failed creation of the holder's node; list is
// the listing sent behind it, or nil.
func (a *acquisition) createFailed(ctx context.Context, err error, list *future[view]) (backend.Lease, error) {
	if list != nil && !errors.Is(err, zk.ErrNoChildrenForEphemerals) {
		list.abandon()
	}
	switch {
	case errors.Is(err, zk.ErrNoNode):
		made, err := a.l.ensurePath(ctx, a.key)
		if err != nil {
			return backend.Lease{}, wrap("acquire", a.key, err)
		}
		if made != 0 {
			a.madeLockNode = made
		}
		a.l.hints.update(a.key, func(k *keyHints) { k.lockNodeGone = false })
		return backend.Lease{}, retry("the lock node was missing (or an empty container was deleted) when the holder's node was created")
	case errors.Is(err, zk.ErrNoChildrenForEphemerals):
		// An outside program holds the lock with an ephemeral node at the
		// lock path: nothing can queue under it.
		if list == nil {
			list = a.l.startObserve(ctx, a.key)
		}
		if v, lerr := list.wait(ctx); lerr == nil && v.ephemeral() {
			return backend.Lease{}, a.notAcquired(describeEphemeral(a.key, v.stat))
		}
		return backend.Lease{}, retry("an outside program created an ephemeral node at the lock path")
	case err.Error() == errUnimplemented:
		return backend.Lease{}, wrap("acquire", a.key, fmt.Errorf(
			"the server does not create TTL nodes (it must run with -Dzookeeper.extendedTypesEnabled=true): %w", err))
	}
	return backend.Lease{}, wrap("acquire", a.key, err)
}
