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
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/distlock/distlock/internal/backend"
)

func TestChoosePlan(t *testing.T) {
	t.Parallel()
	now := time.Now()
	const ttl = 30 * time.Second
	queued := func(writtenAgo, nodeTTL time.Duration) nodeHint {
		return nodeHint{name: "n", queued: true, written: now.Add(-writtenAgo), ttl: nodeTTL}
	}
	tests := map[string]struct {
		hint hint
		opts backend.AcquireOptions
		want plan
	}{
		"a lock the locker knows nothing of: create at once":       {want: planCreate},
		"with Queue, even where another holder was seen: create":   {hint: hint{contended: true}, opts: backend.AcquireOptions{Queue: true}, want: planCreate},
		"trying once where another holder was seen: look first":    {hint: hint{contended: true}, want: planLook},
		"the holder's hold: refresh it while looking":              {hint: hint{node: nodeHint{name: "n", ttl: ttl, written: now}}, want: planRefresh},
		"a place in line written a moment ago: take one's turn":    {hint: hint{node: queued(time.Second, ttl)}, want: planTakeTurn},
		"a place in line written long ago: refresh it":             {hint: hint{node: queued(10*time.Second, ttl)}, want: planRefresh},
		"a place in line of unknown TTL: refresh it":               {hint: hint{node: queued(0, 0)}, want: planRefresh},
		"a place in line made with a shorter TTL: refresh it":      {hint: hint{node: queued(0, ttl/2)}, want: planRefresh},
		"a place in line, trying once where contended: refresh it": {hint: hint{node: queued(10*time.Second, ttl), contended: true}, want: planRefresh},
	}
	for name, tc := range tests {
		if got := choosePlan(tc.hint, tc.opts, ttl, now); got != tc.want {
			t.Errorf("%s: choosePlan = %v; want %v", name, got, tc.want)
		}
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	own, other := newOwner("holder-a"), newOwner("holder-b")
	mine1, mine5 := nodeOf(own, curatorNaming, "0000000001"), nodeOf(own, kazooNaming, "0000000005")
	theirs2, zkLock3 := nodeOf(other, curatorNaming, "0000000002"), "_c_00112233445566778899aabbccddeeff-lock-0000000003"
	nodes := func(names ...string) []contender { return sortContenders(names) }
	node := func(name string) contender { c, _ := parseContender(name); return c }
	tests := map[string]struct {
		nodes   []contender
		created string
		queue   bool
		want    decision
	}{
		"nobody there: create": {want: decision{outcome: outcomeCreate}},
		"another holder first, trying once: refuse": {
			nodes: nodes(theirs2), want: decision{outcome: outcomeRefuse, head: node(theirs2)}},
		"another holder first, with Queue: create a place": {
			nodes: nodes(theirs2), queue: true, want: decision{outcome: outcomeCreate}},
		"the node created first: hold": {
			nodes: nodes(mine5), created: mine5, want: decision{outcome: outcomeHold, keep: node(mine5)}},
		"the node created behind another holder, trying once: refuse and drop it": {
			nodes: nodes(zkLock3, mine5), created: mine5,
			want: decision{outcome: outcomeRefuse, drop: []contender{node(mine5)}, head: node(zkLock3)}},
		"the node created behind another holder, with Queue: wait in line": {
			nodes: nodes(zkLock3, mine5), created: mine5, queue: true,
			want: decision{outcome: outcomeQueue, keep: node(mine5), head: node(zkLock3)}},
		"an older node of the holder's first (a restart): hold it, drop the new one": {
			nodes: nodes(mine1, theirs2, mine5), created: mine5,
			want: decision{outcome: outcomeHold, keep: node(mine1), drop: []contender{node(mine5)}}},
		"an older place of the holder's in line, with Queue: keep it, drop the new one": {
			nodes: nodes(theirs2, zkLock3, mine5, nodeOf(own, curatorNaming, "0000000009")), queue: true,
			want: decision{outcome: outcomeQueue, keep: node(mine5), drop: []contender{node(nodeOf(own, curatorNaming, "0000000009"))},
				head: node(theirs2)}},
		"a place in line given up without Queue: drop all the holder's nodes": {
			nodes: nodes(theirs2, mine5),
			want:  decision{outcome: outcomeRefuse, drop: []contender{node(mine5)}, head: node(theirs2)}},
		"the node created is not listed: vanished": {
			nodes: nodes(theirs2), created: mine5, want: decision{outcome: outcomeVanished}},
	}
	for name, tc := range tests {
		got := decide(tc.nodes, own, tc.created, tc.queue)
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(decision{}, contender{}), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: decide (-want +got):\n%s", name, diff)
		}
	}
}

func TestClassifyLockNode(t *testing.T) {
	t.Parallel()
	marked := int32(len(containerMark))
	tests := map[string]struct {
		stat        zk.Stat
		made, known int64
		kind        lockNodeKind
		want        lockNodeKind
	}{
		"the one this Acquire created":          {stat: zk.Stat{Czxid: 7, DataLength: marked}, made: 7, want: lockNodeOurs},
		"another one than this Acquire made":    {stat: zk.Stat{Czxid: 8, DataLength: marked}, made: 7, want: lockNodeUnknown},
		"known to the locker as ours":           {stat: zk.Stat{Czxid: 8, DataLength: marked}, known: 8, kind: lockNodeOurs, want: lockNodeOurs},
		"known to the locker as someone else's": {stat: zk.Stat{Czxid: 8}, known: 8, kind: lockNodeForeign, want: lockNodeForeign},
		"data that cannot be the mark":          {stat: zk.Stat{Czxid: 9, DataLength: 0}, known: 8, kind: lockNodeOurs, want: lockNodeForeign},
		"data as long as the mark, not known":   {stat: zk.Stat{Czxid: 9, DataLength: marked}, want: lockNodeUnknown},
	}
	for name, tc := range tests {
		if got := classifyLockNode(&tc.stat, tc.made, tc.known, tc.kind); got != tc.want {
			t.Errorf("%s: classifyLockNode = %c; want %c", name, got, tc.want)
		}
	}
}

func TestHandle(t *testing.T) {
	t.Parallel()
	own := newOwner("holder-a")
	name := nodeOf(own, curatorNaming, "0000000004")
	h := handle{name: name, token: 42, parent: 40, lockNode: lockNodeOurs, alone: true}
	lease := backend.Lease{Key: "/k", Holder: "holder-a", Token: 42, Handle: h.String()}
	if got, ok := parseHandle(lease, own); !ok || got != h {
		t.Fatalf("parseHandle(%q) = %+v, %v; want %+v", lease.Handle, got, ok, h)
	}
	for _, kind := range []lockNodeKind{lockNodeUnknown, lockNodeForeign} {
		h := handle{name: name, token: 42, parent: 40, lockNode: kind}
		if got, ok := parseHandle(backend.Lease{Holder: "holder-a", Token: 42, Handle: h.String()}, own); !ok || got != h {
			t.Errorf("parseHandle(%q) = %+v, %v; want %+v", h.String(), got, ok, h)
		}
	}
	refused := map[string]backend.Lease{
		"no handle (a Lease rebuilt from a record)": {Holder: "holder-a", Token: 42},
		"another token than the Lease's":            {Holder: "holder-a", Token: 43, Handle: h.String()},
		"another holder's Lease":                    {Holder: "holder-b", Token: 42, Handle: h.String()},
		"not a contender's name":                    {Holder: "holder-a", Token: 42, Handle: "readme/42/40/o"},
		"an unknown kind":                           {Holder: "holder-a", Token: 42, Handle: name + "/42/40/x"},
		"an unknown flag":                           {Holder: "holder-a", Token: 42, Handle: name + "/42/40/ob"},
		"too few parts":                             {Holder: "holder-a", Token: 42, Handle: name + "/42/o"},
		"a token that is no number":                 {Holder: "holder-a", Token: 42, Handle: name + "/4x/40/o"},
	}
	for why, lease := range refused {
		if got, ok := parseHandle(lease, newOwner(lease.Holder)); ok {
			t.Errorf("%s: parseHandle(%q) = %+v; want it refused", why, lease.Handle, got)
		}
	}
}

func TestEmptyLockNodeOf(t *testing.T) {
	t.Parallel()
	ours := handle{parent: 40, lockNode: lockNodeOurs}
	unknown := handle{parent: 40, lockNode: lockNodeUnknown}
	tests := map[string]struct {
		got  lockNodeData
		h    handle
		want bool
	}{
		"ours, empty, the same node":                {got: lockNodeData{stat: &zk.Stat{Czxid: 40}}, h: ours, want: true},
		"marked, empty, the same node":              {got: lockNodeData{data: containerMark, stat: &zk.Stat{Czxid: 40}}, h: unknown, want: true},
		"not marked":                                {got: lockNodeData{data: []byte("x"), stat: &zk.Stat{Czxid: 40}}, h: unknown},
		"still has children":                        {got: lockNodeData{stat: &zk.Stat{Czxid: 40, NumChildren: 1}}, h: ours},
		"made again since":                          {got: lockNodeData{stat: &zk.Stat{Czxid: 41}}, h: ours},
		"an outside program's plain ephemeral node": {got: lockNodeData{stat: &zk.Stat{Czxid: 40, EphemeralOwner: 0x77}}, h: ours},
	}
	for name, tc := range tests {
		if got := emptyLockNodeOf(tc.got, tc.h); got != tc.want {
			t.Errorf("%s: emptyLockNodeOf = %v; want %v", name, got, tc.want)
		}
	}
}

func TestNodeHintRemaining(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := map[string]struct {
		n    nodeHint
		want time.Duration
	}{
		"written 2s ago with a 30s TTL":   {n: nodeHint{written: now.Add(-2 * time.Second), ttl: 30 * time.Second}, want: 28 * time.Second},
		"TTL not known":                   {n: nodeHint{written: now}, want: 0},
		"never written by the locker":     {n: nodeHint{ttl: time.Minute}, want: 0},
		"written longer ago than its TTL": {n: nodeHint{written: now.Add(-time.Minute), ttl: time.Second}, want: -59 * time.Second},
	}
	for name, tc := range tests {
		if got := tc.n.remaining(now); got != tc.want {
			t.Errorf("%s: remaining = %v; want %v", name, got, tc.want)
		}
	}
}

func TestFreshLockNode(t *testing.T) {
	t.Parallel()
	own := newOwner("holder-a")
	tests := map[string]struct {
		seq         string
		made, czxid int64
		want        bool
	}{
		"the first child, created right after the lock node":   {seq: "0000000000", made: 100, czxid: 101, want: true},
		"a transaction between (the lock node may be another)": {seq: "0000000000", made: 100, czxid: 102},
		"not the first child":               {seq: "0000000001", made: 100, czxid: 101},
		"the lock node's creation not seen": {seq: "0000000000", made: 0, czxid: 1},
	}
	for name, tc := range tests {
		if got := freshLockNode(nodeOf(own, curatorNaming, tc.seq), tc.made, tc.czxid); got != tc.want {
			t.Errorf("%s: freshLockNode = %v; want %v", name, got, tc.want)
		}
	}
	if freshLockNode("readme", 100, 101) {
		t.Errorf("freshLockNode of a name that is no contender = true")
	}
}
