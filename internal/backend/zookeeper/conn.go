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
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

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
)

func init() { backend.Register("zookeeper", New) }

// New connects to the ZooKeeper ensemble cfg.Servers and returns a Locker
// for it. It is the backend.Factory of the "zookeeper" backend. The Locker
// also implements backend.Watcher.
//
// cfg.SessionTimeout (default DefaultSessionTimeout) is the session timeout
// and cfg.DialTimeout (default DefaultDialTimeout) bounds each connection
// attempt. cfg.NodeNames chooses how the Locker names its nodes
// (backend.NodeNamesCurator, the default, or backend.NodeNamesKazoo); any
// other value is refused. With cfg.Username set, the connection
// authenticates with the digest scheme as cfg.Username:cfg.Password and
// creates lock nodes and holds readable and writable by that identity only
// (see the package documentation for the ancestors). TLS is not supported.
//
// New waits until a session is established: at most until ctx ends, and at
// most one dial timeout per server plus a second. It then fails with an
// error wrapping backend.ErrUnreachable. The digest scheme accepts any
// password, so wrong credentials are not noticed here but by the first
// operation on a node created with the right ones, which fails with
// backend.ErrUnauthorized.
func New(ctx context.Context, cfg backend.Config) (backend.Locker, error) {
	names, err := parseNaming(cfg.NodeNames)
	switch {
	case err != nil:
		return nil, fmt.Errorf("zookeeper: connect: %w", err)
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

	link, tap := newLink(), newWireTap()
	conn, _, err := zk.Connect(cfg.Servers, sessionTimeout,
		zk.WithLogger(quietLogger{}),
		zk.WithLogInfo(false),
		zk.WithDialer(func(network, address string, _ time.Duration) (net.Conn, error) {
			c, err := net.DialTimeout(network, address, dialTimeout)
			if err != nil {
				return nil, err //nolint:wrapcheck // go-zookeeper logs it and tries the next server
			}
			return tap.wrap(c), nil
		}),
		// The event channel is left unread (go-zookeeper drops events when
		// it is full); the callback sees every event.
		zk.WithEventCallback(link.event),
	)
	if err != nil {
		return nil, fmt.Errorf("zookeeper: connect to %s: %w: %w", target, backend.ErrUnreachable, err)
	}

	wait := time.NewTimer(dialTimeout*time.Duration(len(cfg.Servers)) + time.Second)
	defer wait.Stop()
	select {
	case <-link.ready:
	case <-ctx.Done():
		go conn.Close() // takes up to a second when no server answers
		return nil, fmt.Errorf("zookeeper: connect to %s: %w: no session before the context ended (state %v): %w",
			target, backend.ErrUnreachable, conn.State(), ctx.Err())
	case <-wait.C:
		go conn.Close()
		return nil, fmt.Errorf("zookeeper: connect to %s: %w: no session within %v (state %v)",
			target, backend.ErrUnreachable, dialTimeout*time.Duration(len(cfg.Servers))+time.Second, conn.State())
	}

	l := &locker{
		conn:        conn,
		link:        link,
		tap:         tap,
		hints:       newHints(),
		naming:      names,
		acl:         zk.WorldACL(zk.PermAll),
		ancestorACL: zk.WorldACL(zk.PermAll),
	}
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

// locker is the backend.Locker and backend.Watcher of the ZooKeeper
// backend.
type locker struct {
	conn *zk.Conn
	link *link
	// tap watches the connection's bytes (wireTap): it lets dependent
	// requests go out back to back and shows created nodes' Stats.
	tap *wireTap
	// hints is what the locker remembers of the locks it used.
	hints *hints
	// naming decides the names of the nodes the locker creates.
	naming naming
	// acl is given to the lock nodes and the holds the locker creates.
	acl []zk.ACL
	// ancestorACL is given to the ancestors of lock nodes that the locker
	// creates.
	ancestorACL []zk.ACL
	// watching counts the goroutines of watches that have not ended.
	watching atomic.Int64
}

var (
	_ backend.Locker  = (*locker)(nil)
	_ backend.Watcher = (*locker)(nil)
)

// Close implements backend.Locker. It closes the session, which leaves the
// holds in place: they are not ephemeral. Open watches end.
func (l *locker) Close() error {
	l.conn.Close()
	return nil
}

// link follows the connection's session events: it tells New when the
// first session is established, and watches when the connection drops.
type link struct {
	readyOnce sync.Once
	ready     chan struct{}

	mu sync.Mutex
	// down is closed when the connection is lost, and replaced by an open
	// channel when a session is established again.
	down chan struct{}
}

func newLink() *link {
	return &link{ready: make(chan struct{}), down: make(chan struct{})}
}

// event is go-zookeeper's event callback.
func (k *link) event(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch ev.State {
	case zk.StateHasSession:
		k.readyOnce.Do(func() { close(k.ready) })
		select {
		case <-k.down:
			k.down = make(chan struct{})
		default:
		}
	case zk.StateDisconnected, zk.StateExpired, zk.StateAuthFailed:
		select {
		case <-k.down:
		default:
			close(k.down)
		}
	}
}

// lost returns a channel that is closed once the connection is lost (at
// once when it is down now).
func (k *link) lost() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.down
}

// quietLogger discards go-zookeeper's log lines (connection attempts and
// losses); this package reports failures through its errors.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
