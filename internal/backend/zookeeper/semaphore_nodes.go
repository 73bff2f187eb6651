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
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/distlock/distlock/internal/backend"
)

// The nodes of a semaphore, in the layout of Apache Curator's
// InterProcessSemaphoreV2 on the lock path P (see the package doc,
// "Semaphores").
const (
	// locksChild is P/locks, the lock node of the mutex that guards the
	// creation of lease nodes (Curator's LOCK_PARENT).
	locksChild = "locks"
	// leasesChild is P/leases, the parent of the lease nodes (Curator's
	// LEASE_PARENT).
	leasesChild = "leases"
	// leaseBase is the base name of a lease node (Curator's
	// LEASE_BASE_NAME), between the protection prefix and the sequence
	// number: "_c_<UUID>-lease-<seq>".
	leaseBase = "lease-"
)

// guardKey is the lock node of the semaphore at key's guard mutex.
func guardKey(key string) string { return key + "/" + locksChild }

// leasesKey is the parent of the semaphore at key's lease nodes.
func leasesKey(key string) string { return key + "/" + leasesChild }

// leaseName returns the name, without sequence number, of a new lease
// node of the holder: a Curator protected node, "_c_<UUID>-lease-", whose
// UUID starts with the holder's part (see owner) and ends in tail.
func (o owner) leaseName(tail [16 - holderPart]byte) string {
	return o.curator + hex.EncodeToString(tail[:]) + "-" + leaseBase
}

// newLeaseName is leaseName with a random tail.
func (o owner) newLeaseName() string {
	var r [8]byte
	binary.BigEndian.PutUint64(r[:], rand.Uint64())
	var tail [16 - holderPart]byte
	copy(tail[:], r[:])
	return o.leaseName(tail)
}

// ownsLease reports whether the lease node named name is one of the
// holder's.
func (o owner) ownsLease(name string) bool {
	return strings.HasPrefix(name, o.curator) && strings.Contains(name[len(o.curator):], "-"+leaseBase)
}

// leaseSeq returns the sequence number of the lease node named name, or
// false when it has none (a child that no known recipe made; Curator
// counts it all the same).
func leaseSeq(name string) (int64, bool) {
	if len(name) < seqLen || !strings.HasSuffix(name[:len(name)-seqLen], leaseBase) {
		return 0, false
	}
	n, err := strconv.ParseInt(name[len(name)-seqLen:], 10, 64)
	return n, err == nil
}

// myLeases returns the holder's lease nodes among children, lowest
// sequence number first.
func myLeases(children []string, own owner) []string {
	var mine []string
	for _, name := range children {
		if _, ok := leaseSeq(name); ok && own.ownsLease(name) {
			mine = append(mine, name)
		}
	}
	slices.SortFunc(mine, func(a, b string) int {
		x, _ := leaseSeq(a)
		y, _ := leaseSeq(b)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return strings.Compare(a, b)
	})
	return mine
}

// The Handle of a semaphore's Lease: a hold names its lease node
// ("lease:<name>/<token>"), a place in line of the guard mutex carries that
// mutex's handle ("guard:<handle>").
const (
	leaseHandlePrefix = "lease:"
	guardHandlePrefix = "guard:"
)

// leaseHandle is the Handle of a hold of a semaphore.
func leaseHandle(name string, token int64) string {
	return leaseHandlePrefix + name + "/" + strconv.FormatInt(token, 10)
}

// parseLeaseHandle returns the lease node that lease's Handle names. It
// reports false when the Handle is not a semaphore hold's, does not parse,
// names a node that is not one of the holder's, or carries another token
// than the Lease's: a Handle never makes a Lease act on another hold.
func parseLeaseHandle(lease backend.Lease, own owner) (string, bool) {
	rest, ok := strings.CutPrefix(lease.Handle, leaseHandlePrefix)
	if !ok {
		return "", false
	}
	name, token, ok := strings.Cut(rest, "/")
	if !ok || token != strconv.FormatInt(lease.Token, 10) || own.holder != lease.Holder {
		return "", false
	}
	if _, seq := leaseSeq(name); !seq || !own.ownsLease(name) {
		return "", false
	}
	return name, true
}

// guardLease returns the Lease of the guard mutex's place in line that
// lease, a queued Lease of the semaphore at lease.Key, carries in its
// Handle, or false.
func guardLease(lease backend.Lease) (backend.Lease, bool) {
	inner, ok := strings.CutPrefix(lease.Handle, guardHandlePrefix)
	if !ok {
		return backend.Lease{}, false
	}
	lease.Key, lease.Handle = guardKey(lease.Key), inner
	return lease, true
}

// queuedOnSemaphore turns guard, a Lease of the guard mutex of the
// semaphore at key, into the semaphore's queued Lease.
func queuedOnSemaphore(key string, guard backend.Lease) backend.Lease {
	guard.Key, guard.Queued = key, true
	if guard.Handle != "" {
		guard.Handle = guardHandlePrefix + guard.Handle
	}
	return guard
}
