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

// Package leader elects the one manager replica that acts on locks, and
// tells every part of the manager, at every instant, what this replica may
// do:
//
//   - Leading: grant, release, and write status, Events and pod annotations.
//     True while this replica renewed the election Lease successfully less
//     than RenewDeadline ago.
//   - MayRenewHolds: renew the holds this manager keeps in the backends.
//     True while Leading, and also during an API server outage in which this
//     replica is the last known holder of the election Lease.
//
// # How
//
// An Elector runs client-go's tools/leaderelection on a coordination.k8s.io/v1
// Lease (namespace and name from Config; "manager.distlock.io" by default,
// the name controller-runtime's election used before, so old and new
// replicas exclude each other during an upgrade), with ReleaseOnCancel, in
// a loop: when a term ends it campaigns again with a fresh LeaderElector
// and the same identity (client-go takes the Lease again at once while the
// Lease still names this replica). client-go's own notion of leadership is
// not used. Instead every Get, Create and Update on the Lease is observed
// and classified: renewed (or acquired), Lease names us, names nobody,
// names another replica, released, rejected by the API server (a conflict,
// 4xx), or unreachable (no answer, the call's own time-out, a 5xx). The
// answers come from decide, a pure function of the last renewal, the last
// call and its outcome, the holder last seen, and the time. Each call is
// stamped with the instant it started, on the monotonic clock, and bounded
// by APICallTimeout.
//
// The manager runs with controller-runtime's leader election off and runs
// the Elector as a Runnable whose NeedLeaderElection is false: every
// replica keeps its caches warm, so a replica that takes over needs no
// cache sync.
//
// # Renewing holds while the API server is down
//
// A renewal of a hold is a compare-and-extend on the exact token of a hold
// this manager created: it can neither create a hold nor take one from
// anybody else. And while the API server cannot be reached, nobody can take
// the election Lease: a standby takes over only by writing the Lease through
// the API server. So a replica that led until the outage keeps renewing
// holds for as long as its calls on the Lease keep failing with no answer,
// a time-out or a 5xx — while granting, releasing and status writes stop
// after RenewDeadline, because they can wait. A rejected call (a conflict,
// for instance) shows that the API server is up, and ends this at once.
//
// If only this replica is cut off from an API server that the others still
// reach (a partition), a standby does take over after LeaseDuration, and
// this replica cannot learn it until it reaches the API server again. Its
// renewals meanwhile are still harmless, for the first reason above: they
// extend exactly the holds the new leader now renews too, and when the new
// leader releases a hold (compare-and-delete on the token) the release wins
// and the next renewal fails. The first answer naming the new holder ends
// them (OnDeposed). When in doubt this package keeps holding: liveness may
// suffer, safety may not.
//
// # Pauses and deposition
//
// All answers are computed from the monotonic clock when asked, never
// cached: after a pause of the process (SIGSTOP, a long GC or VM stall)
// longer than RenewDeadline, Leading and MayRenewHolds are false the instant
// the process resumes, and an answer to a call that started before the pause
// is old news that cannot make them true again; only a call started after
// the pause can. A replica that observes another holder of the election
// Lease after holding it is deposed: MayRenewHolds turns false at once and
// OnDeposed runs, so a resumed or reconnected former leader stops touching
// backends before it acts on anything else.
//
// Two faults of client-go's election with such short timings are corrected
// by the lock the Elector hands it. First, a standby restarts its
// LeaseDuration countdown only when the record it reads differs from the
// one before, and client-go compares records with RenewTime in whole
// seconds: a renewal in the same second as the previous one went unseen,
// and a standby could take over up to a second early (measured: 2.73s after
// the last renewal with a 3s LeaseDuration), which is the whole margin
// LeaseDuration − RenewDeadline. The Elector makes every renewal visible
// (RenewTime to the microsecond, as the Lease stores it).
//
// Second, client-go releases the Lease at the end of every term, also after
// a term that ended because the process was paused, and it checks that the
// Lease is its own against what it saw before the pause. Resumed after
// another replica took over, it would clear the new leader's Lease and
// could take it back while the new leader still leads. The Elector refuses
// such a release: it releases only a Lease that named this replica when
// last read.
//
// # Failover bounds
//
// With LeaseDuration L, RenewDeadline D and RetryPeriod R (defaults 3s, 2s,
// 500ms; client-go requires L > D > 1.2·R):
//
//   - A leader that dies without releasing (kill -9, node loss) is replaced
//     at most L + 2·2.2·R after its last successful renewal (5.2s; see
//     Config.FailoverBound), plus API latency: a standby polls every R
//     jittered by up to 1.2·R, i.e. up to 2.2·R apart, so it sees the last
//     renewal up to 2.2·R late, waits L from then and tries again up to
//     2.2·R later. A standby never takes over earlier than L after the last
//     renewal, and the old leader stopped Leading D after it, so leaders
//     never overlap by the clock as long as clock rates differ by less than
//     L/D.
//   - A leader shutting down (its context cancelled) stops Leading at once,
//     keeps the Lease for StepDownDelay = L − D (1s: the same margin a
//     renewal failure leaves for writes in flight; controller-runtime stops
//     this Runnable before the reconcilers), then releases it; a standby
//     leads at most 2.2·R later (Config.HandoverBound: 2.1s from the
//     cancellation).
//   - The shortest lock lease is to be 10s: a hold renewed every ttl/3 has at
//     least 2/3 of its lease, 6.7s, left when its leader dies, which
//     outlives the 5.2s failover if the new leader renews every hold as soon
//     as it leads (OnStartedLeading).
//
// # Wiring
//
// Flags --leader-elect (off: Config.Disabled, for a single replica) and
// --leader-election-namespace (default: InClusterNamespace). Then
//
//	elector, err := leader.New(restConfig, leader.Config{
//		Disabled:  !enableLeaderElection,
//		Namespace: leaderElectionNamespace,
//		Logger:    ctrl.Log.WithName("leader"),
//	})
//	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{LeaderElection: false /* ... */})
//	elector.OnStartedLeading(enqueueEveryLock)
//	elector.OnDeposed(func(holder string) { keeper.DropAll() })
//	err = mgr.Add(elector)
package leader
