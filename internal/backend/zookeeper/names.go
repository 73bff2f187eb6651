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
	"encoding/hex"
	"fmt"
	"regexp"
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

// contenderName matches the name of a contender node: a known marker, then
// the 10-character sequence number that the parent appends to every
// sequential child alike (ZooKeeper formats it with %010d, so a counter
// that wrapped past 2^31 gives "-" and 9 digits). kazoo's _contenders_re is
// the same idea: `(?:__lock__)(-?\d{10})$`.
var contenderName = regexp.MustCompile(`(lock-|__lock__|__rlock__|__READ__|__WRIT__)(\d{10}|-\d{9})$`)

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

// parseContender recognises a contender node by its name.
func parseContender(name string) (contender, bool) {
	m := contenderName.FindStringSubmatch(name)
	if m == nil {
		return contender{}, false
	}
	seq, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return contender{}, false
	}
	return contender{name: name, seq: seq, marker: m[1]}, true
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

// owner tells a holder's nodes from others' nodes. The UUID in their names
// is derived from the holder (uuid.NewSHA1 in holderNamespace), so that a
// restarted controller finds them again; they are recognised in either
// naming, so that a lock can switch naming while it is held.
type owner struct {
	holder  string
	curator string // "_c_<UUID>-lock-"
	kazoo   string // "<UUID as 32 hex digits>__lock__"
}

func newOwner(holder string) owner {
	id := uuid.NewSHA1(holderNamespace, []byte(holder))
	return owner{
		holder:  holder,
		curator: protectedPrefix + id.String() + "-" + curatorLock,
		kazoo:   hex.EncodeToString(id[:]) + kazooLock,
	}
}

// prefix is the name, without sequence number, of a node the locker
// creates for the holder.
func (o owner) prefix(n naming) string {
	if n == kazooNaming {
		return o.kazoo
	}
	return o.curator
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

// nodePrefix is the start of the names of holder's nodes in Curator
// naming.
func nodePrefix(holder string) string { return newOwner(holder).curator }
