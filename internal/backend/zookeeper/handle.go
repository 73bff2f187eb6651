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
	"strconv"
	"strings"

	"github.com/distlock/distlock/internal/backend"
)

// lockNodeKind is what the backend knew of a lock node when it took a hold
// in it: whether Release may delete it with the hold's node.
type lockNodeKind byte

const (
	// lockNodeUnknown: not known; Release reads the lock node to find out.
	lockNodeUnknown lockNodeKind = '?'
	// lockNodeOurs: a container this package created (it carries
	// containerMark).
	lockNodeOurs lockNodeKind = 'o'
	// lockNodeForeign: someone else's (zk.Lock's persistent node, say);
	// never deleted.
	lockNodeForeign lockNodeKind = 'f'
)

// handle is what the Handle of a Lease of this backend carries, so that
// Renew and Release reach the hold's node by name, without listing the
// lock node, and Release knows whether the lock node goes with it. Its
// text is "<node name>/<token>/<lock node czxid>/<kind>[a]"; node names
// cannot contain '/'.
type handle struct {
	// name is the hold's node under the lock node. It is unique: no node
	// of the same holder ever has that name again (see owner).
	name string
	// token is the node's creation zxid, the Lease's Token.
	token int64
	// parent is the lock node's creation zxid when the hold was taken.
	parent int64
	// lockNode is what was known of the lock node.
	lockNode lockNodeKind
	// alone reports that the node was the lock node's only child when the
	// hold was taken, so that Release expects to delete the lock node too.
	alone bool
}

func (h handle) String() string {
	b := make([]byte, 0, len(h.name)+44)
	b = append(append(b, h.name...), '/')
	b = append(strconv.AppendInt(b, h.token, 10), '/')
	b = append(strconv.AppendInt(b, h.parent, 10), '/', byte(h.lockNode))
	if h.alone {
		b = append(b, 'a')
	}
	return string(b)
}

// parseHandle reads the handle of lease; own is newOwner(lease.Holder). It
// reports false (and the caller falls back to finding the node by the
// holder's prefix) when there is none, when it does not parse, when its
// node is not one of the holder's, or when its token is not the lease's: a
// handle never makes a Lease act on another hold than its Token names.
func parseHandle(lease backend.Lease, own owner) (handle, bool) {
	parts := strings.Split(lease.Handle, "/")
	if len(parts) != 4 || len(parts[3]) == 0 || len(parts[3]) > 2 {
		return handle{}, false
	}
	h := handle{name: parts[0], lockNode: lockNodeKind(parts[3][0]), alone: parts[3][1:] == "a"}
	var err error
	if h.token, err = strconv.ParseInt(parts[1], 10, 64); err != nil || h.token != lease.Token {
		return handle{}, false
	}
	if h.parent, err = strconv.ParseInt(parts[2], 10, 64); err != nil {
		return handle{}, false
	}
	switch {
	case h.lockNode != lockNodeUnknown && h.lockNode != lockNodeOurs && h.lockNode != lockNodeForeign,
		len(parts[3]) == 2 && !h.alone:
		return handle{}, false
	}
	if _, ok := parseContender(h.name); !ok || own.holder != lease.Holder || !own.owns(h.name) {
		return handle{}, false
	}
	return h, true
}
