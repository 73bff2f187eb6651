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

// The decisions of the semaphore, apart from its requests (semaphore.go
// and semaphore_ops.go do what they say).

// semOutcome is what a listing of P/leases means for a holder.
type semOutcome int

const (
	// semHold: the holder has a lease node (keep): that is its hold.
	semHold semOutcome = iota
	// semCreate: the holder has none and there is room: it creates one
	// (only while it holds the guard mutex).
	semCreate
	// semFull: the holder has none and there is no room.
	semFull
)

// semDecision is the outcome with the nodes it concerns.
type semDecision struct {
	outcome semOutcome
	// keep is the holder's lease node (semHold), the lowest of them.
	keep string
	// drop are the holder's further lease nodes, left by interrupted or
	// concurrent attempts.
	drop []string
	// count is the number of P/leases' children, as Curator counts them:
	// every child, whoever made it.
	count int
}

// decideSemaphore reads a listing of P/leases (children) for the holder
// own, in a semaphore of limit holders. Like Curator, it counts every
// child: a Curator client that waits for room has its lease node there
// already, which over-counts by one, safely.
func decideSemaphore(children []string, own owner, limit int) semDecision {
	mine := myLeases(children, own)
	switch {
	case len(mine) > 0:
		return semDecision{outcome: semHold, keep: mine[0], drop: mine[1:], count: len(children)}
	case len(children) < limit:
		return semDecision{outcome: semCreate, count: len(children)}
	}
	return semDecision{outcome: semFull, count: len(children)}
}

// The exclusion of a mutex and a semaphore on the same path rests on the
// order of creation zxids. Each side creates its node first and then looks
// at the other side's nodes; a server answers a read after having applied
// every transaction up to the reader's last write, so of two nodes created
// in either order the younger one's look sees the older one. The younger
// gives way: a lease node younger than the first mutex contender is no
// hold, and a mutex node younger than a lease node does not hold. A hold
// of either kind therefore excludes every node of the other kind created
// after it, and every older one was seen when it was taken.

// leaseExcluded reports whether a lease node created at lease is no hold
// because the first mutex contender at P, created at firstContender (0:
// none), is older.
func leaseExcluded(lease, firstContender int64) bool {
	return firstContender != 0 && firstContender < lease
}

// mutexExcluded reports whether the mutex node created at node does not
// hold because one of the lease nodes, created at leases, is older.
func mutexExcluded(node int64, leases []int64) bool {
	for _, czxid := range leases {
		if czxid < node {
			return true
		}
	}
	return false
}

// semWatch is what a holder waits for on a semaphore's path: a data watch
// on the node at path (relative to the lock path), or, with children, a
// children watch on P/leases; nothing when path is empty.
type semWatch struct {
	path     string
	children bool
}

// semaphoreWatchTarget picks what the holder own waits for on a path with
// a semaphore's nodes: contenders are the mutex contenders at P, guard the
// contenders of the guard mutex at P/locks, leases the children of
// P/leases.
func semaphoreWatchTarget(contenders, guard []contender, leases []string, own owner) semWatch {
	waitLeases := semWatch{}
	if len(leases) > 0 {
		waitLeases = semWatch{path: leasesChild, children: true}
	}
	if len(myLeases(leases, own)) > 0 {
		return semWatch{} // it holds
	}
	if len(own.mine(contenders)) > 0 {
		// A mutex waiter: its predecessor, or the semaphore's holds.
		if before, ok := watchTarget(contenders, own); ok {
			return semWatch{path: before.name}
		}
		return waitLeases
	}
	if len(contenders) > 0 {
		// A semaphore waiter held off by the mutex.
		return semWatch{path: contenders[0].name}
	}
	if len(own.mine(guard)) > 0 {
		// In line for the guard mutex: its predecessor there, or room.
		if before, ok := watchTarget(guard, own); ok {
			return semWatch{path: locksChild + "/" + before.name}
		}
		return waitLeases
	}
	if len(guard) > 0 {
		return semWatch{path: locksChild + "/" + guard[0].name}
	}
	return waitLeases
}
