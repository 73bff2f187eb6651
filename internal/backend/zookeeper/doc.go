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

// Package zookeeper is the ZooKeeper lock backend. It takes part in the
// lock recipes that other ZooKeeper programs use on the same path, so that
// they exclude distlock's holders and are excluded by them: Apache
// Curator's InterProcessMutex, go-zookeeper's zk.Lock, Python kazoo's Lock,
// and the plainest recipe of all, one ephemeral node at the lock path.
//
// # Nodes
//
// The lock key is the absolute path of the lock node, e.g. /distlock/ns/name.
// When it is missing, it and its missing ancestors are created as container
// nodes (as Curator's creatingParentContainersIfNeeded does), which the
// server deletes by itself once their last child is gone; the lock node gets
// the data "distlock container", the mark by which this package knows it
// made the node (the server reports a container like a persistent node). A
// hold is a child of the lock node whose data is the holder identity and
// whose name depends on backend.Config.NodeNames:
//
//	_c_<UUID>-lock-<10-digit sequence number>      Curator (the default)
//	<UUID as 32 hex digits>__lock__<sequence>      Kazoo
//
// Curator and kazoo take a random UUID for every attempt. Here the first 80
// bits of the UUID are derived from the holder (uuid.NewSHA1 of the holder
// in a namespace fixed by this package), so a controller that restarts
// finds its holders' nodes again by that prefix, in either naming, whatever
// the setting (a lock can switch naming while it is held); the last 48 bits
// (the UUID's last group) are random for every node, so a name is never
// used twice for a holder, not even when the lock node is made again and
// its sequence numbers start again at zero. That is what lets a Lease name
// its node (below). Nodes from before the random part, whose whole UUID is
// the holder's, have the same prefix and are recognised too.
//
// # Contenders and order
//
// The children that take part in the lock, contenders, are those whose
// names end in one of these markers and a 10-character sequence number:
//
//	lock-     Curator InterProcessMutex, zk.Lock, ZooKeeper's own recipe
//	__lock__  kazoo Lock and WriteLock
//	__rlock__ kazoo ReadLock
//	__READ__  Curator InterProcessReadWriteLock, read side
//	__WRIT__  Curator InterProcessReadWriteLock, write side
//
// Each of them excludes distlock's exclusive lock: a reader holds off a
// writer. They are ordered by sequence number, which the parent assigns to
// all its sequential children alike, whatever their names; the first one
// holds the lock. Other children are ignored, except a semaphore's "leases"
// child (see Semaphores): its lease nodes hold the mutex off. kazoo's
// Semaphore (plain "<hex>" children and a lock at "<path>-__lock__") is not
// recognised and excludes no one here.
//
// Whether an outside program sees distlock's nodes depends on its parser,
// which is why the naming is a setting. Curator sorts every child by the
// text after its last "lock-", and zk.Lock parses "lock-" and "__" names
// alike: both order Curator-named nodes correctly. kazoo's Lock counts only
// "__lock__" names by default: it ignores Curator-named nodes and takes the
// lock beside a distlock hold, unless it is created with
// extra_lock_patterns=["-lock-"]. Choose NodeNames Kazoo for a path that
// kazoo programs share (zk.Lock also understands it; Curator does not: it
// compares such a name as a whole with the sequence numbers of its own
// nodes, which orders it by its random prefix instead of its sequence).
//
// # The plainest recipe: one ephemeral node at the lock path
//
// A program may lock by creating an ephemeral node exactly at the lock path
// and deleting it to release. While such a node exists (the server reports
// its session as EphemeralOwner; it reports 0 for persistent, container and
// TTL nodes), Inspect reports the lock held by "ephemeral node <path> of
// session 0x…" with the node's creation zxid as token, Acquire fails with
// backend.ErrNotAcquired (no queueing is possible: an ephemeral node has no
// children), Renew reports backend.ErrNotHeld, Purge leaves it alone, and
// Watch watches it. The other way round, Release deletes the lock node
// together with the holder's node when that was the last child and this
// package created the lock node (one transaction when the hold was alone
// in it, so it can remove nothing else; when others waited in line when
// the hold was taken, a read right behind the node's deletion tells whether
// the lock node is left empty), so that such a program can create its node
// at once rather than when the server's container reaper next runs (every
// minute by default). A lock node that someone else made, e.g. zk.Lock's
// persistent one, is never deleted. (When the others in line were places
// of this locker's holders that it still knows of, the lock node is not
// read: it stays for them; if they had all gone meanwhile without this
// locker's knowing, the reaper removes it.)
//
// # Why TTL nodes and not ephemeral nodes
//
// Curator, zk.Lock and kazoo create ephemeral nodes: a hold lives exactly as
// long as the client's session. distlock holds locks on behalf of pods, and a
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
// # Acquire, the queue and the fencing token
//
// Acquire does not wait. When the first contender is the holder's own node
// it holds: a hold taken before (it is adopted, with its clock restarted and
// its token kept) or a place in line that has come first. When another
// contender comes first, Acquire returns an error wrapping
// backend.ErrNotAcquired, and:
//
//   - by default it takes no place in line: a node it created is deleted
//     again, and so is a place in line the holder kept before;
//   - with backend.WithQueue it keeps the holder's node where it is, in
//     ZooKeeper's own order, and returns with the error a Lease with Queued
//     set whose Token is the waiting node's creation zxid. The next Acquire
//     for the holder restarts the node's clock (the place lasts one TTL per
//     Acquire) and holds once the node is first, so that distlock's pods and
//     outside programs take turns in arrival order. Release of the queued
//     Lease gives the place up.
//
// A holder has at most one node: further ones, left by interrupted or
// concurrent attempts, are deleted, keeping the lowest.
//
// The fencing token of a hold is the creation zxid (Czxid) of its node:
// zxids are totally ordered across the ensemble and survive restarts,
// whereas sequence numbers are per parent and start again at zero when a
// container parent has been deleted. A node that comes first was created
// after every node that held before it, so its token is higher than theirs.
// Zxids only go back when the ensemble's data is wiped; with
// backend.WithMinToken, Acquire compares the zxid of every node it creates
// with the floor and, when it is not above, deletes the node and fails with
// backend.ErrFencingRegressed. Nodes that exist already (a hold or a place
// in line) were checked when they were created and keep their tokens.
//
// Inspect reports the first contender: for distlock's nodes Holder is the
// holder identity, for other programs' nodes (zk.Lock stores no data,
// Curator the client's IP address, kazoo an identifier of its choice) it is
// the node name. Inspect cannot report a remaining TTL.
//
// # Round trips
//
// Every request of go-zookeeper waits for its answer, but requests of one
// session are executed in the order they arrive. The locker watches the
// bytes of its connection (wireTap) to send dependent requests back to back
// without waiting for each answer (a request queued once the one before it
// is on the wire runs after it), and to read the creation zxid that the
// server returns with a created TTL node, which go-zookeeper drops. It also
// remembers, per lock, what it last saw (hints): whether its last Release
// deleted the lock node, the holders' nodes and their places in line, who
// held. A hint only orders requests; every decision rests on the server's
// answers, and a wrong hint costs a round trip. So, in round trips:
//
//   - Acquire of a free lock: 1. The holder's node and a listing of the
//     lock node go out back to back; the listing shows whether the node is
//     first and whether the holder had a node already (then that one is
//     kept and the new one deleted: 2). When the locker's last Release
//     deleted the lock node, the lock node's creation goes first and the
//     listing is left out: a node whose creation zxid directly follows the
//     lock node's (no transaction in between) and whose sequence number is
//     0 is the first child of the lock node just made, and holds (else the
//     listing follows: 2).
//   - Acquire of a held lock, trying once: 1 (a listing) once the locker has
//     seen the lock held, else 2 (the node created and listed, then deleted
//     while the holder's node is read for the message).
//   - Acquire with Queue behind a holder: 1 (created and listed).
//   - A place in line taking its turn: 1. When the place was written within
//     the last tenth of the TTL by this locker, its clock is not restarted
//     and the Lease reports the time left (at least 9/10 of the TTL), so
//     that taking one's turn is a read, as it is for zk.Lock: a listing,
//     or, when a Watch of this locker saw the node before the place deleted
//     and that node had come first (nodes before a first one are gone for
//     good, and nothing was between it and the place), a read of the place
//     alone. Otherwise the listing and the write go together, still 1.
//   - Acquire again by a holder: 1 (a listing and the write that restarts
//     the clock, in parallel).
//   - Renew and Release with the Lease's Handle: 1. Renew writes the node by
//     name; Release deletes it, together with the lock node when that is
//     ours and was left to the hold alone (one transaction), else followed
//     on the wire by a read of the lock node that tells whether it is left
//     empty (then a second request deletes it).
//   - Renew and Release without Handle (a Lease rebuilt from a record after
//     a restart): 3 — the lock node listed and read, the node's Stat to
//     check its token, then the write or the delete. The Lease Renew
//     returns carries a Handle, so this happens once per restart and hold.
//   - Watch: 1 (the node before the holder's place, which the last Acquire
//     saw, watched by name), else 2.
//   - Semaphores use no hints and no tap-ordered pipelines beyond the guard
//     mutex's: a new hold costs 5 (P and P/leases listed together; the
//     guard taken; P/leases listed under it; the lease node created; the
//     guard released while P is listed), a hold taken again 3, Renew and
//     Release with the Handle 1.
//
// # Semaphores
//
// Acquire with backend.WithLimit(n), n >= 2, takes one of n holds of a
// semaphore, in the layout of Apache Curator's InterProcessSemaphoreV2 on
// the lock path P, so that Curator clients with the same path and
// maxLeases share it:
//
//	P/locks/_c_<UUID>-lock-<seq>    the guard mutex: places in line, as for a mutex
//	P/leases/_c_<UUID>-lease-<seq>  one lease node per hold
//
// Only a holder of the guard mutex creates a lease node, so while it holds
// the guard the number of lease nodes can only fall. Curator's client takes
// the guard (an InterProcessMutex at P/locks), creates its lease node (a
// protected EPHEMERAL_SEQUENTIAL node, its data the client's IP address by
// default), lists P/leases and holds once it has at most maxLeases
// children, else waits, still holding the guard, on a children watch; then
// it releases the guard. Release deletes the lease node.
//
// distlock's Acquire never waits. It lists P/leases: a lease node of the
// holder (found by the holder-derived prefix of its UUID, as for a mutex)
// is its hold, adopted with its token and its clock restarted. Otherwise it
// takes the guard with this package's mutex (so distlock's holders and
// Curator clients get it in arrival order; with WithQueue the place is
// kept, as for a mutex, and the error comes with a queued Lease). Holding
// the guard, it lists P/leases again and, when there are fewer than n
// children (every child counts, as Curator counts them; a Curator client
// waiting for room is counted, which errs on the safe side), creates its
// lease node, a PERSISTENT_SEQUENTIAL_WITH_TTL node (not ephemeral, for the
// reason given below) with the holder identity as data; the hold's token
// is the node's creation zxid. It releases the guard at once. When the
// semaphore is full, with WithQueue it keeps the guard, first in line as a
// waiting Curator client does, and returns a queued Lease; without, it
// gives the guard up. Either way the result is backend.ErrNotAcquired.
//
// A Curator client sees distlock's lease nodes as other clients' leases
// (protected names, counted alike) and distlock's guard places as other
// InterProcessMutex contenders; distlock's nodes outlive its session, and
// an unrenewed one goes when its TTL has passed (and the container manager
// ran), as a crashed Curator client's lease goes with its session.
//
// A mutex and a semaphore on the same path exclude each other by the age
// of their nodes: each side creates its node and then looks at the other
// side's (a mutex Acquire lists P/leases, a semaphore Acquire the
// contenders at P), and the younger gives way. A mutex node younger than a
// lease node does not hold (with WithQueue it stays first in line and
// waits for the semaphore's holds to go); a lease node younger than the
// first contender at P is no hold and is deleted. A waiting mutex holder
// therefore holds new semaphore holds off while existing ones run out. A
// mutex Acquire reads P/leases only when P has a "leases" child: a path
// that never held a semaphore costs the mutex nothing. Curator's own
// clients do not make this check.
//
// Renew, Release, Inspect and Purge are not told the Limit. A semaphore
// hold's Handle names its lease node ("lease:<name>/<token>"); a queued
// Lease's names its place in the guard mutex ("guard:<mutex handle>").
// Without a Handle, they look for the holder's lease node under P/leases
// when P has a "leases" child, then for a mutex node at P, then for a place
// under P/locks. Renew writes the lease node, only while it exists and has
// the Lease's token as creation zxid, and never creates one; Release
// deletes it (and any place of the holder's in the guard mutex). Inspect
// reports every lease node in State.Holds, oldest first (Holder is the
// holder identity for distlock's nodes, the node name for others'), and
// cannot report TTLs. Purge refuses while a lease node or a place in line
// exists, and deletes the empty P/locks and P/leases this package made.
// Watch closes its channel when the predecessor of the holder's place (at
// P or in the guard mutex) goes, or, for a holder first in line, when the
// children of P/leases change.
//
// # Leases and Handles
//
// The Lease's Handle names the hold's node, its token, the lock node's
// creation zxid and whether the lock node is distlock's and was left to the
// hold alone. Renew and Release use it only when its node is one of the
// Lease holder's and its token is the Lease's: a Handle never makes a Lease
// act on another hold. A node that came first stays first while it exists
// (later nodes get higher sequence numbers), and its name is never used
// again, so Renew by name succeeds exactly while the hold lasts and never
// creates a node; Renew refuses a queued Lease. Without a Handle, Renew and
// Release find the node by the holder's prefix and act only on the node
// whose Czxid is the Lease's token.
//
// # Watches
//
// The Locker implements backend.Watcher: Watch sets one ZooKeeper data
// watch on the node whose deletion matters to the holder (the plain
// ephemeral node, the holder's predecessor in line, or the first contender)
// and closes its channel when that node goes, when the connection is lost,
// or when the context ends, so that callers can wait without polling.
//
// # Connection
//
// go-zookeeper reconnects by itself (to another member of the ensemble
// when one is lost: the session moves, and the holds with it; see
// TestHoldsSurviveTheLossOfTheEnsembleLeader) and, after its session
// expired, opens a new one without telling the caller; since holds are not
// ephemeral, a new session loses nothing. Its calls do not take a context and wait while it
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
