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

// Package zookeeper is the ZooKeeper lock backend. It uses the lock recipe
// of Apache Curator's InterProcessMutex and go-zookeeper's zk.Lock, so that
// programs using either of them on the same path exclude distlock's holders
// and are excluded by them.
//
// # Nodes
//
// The lock key is the absolute path of the lock node, e.g. /distlock/ns/name.
// It and its missing ancestors are created as container nodes (as Curator's
// creatingParentContainersIfNeeded does), which the server deletes by itself
// once their last child is gone. A hold is a child of the lock node named
// like one of Curator's protected nodes:
//
//	_c_<UUID>-lock-<10-digit sequence number>
//
// whose data is the holder identity. Unlike Curator, which takes a random
// UUID for every attempt, the UUID is derived from the holder
// (uuid.NewSHA1 of the holder in a namespace fixed by this package), so a
// controller that restarts finds its holders' nodes again by the prefix
// "_c_<UUID>-lock-". The children are ordered by the sequence number after
// the last "lock-", as Curator and zk.Lock order them; the lowest one holds
// the lock. Children without a "lock-<number>" suffix are ignored.
//
// # Why TTL nodes and not ephemeral nodes
//
// Curator and zk.Lock create ephemeral nodes: a hold lives exactly as long
// as the client's session. distlock holds locks on behalf of pods, and a
// hold must outlive the controller process: when the controller restarts,
// its session ends, and an ephemeral hold would vanish while the pod still
// runs in the belief that it holds the lock, letting an outside client in.
// The holds are therefore PERSISTENT_SEQUENTIAL_WITH_TTL nodes, which do not
// belong to a session. The controller renews a hold by writing the node's
// data again, which moves its modification time; once a node has not been
// modified for longer than its TTL (and has no children) the server deletes
// it. The server does so lazily, when its container manager next runs
// (znode.container.checkIntervalMs, one minute by default), so an unrenewed
// hold may outlive its TTL by up to that interval, but a lock is never stuck
// forever when the controller is gone.
//
// A node's TTL is fixed when the node is created: a renewal only restarts
// the clock, with the TTL given to the Acquire that created the node. Nor
// can the TTL be read back (the server reports EphemeralOwner 0 for TTL
// nodes), so a Lease reports the TTL asked for, and a hold adopted after a
// restart keeps the TTL it was created with. Changing the lease duration of
// a held lock takes effect with the next hold.
//
// TTL nodes need a server started with -Dzookeeper.extendedTypesEnabled=true
// (ZooKeeper 3.5.3 or later); other servers refuse to create the holds.
//
// # Operations
//
// Acquire never waits in ZooKeeper's queue: when the lowest child is another
// holder's it returns an error wrapping backend.ErrNotAcquired, and a node
// it created but that did not come first is deleted again; the controller
// retries later. When the lowest child is the caller's own, Acquire adopts
// it. The fencing token of a hold is the creation zxid (Czxid) of its node:
// zxids are totally ordered across the ensemble and survive restarts,
// whereas sequence numbers are per parent and start again at zero when a
// container parent has been deleted.
//
// Renew and Release act only on the node whose Czxid is the lease's token;
// Renew never creates a node. Inspect reports the lowest child: for
// distlock's nodes Holder is the holder identity, for other programs' nodes
// (zk.Lock stores no data, Curator the client's IP address) it is the node
// name. Inspect cannot report a remaining TTL.
//
// # Connection
//
// go-zookeeper reconnects by itself and, after its session expired, opens a
// new one without telling the caller; since holds are not ephemeral, a new
// session loses nothing. Its calls do not take a context and wait while it
// is disconnected; every call of this package is bounded by the caller's
// context instead and then fails with backend.ErrUnreachable, leaving the
// request to finish (or fail) in the background.
//
// With a username, the connection authenticates with the digest scheme and
// the lock nodes and holds it creates are readable and writable by that
// identity only (outside programs sharing such a lock must authenticate the
// same way). Ancestors it creates are shared with locks that use other
// credentials: everyone may list them and create and delete children there,
// and only the creating identity may change their ACL. Without a username,
// all nodes are open to everyone (world:anyone).
//
// The package registers itself as backend "zookeeper" in an init function.
package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/uuid"

	"github.com/distlock/distlock/internal/backend"
)

const (
	// DefaultSessionTimeout is the session timeout when
	// backend.Config.SessionTimeout is zero.
	DefaultSessionTimeout = 10 * time.Second
	// DefaultDialTimeout bounds a connection attempt to one server when
	// backend.Config.DialTimeout is zero.
	DefaultDialTimeout = 2 * time.Second
	// MaxTTL is the longest TTL the server accepts for a TTL node (2^40-1
	// milliseconds).
	MaxTTL = (1<<40 - 1) * time.Millisecond

	// protectedPrefix starts the names of Curator's protected nodes.
	protectedPrefix = "_c_"
	// lockName precedes the sequence number in a lock node's name, in
	// Curator's InterProcessMutex and go-zookeeper's zk.Lock.
	lockName = "lock-"
	// cleanupTimeout bounds the deletion of a node left by a failed
	// Acquire, which runs after the caller's context may have ended.
	cleanupTimeout = 5 * time.Second
	// attempts bounds the retries of an operation that raced with the
	// server (a container parent deleted, a node renewed concurrently).
	attempts = 3
)

// holderNamespace is the namespace of the UUIDs derived from holder
// identities. It must never change: the nodes of existing holds are found
// by it.
var holderNamespace = uuid.MustParse("2a70af58-3ae8-4115-a72e-27f2cf23ac50")

// errUnimplemented is the message of the error by which go-zookeeper
// reports the server's UnimplementedException (code -6, which it has no
// sentinel for). A server without TTL nodes answers a TTL create with it.
var errUnimplemented = fmt.Sprintf("unknown error: %v", int32(-6))

func init() { backend.Register("zookeeper", New) }

// New connects to the ZooKeeper ensemble cfg.Servers and returns a Locker
// for it. It is the backend.Factory of the "zookeeper" backend.
//
// cfg.SessionTimeout (default DefaultSessionTimeout) is the session timeout
// and cfg.DialTimeout (default DefaultDialTimeout) bounds each connection
// attempt. With cfg.Username set, the connection authenticates with the
// digest scheme as cfg.Username:cfg.Password and creates lock nodes and
// holds readable and writable by that identity only (see the package
// documentation for the ancestors). TLS is not supported.
//
// New waits until a session is established: at most until ctx ends, and at
// most one dial timeout per server plus a second. It then fails with an
// error wrapping backend.ErrUnreachable. The digest scheme accepts any
// password, so wrong credentials are not noticed here but by the first
// operation on a node created with the right ones, which fails with
// backend.ErrUnauthorized.
func New(ctx context.Context, cfg backend.Config) (backend.Locker, error) {
	switch {
	case len(cfg.Servers) == 0:
		return nil, errors.New("zookeeper: connect: no server address configured")
	case cfg.TLS != nil:
		return nil, errors.New("zookeeper: connect: TLS is not supported by the zookeeper backend")
	case cfg.Username == "" && cfg.Password != "":
		return nil, errors.New("zookeeper: connect: a password without a username; digest authentication needs both")
	case strings.Contains(cfg.Username, ":"):
		return nil, errors.New("zookeeper: connect: the username must not contain ':'")
	}
	sessionTimeout := cfg.SessionTimeout
	if sessionTimeout <= 0 {
		sessionTimeout = DefaultSessionTimeout
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	target := strings.Join(cfg.Servers, ",")

	ready := make(chan struct{})
	var readyOnce sync.Once
	conn, _, err := zk.Connect(cfg.Servers, sessionTimeout,
		zk.WithLogger(quietLogger{}),
		zk.WithLogInfo(false),
		zk.WithDialer(func(network, address string, _ time.Duration) (net.Conn, error) {
			return net.DialTimeout(network, address, dialTimeout)
		}),
		// The event channel is left unread (go-zookeeper drops events when
		// it is full); the callback sees every event.
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				readyOnce.Do(func() { close(ready) })
			}
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("zookeeper: connect to %s: %w: %w", target, backend.ErrUnreachable, err)
	}

	wait := time.NewTimer(dialTimeout*time.Duration(len(cfg.Servers)) + time.Second)
	defer wait.Stop()
	select {
	case <-ready:
	case <-ctx.Done():
		go conn.Close() // takes up to a second when no server answers
		return nil, fmt.Errorf("zookeeper: connect to %s: %w: no session before the context ended (state %v): %w",
			target, backend.ErrUnreachable, conn.State(), ctx.Err())
	case <-wait.C:
		go conn.Close()
		return nil, fmt.Errorf("zookeeper: connect to %s: %w: no session within %v (state %v)",
			target, backend.ErrUnreachable, dialTimeout*time.Duration(len(cfg.Servers))+time.Second, conn.State())
	}

	l := &locker{conn: conn, acl: zk.WorldACL(zk.PermAll), ancestorACL: zk.WorldACL(zk.PermAll)}
	if cfg.Username != "" {
		auth := []byte(cfg.Username + ":" + cfg.Password)
		if _, err := call(ctx, func() (struct{}, error) {
			return struct{}{}, conn.AddAuth("digest", auth)
		}, nil); err != nil {
			go conn.Close()
			return nil, wrap("connect to", target, err)
		}
		l.acl = zk.DigestACL(zk.PermAll, cfg.Username, cfg.Password)
		// Ancestors such as /distlock/<namespace> are shared with locks
		// that use other credentials, or none.
		l.ancestorACL = append(zk.WorldACL(zk.PermRead|zk.PermCreate|zk.PermDelete), l.acl...)
	}
	return l, nil
}

// locker is the backend.Locker of the ZooKeeper backend.
type locker struct {
	conn *zk.Conn
	// acl is given to the lock nodes and the holds the locker creates.
	acl []zk.ACL
	// ancestorACL is given to the ancestors of lock nodes that the locker
	// creates.
	ancestorACL []zk.ACL
}

var _ backend.Locker = (*locker)(nil)

// Acquire implements backend.Locker.
func (l *locker) Acquire(ctx context.Context, key, holder string, ttl time.Duration) (backend.Lease, error) {
	if err := validate(key, holder, ttl); err != nil {
		return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q: %w", key, err)
	}
	prefix := nodePrefix(holder)
	lease := backend.Lease{Key: key, Holder: holder, TTL: ttl}

	for attempt := 1; ; attempt++ {
		nodes, err := l.lockNodes(ctx, key)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return backend.Lease{}, wrap("acquire", key, err)
		}
		parentMissing := errors.Is(err, zk.ErrNoNode)

		if len(nodes) > 0 {
			lowest := nodes[0]
			if strings.HasPrefix(lowest.name, prefix) {
				// The holder's own hold, e.g. taken before a restart:
				// adopt it and restart its clock.
				stat, err := call(ctx, func() (*zk.Stat, error) {
					return l.conn.Set(lowest.path(key), []byte(holder), -1)
				}, nil)
				if errors.Is(err, zk.ErrNoNode) && attempt < attempts {
					continue // expired a moment ago
				}
				if err != nil {
					return backend.Lease{}, wrap("acquire", key, err)
				}
				if err := l.deleteLeftovers(ctx, key, nodes[1:], prefix); err != nil {
					return backend.Lease{}, wrap("acquire", key, err)
				}
				lease.Token = stat.Czxid
				return lease, nil
			}
			// Someone else holds the lock. Nodes of ours further back are
			// left over from interrupted attempts; they must not come first
			// later without anyone knowing.
			if err := l.deleteLeftovers(ctx, key, nodes[1:], prefix); err != nil {
				return backend.Lease{}, wrap("acquire", key, err)
			}
			return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q for %q: %s: %w",
				key, holder, l.describe(ctx, key, lowest), backend.ErrNotAcquired)
		}

		if parentMissing {
			if err := l.ensurePath(ctx, key); err != nil {
				return backend.Lease{}, wrap("acquire", key, err)
			}
		}
		created, err := call(ctx, func() (string, error) {
			return l.conn.CreateTTL(key+"/"+prefix, []byte(holder), zk.FlagPersistentSequentialWithTTL, l.acl, ttl)
		}, func(path string) {
			// The caller gave up before the node was created: remove it.
			_ = l.conn.Delete(path, -1)
		})
		if errors.Is(err, zk.ErrNoNode) && attempt < attempts {
			continue // the container parent was deleted in the meantime
		}
		if err != nil {
			if err.Error() == errUnimplemented {
				err = fmt.Errorf("the server does not create TTL nodes (it must run with -Dzookeeper.extendedTypesEnabled=true): %w", err)
			}
			return backend.Lease{}, wrap("acquire", key, err)
		}

		taken, retry, err := l.settle(ctx, key, holder, created, lease)
		if err == nil && !retry {
			return taken, nil
		}
		// Never leave a node behind that does not hold the lock.
		l.deleteBestEffort(ctx, created)
		switch {
		case retry && attempt < attempts:
			continue // adopt the holder's other node
		case retry:
			return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q for %q: concurrent attempts for the same holder", key, holder)
		case errors.Is(err, backend.ErrNotAcquired):
			return backend.Lease{}, fmt.Errorf("zookeeper: acquire %q for %q: %w", key, holder, err)
		default:
			return backend.Lease{}, wrap("acquire", key, err)
		}
	}
}

// settle decides, after Acquire created the node at created, whether it
// holds the lock. It returns the lease when it does, an error wrapping
// backend.ErrNotAcquired when another holder's node comes first, and retry
// when another node of the same holder comes first (two Acquires for one
// holder at once). The caller deletes the node unless settle returns a
// lease.
func (l *locker) settle(ctx context.Context, key, holder, created string, lease backend.Lease) (backend.Lease, bool, error) {
	name := created[strings.LastIndex(created, "/")+1:]
	nodes, err := l.lockNodes(ctx, key)
	if err != nil {
		return backend.Lease{}, false, err
	}
	switch {
	case len(nodes) == 0 || !slices.ContainsFunc(nodes, func(n lockNode) bool { return n.name == name }):
		return backend.Lease{}, false, fmt.Errorf("node %s vanished right after it was created", created)
	case nodes[0].name == name:
		stat, err := l.stat(ctx, created)
		if err != nil {
			return backend.Lease{}, false, err
		}
		lease.Token = stat.Czxid
		return lease, false, nil
	case strings.HasPrefix(nodes[0].name, nodePrefix(holder)):
		return backend.Lease{}, true, nil
	default:
		return backend.Lease{}, false, fmt.Errorf("%s: %w", l.describe(ctx, key, nodes[0]), backend.ErrNotAcquired)
	}
}

// Renew implements backend.Locker.
func (l *locker) Renew(ctx context.Context, lease backend.Lease, ttl time.Duration) (backend.Lease, error) {
	if err := validate(lease.Key, lease.Holder, ttl); err != nil {
		return backend.Lease{}, fmt.Errorf("zookeeper: renew %q: %w", lease.Key, err)
	}
	key := lease.Key
	notHeld := func(why string) error {
		return fmt.Errorf("zookeeper: renew %q for %q (token %d): %s: %w",
			key, lease.Holder, lease.Token, why, backend.ErrNotHeld)
	}
	for attempt := 1; ; attempt++ {
		nodes, err := l.lockNodes(ctx, key)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return backend.Lease{}, notHeld("the lock node is gone")
		case err != nil:
			return backend.Lease{}, wrap("renew", key, err)
		case len(nodes) == 0:
			return backend.Lease{}, notHeld("nobody holds the lock")
		case !strings.HasPrefix(nodes[0].name, nodePrefix(lease.Holder)):
			return backend.Lease{}, notHeld(l.describe(ctx, key, nodes[0]))
		}
		path := nodes[0].path(key)
		stat, err := l.stat(ctx, path)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return backend.Lease{}, notHeld("the hold expired")
		case err != nil:
			return backend.Lease{}, wrap("renew", key, err)
		case stat.Czxid != lease.Token:
			return backend.Lease{}, notHeld(fmt.Sprintf("the holder's node %s is another hold, with token %d", nodes[0].name, stat.Czxid))
		}
		// The version makes the write conditional on the node read above.
		stat, err = call(ctx, func() (*zk.Stat, error) {
			return l.conn.Set(path, []byte(lease.Holder), stat.Version)
		}, nil)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return backend.Lease{}, notHeld("the hold expired")
		case errors.Is(err, zk.ErrBadVersion) && attempt < attempts:
			continue // renewed concurrently
		case err != nil:
			return backend.Lease{}, wrap("renew", key, err)
		}
		lease.TTL = ttl
		return lease, nil
	}
}

// Release implements backend.Locker.
func (l *locker) Release(ctx context.Context, lease backend.Lease) error {
	if err := validateKey(lease.Key); err != nil {
		return fmt.Errorf("zookeeper: release %q: %w", lease.Key, err)
	}
	key, prefix := lease.Key, nodePrefix(lease.Holder)
	nodes, err := l.lockNodes(ctx, key)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return wrap("release", key, err)
	}
	for _, n := range nodes {
		if !strings.HasPrefix(n.name, prefix) {
			continue
		}
		for attempt := 1; ; attempt++ {
			stat, err := l.stat(ctx, n.path(key))
			if errors.Is(err, zk.ErrNoNode) {
				break
			}
			if err != nil {
				return wrap("release", key, err)
			}
			if stat.Czxid != lease.Token {
				break // another hold of the same holder
			}
			// The version makes the delete conditional on the node read
			// above.
			_, err = call(ctx, func() (struct{}, error) {
				return struct{}{}, l.conn.Delete(n.path(key), stat.Version)
			}, nil)
			if errors.Is(err, zk.ErrBadVersion) && attempt < attempts {
				continue // renewed concurrently
			}
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				return wrap("release", key, err)
			}
			return nil
		}
	}
	return nil
}

// Inspect implements backend.Locker. The State's TTL is always zero: the
// server does not report a node's TTL.
func (l *locker) Inspect(ctx context.Context, key string) (backend.State, error) {
	if err := validateKey(key); err != nil {
		return backend.State{}, fmt.Errorf("zookeeper: inspect %q: %w", key, err)
	}
	for attempt := 1; ; attempt++ {
		nodes, err := l.lockNodes(ctx, key)
		if errors.Is(err, zk.ErrNoNode) {
			return backend.State{}, nil
		}
		if err != nil {
			return backend.State{}, wrap("inspect", key, err)
		}
		if len(nodes) == 0 {
			return backend.State{}, nil
		}
		st, err := l.state(ctx, key, nodes[0])
		if errors.Is(err, zk.ErrNoNode) && attempt < attempts {
			continue // released in the meantime; look again
		}
		if err != nil {
			return backend.State{}, wrap("inspect", key, err)
		}
		return st, nil
	}
}

// Purge implements backend.Locker. It deletes the lock node itself when it
// has no children; its ancestors are container nodes that the server
// deletes once they are empty.
func (l *locker) Purge(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return fmt.Errorf("zookeeper: purge %q: %w", key, err)
	}
	nodes, err := l.lockNodes(ctx, key)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return wrap("purge", key, err)
	}
	if len(nodes) > 0 {
		return fmt.Errorf("zookeeper: purge %q: the lock is %s: %w", key, l.describe(ctx, key, nodes[0]), backend.ErrNotAcquired)
	}
	_, err = call(ctx, func() (struct{}, error) { return struct{}{}, l.conn.Delete(key, -1) }, nil)
	switch {
	case err == nil, errors.Is(err, zk.ErrNoNode):
		return nil
	case errors.Is(err, zk.ErrNotEmpty):
		return fmt.Errorf("zookeeper: purge %q: the lock node has children (a hold taken in the meantime, or another program's nodes): %w",
			key, backend.ErrNotAcquired)
	default:
		return wrap("purge", key, err)
	}
}

// Close implements backend.Locker. It closes the session, which leaves the
// holds in place: they are not ephemeral.
func (l *locker) Close() error {
	l.conn.Close()
	return nil
}

// lockNode is a child of a lock node that takes part in the lock: its name
// ends in "lock-" and a sequence number.
type lockNode struct {
	name string
	seq  int64
}

func (n lockNode) path(key string) string { return key + "/" + n.name }

// lockNodes lists the lock nodes under key, lowest sequence number first.
// It returns an error wrapping zk.ErrNoNode when key does not exist.
func (l *locker) lockNodes(ctx context.Context, key string) ([]lockNode, error) {
	children, err := call(ctx, func() ([]string, error) {
		children, _, err := l.conn.Children(key)
		return children, err //nolint:wrapcheck // call classifies and wraps it
	}, nil)
	if err != nil {
		return nil, err
	}
	return sortLockNodes(children), nil
}

// sortLockNodes picks the lock nodes out of children and orders them by
// sequence number, as Curator and zk.Lock do.
func sortLockNodes(children []string) []lockNode {
	nodes := make([]lockNode, 0, len(children))
	for _, name := range children {
		i := strings.LastIndex(name, lockName)
		if i < 0 {
			continue
		}
		seq, err := strconv.ParseInt(name[i+len(lockName):], 10, 64)
		if err != nil {
			continue
		}
		nodes = append(nodes, lockNode{name: name, seq: seq})
	}
	slices.SortFunc(nodes, func(a, b lockNode) int {
		if a.seq != b.seq {
			return compareInt(a.seq, b.seq)
		}
		return strings.Compare(a.name, b.name)
	})
	return nodes
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// stat returns the Stat of the node at path, or an error wrapping
// zk.ErrNoNode.
func (l *locker) stat(ctx context.Context, path string) (*zk.Stat, error) {
	return call(ctx, func() (*zk.Stat, error) {
		ok, stat, err := l.conn.Exists(path)
		if err == nil && !ok {
			err = zk.ErrNoNode
		}
		return stat, err
	}, nil)
}

// state reads the lock node n under key and reports it as the holder.
func (l *locker) state(ctx context.Context, key string, n lockNode) (backend.State, error) {
	type node struct {
		data []byte
		stat *zk.Stat
	}
	got, err := call(ctx, func() (node, error) {
		data, stat, err := l.conn.Get(n.path(key))
		return node{data, stat}, err //nolint:wrapcheck // call classifies and wraps it
	}, nil)
	if err != nil {
		return backend.State{}, err
	}
	st := backend.State{Held: true, Holder: n.name, Token: got.stat.Czxid}
	if holder := string(got.data); holder != "" && strings.HasPrefix(n.name, nodePrefix(holder)) {
		st.Holder = holder
	}
	return st, nil
}

// describe says who holds the lock through node n, for error messages.
func (l *locker) describe(ctx context.Context, key string, n lockNode) string {
	st, err := l.state(ctx, key, n)
	switch {
	case err != nil:
		return fmt.Sprintf("held through node %s", n.name)
	case st.Holder == n.name:
		return fmt.Sprintf("held by another program through node %s (fencing token %d)", n.name, st.Token)
	default:
		return fmt.Sprintf("held by %q through node %s (fencing token %d)", st.Holder, n.name, st.Token)
	}
}

// deleteLeftovers deletes the nodes among nodes whose names start with
// prefix: the holder's nodes that do not hold the lock.
func (l *locker) deleteLeftovers(ctx context.Context, key string, nodes []lockNode, prefix string) error {
	for _, n := range nodes {
		if !strings.HasPrefix(n.name, prefix) {
			continue
		}
		_, err := call(ctx, func() (struct{}, error) {
			return struct{}{}, l.conn.Delete(n.path(key), -1)
		}, nil)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("deleting the holder's leftover node %s: %w", n.name, err)
		}
	}
	return nil
}

// deleteBestEffort deletes the node at path that a failed Acquire created.
// It runs even when ctx has ended; a node it cannot delete is found and
// deleted (or adopted) by the holder's next Acquire, or expires.
func (l *locker) deleteBestEffort(ctx context.Context, path string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = call(ctx, func() (struct{}, error) { return struct{}{}, l.conn.Delete(path, -1) }, nil)
}

// ensurePath creates key and its missing ancestors as container nodes.
func (l *locker) ensurePath(ctx context.Context, key string) error {
	create := func(path string) error {
		acl := l.ancestorACL
		if path == key {
			acl = l.acl
		}
		_, err := call(ctx, func() (string, error) {
			return l.conn.CreateContainer(path, nil, zk.FlagContainer, acl)
		}, nil)
		if errors.Is(err, zk.ErrNodeExists) {
			return nil
		}
		return err
	}
	err := create(key)
	if !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	for i := 1; i < len(key); i++ {
		if key[i] == '/' {
			if err := create(key[:i]); err != nil {
				return err
			}
		}
	}
	return create(key)
}

// nodePrefix is the start of the names of holder's lock nodes.
func nodePrefix(holder string) string {
	return protectedPrefix + uuid.NewSHA1(holderNamespace, []byte(holder)).String() + "-" + lockName
}

// validate checks the arguments shared by Acquire and Renew.
func validate(key, holder string, ttl time.Duration) error {
	if err := validateKey(key); err != nil {
		return err
	}
	switch {
	case holder == "":
		return errors.New("empty holder")
	case ttl < time.Millisecond:
		return fmt.Errorf("TTL %v is below ZooKeeper's resolution of 1ms", ttl)
	case ttl > MaxTTL:
		return fmt.Errorf("TTL %v is above ZooKeeper's maximum of %v", ttl, MaxTTL)
	}
	return nil
}

// validateKey checks that key is an absolute ZooKeeper path that may hold
// lock nodes.
func validateKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case key[0] != '/':
		return errors.New("the key must be an absolute path starting with '/'")
	case key == "/":
		return errors.New("the key must not be the root node")
	case strings.HasSuffix(key, "/"):
		return errors.New("the key must not end with '/'")
	case strings.ContainsRune(key, 0):
		return errors.New("the key must not contain NUL")
	case key == "/zookeeper" || strings.HasPrefix(key, "/zookeeper/"):
		return errors.New("/zookeeper is reserved for the server")
	}
	for part := range strings.SplitSeq(key[1:], "/") {
		switch part {
		case "":
			return errors.New("the key must not contain an empty path element")
		case ".", "..":
			return errors.New("the key must not contain relative path elements")
		}
	}
	return nil
}

// call runs fn, one blocking go-zookeeper request, and waits for it at most
// until ctx ends, then returns ctx.Err(). The request then goes on in the
// background (go-zookeeper fails it at the latest when the session times
// out); when it succeeds after all, abandoned, if not nil, is called with
// its result, to undo it.
func call[T any](ctx context.Context, fn func() (T, error), abandoned func(T)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	const (
		pending int32 = iota
		delivered
		givenUp
	)
	var state atomic.Int32
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
		if !state.CompareAndSwap(pending, delivered) && err == nil && abandoned != nil {
			abandoned(v)
		}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		if state.CompareAndSwap(pending, givenUp) {
			var zero T
			return zero, ctx.Err()
		}
		r := <-done // finished just now; its result is the caller's
		return r.v, r.err
	}
}

// wrap adds the operation and key to err and, where it can tell, the
// backend sentinel that classifies it.
func wrap(op, key string, err error) error {
	if kind := classify(err); kind != nil {
		return fmt.Errorf("zookeeper: %s %q: %w: %w", op, key, kind, err)
	}
	return fmt.Errorf("zookeeper: %s %q: %w", op, key, err)
}

// classify maps a go-zookeeper error to backend.ErrUnauthorized (the server
// refused the credentials, or the node's ACL does not admit them),
// backend.ErrUnreachable (no server answered, or not in time), or nil.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed):
		return backend.ErrUnauthorized
	case errors.Is(err, zk.ErrNoServer),
		errors.Is(err, zk.ErrConnectionClosed),
		errors.Is(err, zk.ErrSessionExpired),
		errors.Is(err, zk.ErrSessionMoved),
		errors.Is(err, zk.ErrClosing),
		errors.Is(err, context.DeadlineExceeded):
		return backend.ErrUnreachable
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return backend.ErrUnreachable
	}
	return nil
}

// quietLogger discards go-zookeeper's log lines (connection attempts and
// losses); this package reports failures through its errors.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
