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

// Package backend defines the small interface that every lock backend
// (Redis, ZooKeeper) implements, the errors they share, and the registry
// through which each backend makes itself available to the controller.
//
// A backend is split into a factory and a client, in the manner of
// external-secrets' Provider and crossplane's ExternalConnector: a Factory
// connects once per server configuration and returns a Locker. Every Locker
// call takes a context first, is short (one or a few round trips), and is
// safe to repeat: the controller may crash between any two calls and call
// again after a restart.
package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them (with %w) so that callers can tell the
// outcomes apart with errors.Is.
var (
	// ErrNotAcquired means the lock is held by a different holder.
	ErrNotAcquired = errors.New("backend: lock is held by another holder")
	// ErrNotHeld means the caller's hold is gone: it expired, was released,
	// or the lock now belongs to someone else. A renewal that returns it has
	// lost the lock; it never re-takes a lost lock silently.
	ErrNotHeld = errors.New("backend: lock is not held by this holder")
	// ErrUnreachable means the server could not be reached or did not answer
	// in time.
	ErrUnreachable = errors.New("backend: server unreachable")
	// ErrUnauthorized means the server refused the credentials.
	ErrUnauthorized = errors.New("backend: server refused the credentials")
	// ErrFencingRegressed means a new hold would have received a fencing
	// token at or below AcquireOptions.MinToken and the backend cannot raise
	// it (ZooKeeper's zxids restart only when an ensemble's data is wiped).
	// Nothing is left held or queued.
	ErrFencingRegressed = errors.New("backend: the fencing token would not exceed the highest one handed out before")
)

// Config is what a Factory needs to connect to one server or ensemble.
type Config struct {
	// Servers are the host:port addresses of the server (Redis), the
	// Sentinels (Redis with SentinelMaster set), some nodes of the cluster
	// (Redis with Cluster set) or the ensemble members (ZooKeeper).
	Servers []string
	// SentinelMaster, when set, names the Redis master that the Sentinels in
	// Servers monitor.
	SentinelMaster string
	// Cluster, when set, makes Servers the seed nodes of a Redis Cluster.
	Cluster bool
	// DB is the Redis logical database.
	DB int
	// Username and Password authenticate the client (Redis AUTH / ACL user;
	// ZooKeeper digest scheme). Empty means no authentication.
	Username string
	Password string
	// SentinelUsername and SentinelPassword authenticate the client to the
	// Redis Sentinels themselves (their requirepass or ACL user), when
	// SentinelMaster is set. Empty means no authentication.
	SentinelUsername string
	SentinelPassword string
	// TLS, when not nil, is used to connect (Redis).
	TLS *tls.Config
	// SessionTimeout is the ZooKeeper session timeout. Zero means the
	// backend's default.
	SessionTimeout time.Duration
	// NodeNames is the ZooKeeper node naming that outside programs on the
	// same lock path expect: NodeNamesCurator (the default when empty) or
	// NodeNamesKazoo. Nodes of every known recipe are recognised whatever
	// the naming; it only decides how the backend names its own nodes.
	NodeNames string
	// DialTimeout bounds each connection attempt. Zero means the backend's
	// default.
	DialTimeout time.Duration
	// ClientName, when set, names the connection on the server where the
	// server can show it (Redis CLIENT SETNAME, seen in CLIENT LIST), so
	// that an operator can tell which manager replica a connection is.
	ClientName string
}

// ZooKeeper node namings (Config.NodeNames).
const (
	// NodeNamesCurator names nodes "_c_<uuid>-lock-<seq>", as Apache
	// Curator's InterProcessMutex and go-zookeeper's zk.Lock do.
	NodeNamesCurator = "Curator"
	// NodeNamesKazoo names nodes "<32 hex digits>__lock__<seq>", as
	// Python's kazoo Lock does.
	NodeNamesKazoo = "Kazoo"
)

// Lease is one holder's hold on a lock.
type Lease struct {
	// Key is the Redis key or ZooKeeper path of the lock.
	Key string
	// Holder is the identity the lock was acquired with.
	Holder string
	// Token is the fencing token of this hold: strictly greater than the
	// token of any earlier hold of the same key on the same server.
	Token int64
	// TTL is how long the server keeps the hold without a renewal, as of the
	// call that returned this Lease.
	TTL time.Duration
	// Queued is set on the Lease that Acquire returns together with an
	// ErrNotAcquired error when the backend keeps the caller's place in line
	// (AcquireOptions.Queue on a backend that queues, i.e. ZooKeeper): the
	// caller does not hold the lock; Token identifies its place in line.
	Queued bool
	// Handle is opaque data by which the backend that returned the Lease
	// finds the hold again in fewer round trips (ZooKeeper: the hold's node),
	// or empty. Callers keep it with the Lease and never build one; a Lease
	// without it (rebuilt from a record after a restart, say) works the
	// same, at the cost of a lookup. Renew returns the Lease with its Handle.
	Handle string
}

// AcquireOptions change what Acquire does. The zero value is a plain
// try-once acquire.
type AcquireOptions struct {
	// MinToken, when positive, is the highest fencing token the caller has
	// ever seen for this key: a new hold gets a token above it (Redis raises
	// its counter to MinToken before it increments it) or Acquire fails with
	// ErrFencingRegressed. A hold the holder already has keeps its token.
	MinToken int64
	// Queue asks a backend that has a queue of its own (ZooKeeper's
	// sequential nodes) to keep the caller's place in line when the lock is
	// held by someone else, so that the caller and outside programs take
	// turns in arrival order. The place lasts for the TTL unless refreshed by
	// another Acquire of the same holder, or until Release of the returned
	// queued Lease; an Acquire of the same holder without Queue gives it up.
	// Backends without a queue (Redis) ignore it.
	Queue bool
	// Limit is how many holders the lock admits at once. 0 and 1 make it a
	// mutex, with the backend's mutex recipe; 2 or more a semaphore, with
	// the backend's semaphore recipe (see each backend's package doc). A
	// new hold is taken only while fewer than Limit holds exist; lowering
	// Limit below the number of holds never ends one. A mutex and a
	// semaphore on the same key exclude each other: while either has a
	// hold, the other takes none. Renew, Release, Inspect and Purge find
	// the recipe by themselves.
	Limit int
}

// AcquireOption sets a field of AcquireOptions.
type AcquireOption func(*AcquireOptions)

// WithMinToken sets AcquireOptions.MinToken.
func WithMinToken(token int64) AcquireOption {
	return func(o *AcquireOptions) { o.MinToken = token }
}

// WithQueue sets AcquireOptions.Queue.
func WithQueue() AcquireOption {
	return func(o *AcquireOptions) { o.Queue = true }
}

// WithLimit sets AcquireOptions.Limit.
func WithLimit(n int) AcquireOption {
	return func(o *AcquireOptions) { o.Limit = n }
}

// NewAcquireOptions applies opts to the zero AcquireOptions.
func NewAcquireOptions(opts ...AcquireOption) AcquireOptions {
	var o AcquireOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// State is what a backend reports about a lock, whoever holds it.
type State struct {
	// Held reports whether anyone holds the lock.
	Held bool
	// Holder identifies the holder. For holds made through this package it
	// is the identity passed to Acquire; for other programs it is what the
	// backend stores for them (the Redis value, or the ZooKeeper node name;
	// for an ephemeral node at the ZooKeeper lock path, "ephemeral node
	// <path> of session 0x…").
	Holder string
	// Token is the fencing token of the current hold, when the backend can
	// tell; zero otherwise.
	Token int64
	// TTL is the remaining time before the hold expires without a renewal;
	// zero when the hold has no expiry the backend can report.
	TTL time.Duration
	// Holds lists every hold when the key holds a semaphore (a semaphore's
	// holds, oldest first; Holder, Token and TTL above are the first's),
	// and is nil for a mutex.
	Holds []Hold
}

// Hold is one hold of a semaphore, as Inspect reports it.
type Hold struct {
	// Holder, Token and TTL are as in State.
	Holder string
	Token  int64
	TTL    time.Duration
}

// Locker holds locks in one backend server or ensemble on behalf of holders.
// All methods are safe for concurrent use and safe to repeat.
type Locker interface {
	// Acquire takes the lock at key for holder, to expire after ttl unless
	// renewed (the Lease's TTL says how long, never more than ttl; a place
	// in line kept with Queue and written a moment before may become the
	// hold with a little less). It does not wait: when another holder has the lock it returns
	// an error wrapping ErrNotAcquired (and, with the Queue option on a
	// backend that queues, a Lease with Queued set that keeps the caller's
	// place in line). Acquiring a lock the same holder already holds
	// succeeds and returns the existing hold with its token, its expiry
	// extended to ttl. A new hold's token exceeds the MinToken option, or
	// Acquire fails with ErrFencingRegressed.
	Acquire(ctx context.Context, key, holder string, ttl time.Duration, opts ...AcquireOption) (Lease, error)
	// Renew extends the hold described by lease to ttl from now. When the
	// hold is gone it returns an error wrapping ErrNotHeld and does not take
	// the lock again. A queued Lease is not a hold: Renew refuses it (Acquire
	// refreshes the place).
	Renew(ctx context.Context, lease Lease, ttl time.Duration) (Lease, error)
	// Release gives up the hold, or the place in line, described by lease
	// (compare-and-delete: it never removes another holder's hold).
	// Releasing a hold that is already gone succeeds. It removes what the
	// backend kept only for this hold (ZooKeeper: the lock node when the
	// backend created it and it is left empty, so that a program that locks
	// by creating a node at the lock path can do so at once).
	Release(ctx context.Context, lease Lease) error
	// Inspect reports who holds the lock at key.
	Inspect(ctx context.Context, key string) (State, error)
	// Purge removes whatever the backend keeps for key besides a hold (the
	// Redis fencing counter, an empty ZooKeeper lock node that the backend
	// created). It never removes a hold, nor a node another program made:
	// when the lock is held it returns an error wrapping ErrNotAcquired.
	Purge(ctx context.Context, key string) error
	// Close releases the connection. It does not release holds.
	Close() error
}

// Renewal is one hold to renew in a batch, and its outcome.
type Renewal struct {
	// Lease is the hold to renew; TTL the lease to extend it to.
	Lease Lease
	TTL   time.Duration
	// Renewed and Err are the outcome, as Renew would return them.
	Renewed Lease
	Err     error
}

// BatchRenewer is implemented by backends that can renew many holds in one
// round trip (Redis: a pipeline of renew scripts). Callers that renew many
// holds over one connection use it when they can; it is equivalent to
// calling Renew for each.
type BatchRenewer interface {
	// RenewBatch renews every renewal in place, setting its Renewed and Err
	// as Renew would: a hold that is gone gets an error wrapping ErrNotHeld
	// and is never taken again. When the round trip itself fails, every
	// renewal gets that error.
	RenewBatch(ctx context.Context, renewals []Renewal)
}

// Watcher is implemented by backends that can tell, without polling, when
// a lock may have changed hands (ZooKeeper watches). Callers that get a
// Locker without it poll instead.
type Watcher interface {
	// Watch returns a channel that is closed once the lock at key may have
	// changed since the call in a way that matters to holder: the current
	// holder released it or its hold expired, or the node before holder's
	// place in line went away. The channel is also closed when ctx ends or
	// the watch cannot be kept (the connection was lost); the caller then
	// looks again. Each call sets one watch.
	Watch(ctx context.Context, key, holder string) (<-chan struct{}, error)
}

// Factory connects to a backend server.
type Factory func(ctx context.Context, cfg Config) (Locker, error)
