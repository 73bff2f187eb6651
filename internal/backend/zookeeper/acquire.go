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
	"slices"
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
// queue (backend.WithQueue) and the fencing floor (backend.WithMinToken).
func (l *locker) Acquire(
	ctx context.Context, key, holder string, ttl time.Duration, opts ...backend.AcquireOption,
) (backend.Lease, error) {
	if err := validate(key, holder, ttl); err != nil {
		return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q: %w", key, err)
	}
	a := acquisition{l: l, key: key, owner: newOwner(holder), ttl: ttl, opts: backend.NewAcquireOptions(opts...)}
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
}

// attempt looks at the lock once and acts on what it sees. It returns an
// error wrapping errRetry when the lock changed under it.
func (a *acquisition) attempt(ctx context.Context) (backend.Lease, error) {
	v, err := a.l.observe(ctx, a.key)
	missing := errors.Is(err, zk.ErrNoNode)
	switch {
	case err != nil && !missing:
		return backend.Lease{}, wrap("acquire", a.key, err)
	case !missing && v.ephemeral():
		// Nothing can queue under an ephemeral node.
		return backend.Lease{}, a.notAcquired(describeEphemeral(a.key, v.stat))
	}
	if mine := a.owner.mine(v.contenders); len(mine) > 0 {
		return a.resume(ctx, v, mine)
	}
	if len(v.contenders) > 0 && !a.opts.Queue {
		return backend.Lease{}, a.notAcquired(a.l.describe(ctx, a.key, v.contenders[0]))
	}

	if missing {
		if err := a.l.ensurePath(ctx, a.key); err != nil {
			return backend.Lease{}, wrap("acquire", a.key, err)
		}
	}
	created, err := call(ctx, func() (string, error) {
		return a.l.conn.CreateTTL(a.key+"/"+a.owner.prefix(a.l.naming), []byte(a.owner.holder),
			zk.FlagPersistentSequentialWithTTL, a.l.acl, a.ttl)
	}, func(path string) {
		// The caller gave up before the node was created: remove it.
		_ = a.l.conn.Delete(path, -1)
	})
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return backend.Lease{}, retry("the lock node was deleted (an empty container) before the holder's node was created in it")
	case errors.Is(err, zk.ErrNoChildrenForEphemerals):
		return backend.Lease{}, retry("an outside program created an ephemeral node at the lock path")
	case err != nil && err.Error() == errUnimplemented:
		return backend.Lease{}, wrap("acquire", a.key, fmt.Errorf(
			"the server does not create TTL nodes (it must run with -Dzookeeper.extendedTypesEnabled=true): %w", err))
	case err != nil:
		return backend.Lease{}, wrap("acquire", a.key, err)
	}
	return a.settle(ctx, created[strings.LastIndex(created, "/")+1:])
}

// resume continues from the holder's existing nodes mine (lowest first): a
// hold taken before (e.g. before a controller restart), or a place in line
// taken by an earlier Acquire with the Queue option. Such a node keeps its
// token, whatever MinToken: it was checked when it was created, and a place
// in line, once first, was created after every hold before it.
func (a *acquisition) resume(ctx context.Context, v view, mine []contender) (backend.Lease, error) {
	keep := mine[0]
	// Further nodes are left over from interrupted attempts; they must not
	// come first later without anyone knowing.
	if err := a.l.deleteLeftovers(ctx, a.key, mine[1:]); err != nil {
		return backend.Lease{}, wrap("acquire", a.key, err)
	}
	first := v.contenders[0].name == keep.name
	if !first && !a.opts.Queue {
		// A place in line that the caller no longer asks for.
		if err := a.l.deleteLeftovers(ctx, a.key, mine[:1]); err != nil {
			return backend.Lease{}, wrap("acquire", a.key, err)
		}
		return backend.Lease{}, a.notAcquired(a.l.describe(ctx, a.key, v.contenders[0]))
	}
	// Restart the node's clock. Set never creates a node, and the name is
	// the holder's own and unique under the lock node.
	stat, err := call(ctx, func() (*zk.Stat, error) {
		return a.l.conn.Set(keep.path(a.key), []byte(a.owner.holder), -1)
	}, nil)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return backend.Lease{}, retry("the holder's node expired a moment ago")
	case err != nil:
		return backend.Lease{}, wrap("acquire", a.key, err)
	case first:
		return a.lease(stat.Czxid, false), nil
	}
	return a.lease(stat.Czxid, true), a.queued(ctx, v.contenders[0], keep)
}

// settle decides, after the attempt created the node name, whether it
// holds the lock, keeps the holder's place in line, or must go again. It
// deletes the node unless it holds or queues.
func (a *acquisition) settle(ctx context.Context, name string) (backend.Lease, error) {
	stat, err := a.l.stat(ctx, a.key+"/"+name)
	if err != nil {
		a.l.deleteBestEffort(ctx, a.key, name, true)
		if errors.Is(err, zk.ErrNoNode) {
			return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q for %q: node %s vanished right after it was created",
				a.key, a.owner.holder, name)
		}
		return backend.Lease{}, wrap("acquire", a.key, err)
	}
	if a.opts.MinToken > 0 && stat.Czxid <= a.opts.MinToken {
		a.l.deleteBestEffort(ctx, a.key, name, true)
		return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q for %q: the new node's creation zxid %d does not exceed "+
			"the highest fencing token handed out before, %d (was the ensemble's data wiped?): %w",
			a.key, a.owner.holder, stat.Czxid, a.opts.MinToken, backend.ErrFencingRegressed)
	}
	v, err := a.l.observe(ctx, a.key)
	if err != nil {
		a.l.deleteBestEffort(ctx, a.key, name, false)
		return backend.Lease{}, wrap("acquire", a.key, err)
	}
	mine := a.owner.mine(v.contenders)
	switch {
	case !slices.ContainsFunc(mine, func(n contender) bool { return n.name == name }):
		return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q for %q: node %s vanished right after it was created",
			a.key, a.owner.holder, name)
	case mine[0].name != name:
		// Two Acquires for one holder at once: the other one's node stays.
		a.l.deleteBestEffort(ctx, a.key, name, false)
		return backend.Lease{}, retry("another node of the same holder comes first")
	case v.contenders[0].name == name:
		return a.lease(stat.Czxid, false), nil
	case a.opts.Queue:
		return a.lease(stat.Czxid, true), a.queued(ctx, v.contenders[0], mine[0])
	default:
		a.l.deleteBestEffort(ctx, a.key, name, false)
		return backend.Lease{}, a.notAcquired(a.l.describe(ctx, a.key, v.contenders[0]))
	}
}

func (a *acquisition) lease(token int64, queued bool) backend.Lease {
	return backend.Lease{Key: a.key, Holder: a.owner.holder, Token: token, TTL: a.ttl, Queued: queued}
}

func (a *acquisition) notAcquired(why string) error {
	return fmt.Errorf("zookeeper: acquire %q for %q: %s: %w", a.key, a.owner.holder, why, backend.ErrNotAcquired)
}

// queued is the error that goes with a place in line: node place waits
// behind head, the holding node.
func (a *acquisition) queued(ctx context.Context, head, place contender) error {
	return a.notAcquired(fmt.Sprintf("%s; the holder waits in line with node %s", a.l.describe(ctx, a.key, head), place.name))
}
