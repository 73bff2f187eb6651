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
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/distlock/distlock/internal/backend"
)

// leaseOf names a lease node of o with a fixed random part.
func leaseOf(o owner, seq string) string {
	return o.leaseName([6]byte{0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5}) + seq
}

func TestLeaseNamesAreCuratorProtectedNodes(t *testing.T) {
	t.Parallel()
	// Curator: ProtectedUtils.getProtectedPrefix(UUID) + LEASE_BASE_NAME,
	// then the sequence number.
	curator := regexp.MustCompile(`^_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-lease-$`)
	a, b := newOwner("ns/pod-a"), newOwner("ns/pod-b")
	name := a.newLeaseName()
	if !curator.MatchString(name) {
		t.Fatalf("newLeaseName() = %q; want a Curator protected lease name", name)
	}
	if name == a.newLeaseName() {
		t.Errorf("two lease names of one holder are equal: %q", name)
	}
	if !a.ownsLease(name+"0000000001") || b.ownsLease(name+"0000000001") {
		t.Errorf("ownsLease(%q): want a's only", name)
	}
	if a.ownsLease(a.newNodeName(curatorNaming) + "0000000001") {
		t.Errorf("ownsLease of a's mutex node: want false")
	}
	if seq, ok := leaseSeq(name + "0000000042"); !ok || seq != 42 {
		t.Errorf("leaseSeq = %d, %v; want 42", seq, ok)
	}
	for _, bad := range []string{"leases", name, name + "00000x0042", "_c_x-lock-0000000001"} {
		if _, ok := leaseSeq(bad); ok {
			t.Errorf("leaseSeq(%q) recognised a sequence number", bad)
		}
	}
}

func TestDecideSemaphore(t *testing.T) {
	t.Parallel()
	own, other := newOwner("holder-a"), newOwner("holder-b")
	mine3, mine7 := leaseOf(own, "0000000003"), leaseOf(own, "0000000007")
	theirs1, theirs2 := leaseOf(other, "0000000001"), leaseOf(other, "0000000002")
	curator := "_c_5f0b4d9e-7c41-4a2b-9d0e-0a1b2c3d4e5f-lease-0000000004"
	tests := map[string]struct {
		children []string
		limit    int
		want     semDecision
	}{
		"nobody holds: create": {limit: 2, want: semDecision{outcome: semCreate}},
		"room left beside another holder: create": {
			children: []string{theirs1}, limit: 2, want: semDecision{outcome: semCreate, count: 1}},
		"full with others' holds: full": {
			children: []string{theirs1, curator}, limit: 2, want: semDecision{outcome: semFull, count: 2}},
		"a child of no known recipe counts, as Curator counts it": {
			children: []string{theirs1, "readme"}, limit: 2, want: semDecision{outcome: semFull, count: 2}},
		"the holder's lease node: hold, even when full": {
			children: []string{theirs1, theirs2, mine3}, limit: 2,
			want: semDecision{outcome: semHold, keep: mine3, count: 3}},
		"two lease nodes of the holder: keep the lowest, drop the other": {
			children: []string{mine7, theirs1, mine3}, limit: 3,
			want: semDecision{outcome: semHold, keep: mine3, drop: []string{mine7}, count: 3}},
	}
	for name, tc := range tests {
		got := decideSemaphore(tc.children, own, tc.limit)
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(semDecision{}), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: decideSemaphore (-want +got):\n%s", name, diff)
		}
	}
}

func TestMutexAndSemaphoreExcludeByAge(t *testing.T) {
	t.Parallel()
	lease := map[string]struct {
		lease, first int64
		want         bool
	}{
		"no mutex contender: a hold":                       {lease: 10, first: 0, want: false},
		"a mutex contender younger than the lease: a hold": {lease: 10, first: 11, want: false},
		"a mutex contender older than the lease: excluded": {lease: 10, first: 9, want: true},
	}
	for name, tc := range lease {
		if got := leaseExcluded(tc.lease, tc.first); got != tc.want {
			t.Errorf("%s: leaseExcluded(%d, %d) = %v; want %v", name, tc.lease, tc.first, got, tc.want)
		}
	}
	mutex := map[string]struct {
		node   int64
		leases []int64
		want   bool
	}{
		"no lease node: holds":                            {node: 10, want: false},
		"only younger lease nodes (they give way): holds": {node: 10, leases: []int64{11, 12}, want: false},
		"an older lease node: held off":                   {node: 10, leases: []int64{12, 4}, want: true},
	}
	for name, tc := range mutex {
		if got := mutexExcluded(tc.node, tc.leases); got != tc.want {
			t.Errorf("%s: mutexExcluded(%d, %v) = %v; want %v", name, tc.node, tc.leases, got, tc.want)
		}
	}
}

func TestSemaphoreWatchTarget(t *testing.T) {
	t.Parallel()
	own, other := newOwner("holder-a"), newOwner("holder-b")
	nodes := func(names ...string) []contender { return sortContenders(names) }
	mutexMine, mutexTheirs := nodeOf(own, curatorNaming, "0000000005"), nodeOf(other, curatorNaming, "0000000002")
	guardMine, guardTheirs := nodeOf(own, curatorNaming, "0000000009"), "_c_00112233445566778899aabbccddeeff-lock-0000000003"
	leases := []string{leaseOf(other, "0000000001")}
	tests := map[string]struct {
		contenders, guard []contender
		leases            []string
		want              semWatch
	}{
		"the holder holds a lease: nothing to wait for": {
			leases: []string{leaseOf(own, "0000000004")}, want: semWatch{}},
		"a mutex waiter behind another: its predecessor": {
			contenders: nodes(mutexTheirs, mutexMine), leases: leases, want: semWatch{path: mutexTheirs}},
		"a mutex waiter first, held off by leases: the leases": {
			contenders: nodes(mutexMine), leases: leases, want: semWatch{path: leasesChild, children: true}},
		"a semaphore waiter held off by a mutex: its first contender": {
			contenders: nodes(mutexTheirs), guard: nodes(guardMine), leases: leases, want: semWatch{path: mutexTheirs}},
		"in line for the guard behind another: the predecessor": {
			guard: nodes(guardTheirs, guardMine), leases: leases, want: semWatch{path: locksChild + "/" + guardTheirs}},
		"first in line for the guard: the leases": {
			guard: nodes(guardMine), leases: leases, want: semWatch{path: leasesChild, children: true}},
		"no place, the guard held by another: the guard's holder": {
			guard: nodes(guardTheirs), leases: leases, want: semWatch{path: locksChild + "/" + guardTheirs}},
		"no place, full: the leases":          {leases: leases, want: semWatch{path: leasesChild, children: true}},
		"nothing at all: nothing to wait for": {want: semWatch{}},
	}
	for name, tc := range tests {
		if got := semaphoreWatchTarget(tc.contenders, tc.guard, tc.leases, own); got != tc.want {
			t.Errorf("%s: semaphoreWatchTarget = %+v; want %+v", name, got, tc.want)
		}
	}
}

func TestSemaphoreHandles(t *testing.T) {
	t.Parallel()
	own := newOwner("holder-a")
	name := leaseOf(own, "0000000004")
	lease := backend.Lease{Key: "/k", Holder: "holder-a", Token: 42, Handle: leaseHandle(name, 42)}
	if got, ok := parseLeaseHandle(lease, own); !ok || got != name {
		t.Fatalf("parseLeaseHandle(%q) = %q, %v; want %q", lease.Handle, got, ok, name)
	}
	refused := map[string]backend.Lease{
		"no handle":                      {Holder: "holder-a", Token: 42},
		"a mutex handle":                 {Holder: "holder-a", Token: 42, Handle: nodeOf(own, curatorNaming, "0000000004") + "/42/40/o"},
		"another token than the Lease's": {Holder: "holder-a", Token: 43, Handle: leaseHandle(name, 42)},
		"another holder's Lease":         {Holder: "holder-b", Token: 42, Handle: leaseHandle(name, 42)},
		"another holder's node":          {Holder: "holder-a", Token: 42, Handle: leaseHandle(leaseOf(newOwner("holder-b"), "0000000004"), 42)},
		"no sequence number":             {Holder: "holder-a", Token: 42, Handle: leaseHandle(own.leaseName([6]byte{}), 42)},
	}
	for why, l := range refused {
		if got, ok := parseLeaseHandle(l, newOwner(l.Holder)); ok {
			t.Errorf("%s: parseLeaseHandle(%q) = %q; want it refused", why, l.Handle, got)
		}
	}
	guard := backend.Lease{Key: "/k/locks", Holder: "holder-a", Token: 7, TTL: 5, Handle: "n/7/6/o"}
	queued := queuedOnSemaphore("/k", guard)
	want := backend.Lease{Key: "/k", Holder: "holder-a", Token: 7, TTL: 5, Queued: true, Handle: "guard:n/7/6/o"}
	if queued != want {
		t.Fatalf("queuedOnSemaphore = %+v; want %+v", queued, want)
	}
	back, ok := guardLease(queued)
	if want := (backend.Lease{Key: "/k/locks", Holder: "holder-a", Token: 7, TTL: 5, Queued: true, Handle: "n/7/6/o"}); !ok || back != want {
		t.Errorf("guardLease = %+v, %v; want %+v", back, ok, want)
	}
	if _, ok := guardLease(lease); ok {
		t.Errorf("guardLease of a hold's Lease: want false")
	}
	if _, ok := parseHandle(queued, own); ok {
		t.Errorf("parseHandle took a semaphore's guard handle for a mutex's")
	}
}
