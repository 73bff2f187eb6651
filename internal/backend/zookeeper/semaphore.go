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

// acquireSemaphore is Acquire with a Limit of 2 or more: a hold is a lease
// node under P/leases, created only while holding the guard mutex at
// P/locks, as Curator's InterProcessSemaphoreV2 does (see the package doc,
// "Semaphores", and semaphore_decide.go for the decisions).
func (l *locker) acquireSemaphore(
	ctx context.Context, key, holder string, ttl time.Duration, opts backend.AcquireOptions,
) (backend.Lease, error) {
	s := semAcquisition{l: l, key: key, owner: l.hints.owner(holder), ttl: ttl, opts: opts}
	for try := 1; ; try++ {
		lease, err := s.attempt(ctx)
		if !errors.Is(err, errRetry) {
			return lease, err
		}
		if try == attempts {
			return backend.Lease{}, fmt.Errorf("zookeeper: acquire semaphore %q for %q: gave up after %d attempts: %w",
				key, holder, attempts, err)
		}
	}
}

// semAcquisition is one Acquire call on a semaphore.
type semAcquisition struct {
	l     *locker
	key   string
	owner owner
	ttl   time.Duration
	opts  backend.AcquireOptions
}

// attempt looks at the semaphore once and acts on what it sees.
func (s *semAcquisition) attempt(ctx context.Context) (backend.Lease, error) {
	lock := s.l.startObserve(ctx, s.key)
	leases := s.l.startListLeases(ctx, s.key)
	v, lockErr := lock.wait(ctx)
	children, err := leases.wait(ctx)
	switch {
	case err != nil:
		return backend.Lease{}, wrap("acquire", s.key, err)
	case lockErr != nil && !errors.Is(lockErr, zk.ErrNoNode):
		return backend.Lease{}, wrap("acquire", s.key, lockErr)
	}
	d := decideSemaphore(children, s.owner, s.opts.Limit)
	if d.outcome == semHold {
		return s.keep(ctx, d)
	}
	if errors.Is(lockErr, zk.ErrNoNode) {
		// Made as a mutex's lock node would be (marked, with the locker's
		// ACL), not as a mere ancestor of P/locks.
		if _, err := s.l.ensurePath(ctx, s.key); err != nil {
			return backend.Lease{}, wrap("acquire", s.key, err)
		}
	}
	if lockErr == nil {
		// Refusing early is always safe; the check that counts comes after
		// the lease node's creation (create).
		switch {
		case v.ephemeral():
			return backend.Lease{}, s.notAcquired(describeEphemeral(s.key, v.stat))
		case len(v.contenders) > 0:
			return backend.Lease{}, s.notAcquired("the path is locked as a mutex: " + s.l.describe(ctx, s.key, v.stat.Czxid, v.contenders[0]))
		}
	}
	guard, err := s.l.acquireMutex(ctx, guardKey(s.key), s.owner.holder, s.ttl, backend.AcquireOptions{Queue: s.opts.Queue})
	switch {
	case errors.Is(err, backend.ErrNotAcquired) && guard.Queued:
		return queuedOnSemaphore(s.key, guard), fmt.Errorf("zookeeper: acquire semaphore %q for %q: waiting in line for the guard mutex: %w",
			s.key, s.owner.holder, err)
	case err != nil:
		return backend.Lease{}, fmt.Errorf("zookeeper: acquire semaphore %q for %q: the guard mutex: %w", s.key, s.owner.holder, err)
	}
	return s.underGuard(ctx, guard)
}

// underGuard decides, holding the guard mutex (guard), whether the holder
// takes a hold: only holders of the guard create lease nodes, so while it
// is held their number can only fall.
func (s *semAcquisition) underGuard(ctx context.Context, guard backend.Lease) (backend.Lease, error) {
	children, err := s.l.startListLeases(ctx, s.key).wait(ctx)
	if err != nil {
		s.releaseGuard(ctx, guard)
		return backend.Lease{}, wrap("acquire", s.key, err)
	}
	d := decideSemaphore(children, s.owner, s.opts.Limit)
	switch d.outcome {
	case semHold: // a concurrent Acquire of the same holder
		s.releaseGuard(ctx, guard)
		return s.keep(ctx, d)
	case semFull:
		why := fmt.Sprintf("the semaphore is full (%d lease nodes, limit %d)", d.count, s.opts.Limit)
		if s.opts.Queue {
			// First in line, as a Curator client waiting for room.
			return queuedOnSemaphore(s.key, guard), s.notAcquired(why + "; the holder waits first in line for the guard mutex")
		}
		s.releaseGuard(ctx, guard)
		return backend.Lease{}, s.notAcquired(why)
	}
	return s.create(ctx, guard)
}

// create creates the holder's lease node, then releases the guard while it
// checks that no mutex contender at the lock path is older than the node.
func (s *semAcquisition) create(ctx context.Context, guard backend.Lease) (backend.Lease, error) {
	name, czxid, err := s.l.createLease(ctx, s.key, s.owner, s.ttl)
	if err != nil {
		s.releaseGuard(ctx, guard)
		return backend.Lease{}, wrap("acquire", s.key, err)
	}
	released := make(chan error, 1)
	go func() { released <- s.l.Release(ctx, guard) }()
	why, err := s.l.heldOffByMutex(ctx, s.key, czxid)
	relErr := <-released
	switch {
	case err != nil:
		s.l.deleteLeaseBestEffort(ctx, s.key, name)
		return backend.Lease{}, wrap("acquire", s.key, err)
	case why != "":
		s.l.deleteLeaseBestEffort(ctx, s.key, name)
		return backend.Lease{}, s.notAcquired(why)
	case s.opts.MinToken > 0 && czxid <= s.opts.MinToken:
		s.l.deleteLeaseBestEffort(ctx, s.key, name)
		return backend.Lease{}, fmt.Errorf("zookeeper: acquire semaphore %q for %q: the new lease node's creation zxid %d does not "+
			"exceed the highest fencing token handed out before, %d (was the ensemble's data wiped?): %w",
			s.key, s.owner.holder, czxid, s.opts.MinToken, backend.ErrFencingRegressed)
	case relErr != nil:
		// The hold stands; the holder's next Acquire adopts it and removes
		// the guard place that is left (keep).
		return backend.Lease{}, wrap("acquire", s.key, fmt.Errorf("releasing the guard mutex after creating lease node %s: %w", name, relErr))
	}
	return s.lease(name, czxid), nil
}

// keep takes the holder's lease node d.keep as its hold: it restarts the
// node's clock, deletes the holder's further lease nodes and any place of
// the holder's left in the guard mutex (by an interrupted Acquire), and
// checks that no mutex contender is older than the node.
func (s *semAcquisition) keep(ctx context.Context, d semDecision) (backend.Lease, error) {
	set := s.l.startSet(ctx, leasesKey(s.key)+"/"+d.keep, []byte(s.owner.holder))
	extra := make([]contender, len(d.drop))
	for i, name := range d.drop {
		extra[i] = contender{name: name}
	}
	dropped := make(chan error, 1)
	go func() {
		dropped <- errors.Join(s.l.deleteNodes(ctx, leasesKey(s.key), extra), s.l.dropGuardPlaces(ctx, s.key, s.owner))
	}()
	stat, err := set.wait(ctx)
	dropErr := <-dropped
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return backend.Lease{}, retry("the holder's lease node expired a moment ago")
	case err != nil:
		return backend.Lease{}, wrap("acquire", s.key, err)
	case dropErr != nil:
		return backend.Lease{}, wrap("acquire", s.key, dropErr)
	}
	why, err := s.l.heldOffByMutex(ctx, s.key, stat.Czxid)
	switch {
	case err != nil:
		return backend.Lease{}, wrap("acquire", s.key, err)
	case why != "":
		// A lease node left by an Acquire that never finished its check.
		s.l.deleteLeaseBestEffort(ctx, s.key, d.keep)
		return backend.Lease{}, s.notAcquired(why)
	}
	return s.lease(d.keep, stat.Czxid), nil
}

func (s *semAcquisition) lease(name string, token int64) backend.Lease {
	return backend.Lease{Key: s.key, Holder: s.owner.holder, Token: token, TTL: s.ttl, Handle: leaseHandle(name, token)}
}

// releaseGuard gives the guard mutex up, even when ctx has ended; a place
// it cannot delete expires with its TTL.
func (s *semAcquisition) releaseGuard(ctx context.Context, guard backend.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = s.l.Release(ctx, guard)
}

func (s *semAcquisition) notAcquired(why string) error {
	return fmt.Errorf("zookeeper: acquire semaphore %q for %q: %s: %w", s.key, s.owner.holder, why, backend.ErrNotAcquired)
}

// startListLeases starts listing P/leases for the semaphore at key; a
// missing P/leases lists as empty.
func (l *locker) startListLeases(ctx context.Context, key string) *future[[]string] {
	return start(ctx, func() ([]string, error) {
		children, _, err := l.conn.Children(leasesKey(key))
		if errors.Is(err, zk.ErrNoNode) {
			return nil, nil
		}
		return children, err //nolint:wrapcheck // the callers classify and wrap it
	}, nil)
}

// createLease creates a lease node for the holder own under P/leases (and
// P/leases with its missing ancestors when needed), a TTL node with the
// holder as data, and returns its name and creation zxid.
func (l *locker) createLease(ctx context.Context, key string, own owner, ttl time.Duration) (string, int64, error) {
	for try := 1; ; try++ {
		path := leasesKey(key) + "/" + own.newLeaseName()
		take, untap := l.tap.expectCreated(path)
		created, err := call(ctx, func() (string, error) {
			return l.conn.CreateTTL(path, []byte(own.holder), zk.FlagPersistentSequentialWithTTL, l.acl, ttl)
		}, func(created string) {
			// The caller gave up before the node was created: remove it.
			_ = l.conn.Delete(created, -1)
		})
		czxid, tapped := take(created)
		untap()
		switch {
		case errors.Is(err, zk.ErrNoNode) && try < attempts:
			if _, err := l.ensurePath(ctx, leasesKey(key)); err != nil {
				return "", 0, fmt.Errorf("creating %s: %w", leasesKey(key), err)
			}
			continue
		case err != nil && err.Error() == errUnimplemented:
			return "", 0, fmt.Errorf("the server does not create TTL nodes (it must run with "+
				"-Dzookeeper.extendedTypesEnabled=true): %w", err)
		case err != nil:
			return "", 0, fmt.Errorf("creating a lease node: %w", err)
		}
		name := created[strings.LastIndex(created, "/")+1:]
		if tapped {
			return name, czxid, nil
		}
		stat, err := l.stat(ctx, created)
		if err != nil {
			l.deleteLeaseBestEffort(ctx, key, name)
			return "", 0, fmt.Errorf("reading the new lease node %s: %w", name, err)
		}
		return name, stat.Czxid, nil
	}
}

// heldOffByMutex reports why a lease node created at czxid under the lock
// path key is no hold (leaseExcluded), or "" when it is one: the lock path
// is locked as a mutex by a contender older than the node. The read must
// follow the node's creation or a listing that showed the node.
func (l *locker) heldOffByMutex(ctx context.Context, key string, czxid int64) (string, error) {
	for attempt := 1; ; attempt++ {
		v, err := l.observe(ctx, key)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return "", nil
		case err != nil:
			return "", err
		case len(v.contenders) == 0:
			return "", nil
		}
		first := v.contenders[0]
		stat, err := l.stat(ctx, first.path(key))
		switch {
		case errors.Is(err, zk.ErrNoNode) && attempt < attempts:
			continue // gone in the meantime: the next one is first
		case errors.Is(err, zk.ErrNoNode):
			return "", retry("the mutex contenders at the lock path kept changing")
		case err != nil:
			return "", err
		case leaseExcluded(czxid, stat.Czxid):
			return "the path is locked as a mutex: " + l.describe(ctx, key, v.stat.Czxid, first), nil
		}
		return "", nil
	}
}

// dropGuardPlaces deletes the holder's nodes in the guard mutex of the
// semaphore at key.
func (l *locker) dropGuardPlaces(ctx context.Context, key string, own owner) error {
	v, err := l.observe(ctx, guardKey(key))
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	mine := own.mine(v.contenders)
	if len(mine) == 0 {
		return nil
	}
	l.hints.update(guardKey(key), func(k *keyHints) { k.setNode(own.holder, nodeHint{}) })
	return l.deleteNodes(ctx, guardKey(key), mine)
}

// deleteLeaseBestEffort deletes the lease node name of the semaphore at
// key, even when ctx has ended; a node it cannot delete expires.
func (l *locker) deleteLeaseBestEffort(ctx context.Context, key, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = l.deleteNode(ctx, leasesKey(key)+"/"+name, -1)
}
