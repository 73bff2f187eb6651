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
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/distlock/distlock/internal/backend"
)

// holderNamespace is the namespace of the UUIDs derived from holder
// identities. It must never change: the nodes of existing holds are found
// by it.
var holderNamespace = uuid.MustParse("2a70af58-3ae8-4115-a72e-27f2cf23ac50")

// naming is how the locker names the nodes it creates
// (backend.Config.NodeNames).
type naming int

const (
	// curatorNaming: "_c_<UUID>-lock-<seq>", a Curator protected node.
	curatorNaming naming = iota
	// kazooNaming: "<32 hex digits>__lock__<seq>", as kazoo's Lock.
	kazooNaming
)

func parseNaming(s string) (naming, error) {
	switch s {
	case "", backend.NodeNamesCurator:
		return curatorNaming, nil
	case backend.NodeNamesKazoo:
		return kazooNaming, nil
	}
	return 0, fmt.Errorf("unknown node naming %q: want %q (the default) or %q",
		s, backend.NodeNamesCurator, backend.NodeNamesKazoo)
}

// The markers that precede the sequence number in the names of the
// contender nodes of the recipes this package knows. Every one of them
// excludes distlock's exclusive lock.
const (
	// curatorLock: Curator's InterProcessMutex ("_c_<UUID>-lock-"),
	// go-zookeeper's zk.Lock ("_c_<32 hex>-lock-") and the recipe of the
	// ZooKeeper documentation. Curator sorts by the suffix after the last
	// "lock-".
	curatorLock = "lock-"
	// kazooLock: kazoo's Lock and WriteLock ("<32 hex>__lock__").
	kazooLock = "__lock__"
	// kazooRead: kazoo's ReadLock ("<32 hex>__rlock__"), shared among
	// readers.
	kazooRead = "__rlock__"
	// curatorRead and curatorWrite: Curator's InterProcessReadWriteLock
	// ("_c_<UUID>-__READ__", "_c_<UUID>-__WRIT__").
	curatorRead  = "__READ__"
	curatorWrite = "__WRIT__"

	// protectedPrefix starts the names of Curator's protected nodes.
	protectedPrefix = "_c_"
)

// markers are the markers of contender nodes (see above).
var markers = []string{curatorLock, kazooLock, kazooRead, curatorRead, curatorWrite}

// seqLen is the length of the sequence number that the parent appends to
// every sequential child alike: ZooKeeper formats it with %010d, so a
// counter that wrapped past 2^31 gives "-" and 9 digits.
const seqLen = 10

// contender is a child of a lock node that takes part in the lock.
type contender struct {
	name   string
	seq    int64
	marker string
}

func (c contender) path(key string) string { return key + "/" + c.name }

// recipe names the recipe that creates nodes like c, for messages.
func (c contender) recipe() string {
	switch c.marker {
	case kazooLock:
		return "kazoo Lock"
	case kazooRead:
		return "kazoo ReadLock"
	case curatorRead:
		return "Curator read lock"
	case curatorWrite:
		return "Curator write lock"
	}
	return "Curator InterProcessMutex or zk.Lock"
}

// parseContender recognises a contender node by its name: a known marker,
// then the sequence number, as kazoo's _contenders_re does with
// `(?:__lock__)(-?\d{10})$`. (It runs for every child of every listing, so
// it is plain string work rather than a regular expression.)
func parseContender(name string) (contender, bool) {
	if len(name) < seqLen {
		return contender{}, false
	}
	rest, seq := name[:len(name)-seqLen], name[len(name)-seqLen:]
	digits := seq
	if seq[0] == '-' {
		digits = seq[1:]
	}
	for i := range len(digits) {
		if digits[i] < '0' || digits[i] > '9' {
			return contender{}, false
		}
	}
	for _, m := range markers {
		if strings.HasSuffix(rest, m) {
			n, err := strconv.ParseInt(seq, 10, 64)
			if err != nil {
				return contender{}, false
			}
			return contender{name: name, seq: n, marker: m}, true
		}
	}
	return contender{}, false
}

// sortContenders picks the contender nodes out of children and orders them
// by sequence number, the order in which the parent created them. Children
// of no known recipe are left out: they take no part in the lock.
func sortContenders(children []string) []contender {
	nodes := make([]contender, 0, len(children))
	for _, name := range children {
		if c, ok := parseContender(name); ok {
			nodes = append(nodes, c)
		}
	}
	slices.SortFunc(nodes, func(a, b contender) int {
		if a.seq != b.seq {
			if a.seq < b.seq {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return nodes
}

// owner tells a holder's nodes from others' nodes. A node's name carries a
// UUID (Curator naming: "_c_<UUID>-lock-<seq>"; Kazoo naming: "<UUID as 32
// hex digits>__lock__<seq>") whose first 80 bits are derived from the holder
// (uuid.NewSHA1 in holderNamespace), so that a restarted controller finds
// the holder's nodes again by that prefix, in either naming, and whose last
// 48 bits (the UUID's last group) are random for every node, so that a
// name is never used twice for one holder, not even when a lock node is
// deleted and made again and its sequence numbers start again at zero: a
// Lease's Handle can then name its node, and a stale Lease can never reach a
// newer hold of the same holder by name. Nodes from before the random part
// (the whole UUID derived from the holder) start with the same prefix and
// are recognised too.
type owner struct {
	holder string
	// curator is "_c_" and the holder's part of the UUID with its dashes:
	// "_c_xxxxxxxx-xxxx-5xxx-yxxx-".
	curator string
	// kazoo is the holder's part of the UUID as 20 hex digits.
	kazoo string
}

// holderPart is how many leading bytes of a node's UUID come from the
// holder; the rest (the UUID's last group, 6 bytes) is random.
const holderPart = 10

func newOwner(holder string) owner {
	id := uuid.NewSHA1(holderNamespace, []byte(holder)).String()
	return owner{
		holder:  holder,
		curator: protectedPrefix + id[:24],
		kazoo:   strings.ReplaceAll(id[:23], "-", ""),
	}
}

// nodeName returns the name, without sequence number, of a new node for the
// holder in naming n, with tail as the UUID's random last group.
func (o owner) nodeName(n naming, tail [16 - holderPart]byte) string {
	t := hex.EncodeToString(tail[:])
	if n == kazooNaming {
		return o.kazoo + t + kazooLock
	}
	return o.curator + t + "-" + curatorLock
}

// newNodeName is nodeName with a random tail.
func (o owner) newNodeName(n naming) string {
	// Uniqueness, not secrecy: math/rand is enough.
	var r [8]byte
	binary.BigEndian.PutUint64(r[:], rand.Uint64())
	var tail [16 - holderPart]byte
	copy(tail[:], r[:])
	return o.nodeName(n, tail)
}

// owns reports whether the node named name is one of the holder's.
func (o owner) owns(name string) bool {
	return strings.HasPrefix(name, o.curator) || strings.HasPrefix(name, o.kazoo)
}

// mine returns the holder's nodes among nodes, in the same order.
func (o owner) mine(nodes []contender) []contender {
	var own []contender
	for _, n := range nodes {
		if o.owns(n.name) {
			own = append(own, n)
		}
	}
	return own
}
