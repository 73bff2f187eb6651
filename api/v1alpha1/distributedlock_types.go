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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// LockLabel is the label a pod carries to ask for a lock: its value is the
// name of a DistributedLock in the pod's namespace. Only pods with this label
// are watched by the controller.
const LockLabel = "distlock.io/lock"

// WaiterLockEnv is the environment variable in which the waiter init
// container is told the lock to wait for. The controller recognises a pod's
// waiter by it, and grants the lock only once the waiter runs.
const WaiterLockEnv = "DISTLOCK_LOCK"

// Annotations the controller writes on the pod that holds a lock, and the
// annotations an operator sets on a DistributedLock to take a hold away.
const (
	// GrantedAnnotation on a pod names the DistributedLock the pod holds. It
	// is removed when the hold is released while the pod still exists. A pod
	// holds at most one lock at a time.
	GrantedAnnotation = "distlock.io/granted"
	// FencingTokenAnnotation on a pod carries the fencing token of its hold.
	FencingTokenAnnotation = "distlock.io/fencing-token"
	// LostAnnotation on a pod is set when the pod's hold was lost in the
	// backend, or taken from it by an operator, while the pod still ran; its
	// value says why. Such a pod is never granted a lock again.
	LostAnnotation = "distlock.io/lost"
	// ForceReleaseAnnotation on a DistributedLock asks the controller to end
	// the current hold safely: the holder pod is deleted, and the lock passes
	// on (with a higher fencing token) only once the pod has stopped. The
	// controller removes the annotation once the lock has passed on. Its
	// value is recorded in the Events.
	//
	//   kubectl annotate distributedlock NAME distlock.io/force-release="reason"
	ForceReleaseAnnotation = "distlock.io/force-release"
	// BreakAnnotation on a DistributedLock breaks the current hold at once:
	// the backend hold is released and the next pod is granted the lock while
	// the old holder may still run. Use it only when the old holder is known
	// to be stopped, or an overlap is acceptable. The old holder pod is
	// annotated distlock.io/lost, gets a Warning Event, and its waiter exits
	// with code 4 if it is still waiting. It also lets a DistributedLock that
	// is being deleted go without waiting for its holder. The controller
	// removes the annotation when done.
	//
	//   kubectl annotate distributedlock NAME distlock.io/break="reason"
	BreakAnnotation = "distlock.io/break"
	// Finalizer keeps a DistributedLock until its holder pod has stopped and
	// its backend lock is released, the way kubernetes.io/pvc-protection
	// keeps a claim until no pod uses it.
	Finalizer = "distlock.io/release-backend-lock"
)

// Opt-in annotations that cluster and namespace administrators set on
// objects the controller reads.
const (
	// AllowedLocksAnnotation on a Secret lists the DistributedLocks of the
	// Secret's namespace that may send its credentials to their backend:
	// comma-separated lock names, or "*" for every lock of the namespace.
	// The controller never reads credentials from a Secret without it, so a
	// user who may create DistributedLocks but not read Secrets cannot make
	// the controller send a Secret to a server of their choosing.
	AllowedLocksAnnotation = "distlock.io/allowed-locks"
	// AllowedKeyPrefixesAnnotation on a Namespace lists, comma-separated,
	// the backend key prefixes that its DistributedLocks may name in
	// spec.key (when the manager runs with --allow-custom-keys), on top of
	// the namespace's own prefixes "<namespace>/", "<namespace>:" and
	// "/<namespace>/". Only those who may edit Namespaces (administrators)
	// can set it.
	AllowedKeyPrefixesAnnotation = "distlock.io/allowed-key-prefixes"
)

// Condition types of a DistributedLock.
const (
	// ConditionReady is True when the lock is usable: its spec is valid, its
	// backend answers and the controller knows who holds it.
	ConditionReady = "Ready"
	// ConditionBackendReachable is True when the last call to the backend
	// succeeded.
	ConditionBackendReachable = "BackendReachable"
	// ConditionHeld is True when a pod holds the lock.
	ConditionHeld = "Held"
)

// Condition reasons of a DistributedLock. Each is also the reason of the
// Event emitted when it first applies.
const (
	// ReasonConnected: the backend answered.
	ReasonConnected = "Connected"
	// ReasonUnreachable: the backend did not answer; nothing is granted until it does.
	ReasonUnreachable = "BackendUnreachable"
	// ReasonUnauthorized: the backend refused the credentials.
	ReasonUnauthorized = "BackendUnauthorized"
	// ReasonCredentialsInvalid: the Secret with the credentials is missing or incomplete.
	ReasonCredentialsInvalid = "CredentialsInvalid"
	// ReasonCredentialsNotAllowed: the Secret does not allow this lock to use
	// it (annotation distlock.io/allowed-locks).
	ReasonCredentialsNotAllowed = "CredentialsNotAllowed"
	// ReasonBackendNotAllowed: the backend address is outside the addresses
	// the manager may connect to (--allowed-backend-addresses).
	ReasonBackendNotAllowed = "BackendNotAllowed"
	// ReasonKeyNotAllowed: spec.key is set but the manager does not allow
	// custom keys, or not this one in this namespace.
	ReasonKeyNotAllowed = "KeyNotAllowed"
	// ReasonGranted: a pod holds the lock.
	ReasonGranted = "Granted"
	// ReasonReleased: the holder finished or went away and the lock was released.
	ReasonReleased = "Released"
	// ReasonFree: nobody holds the lock.
	ReasonFree = "Free"
	// ReasonHeldElsewhere: a holder outside this controller (another cluster,
	// or a program outside Kubernetes) holds the lock.
	ReasonHeldElsewhere = "HeldElsewhere"
	// ReasonLost: the backend no longer records the holder's hold while the
	// holder still runs. Nothing is granted until the holder ends or an
	// operator force-releases the lock.
	ReasonLost = "Lost"
	// ReasonRenewalFailing: the controller could not renew the hold for
	// longer than it is sure to last, so it cannot tell whether the backend
	// still has it. It keeps the holder and keeps trying; nothing is granted
	// meanwhile.
	ReasonRenewalFailing = "RenewalFailing"
	// ReasonUnknownHolder: the backend's holder cannot be matched to a pod;
	// the controller fails closed and grants nothing.
	ReasonUnknownHolder = "UnknownHolder"
	// ReasonForceReleaseRequested: an operator asked for the hold to end;
	// the holder pod is being deleted and the lock passes on once it has
	// stopped.
	ReasonForceReleaseRequested = "ForceReleaseRequested"
	// ReasonForceReleased: the lock passed on after a force-release.
	ReasonForceReleased = "ForceReleased"
	// ReasonBroken: an operator broke the hold at once (distlock.io/break);
	// the old holder may still run.
	ReasonBroken = "Broken"
	// ReasonMaxHoldExceeded: the holder held the lock longer than
	// spec.maxHoldDuration and was asked to stop (its pod is deleted).
	ReasonMaxHoldExceeded = "MaxHoldExceeded"
	// ReasonDeletionWaitsForHolder: the DistributedLock is being deleted and
	// waits until its holder pod has stopped before it releases the lock.
	ReasonDeletionWaitsForHolder = "DeletionWaitsForHolder"
	// ReasonDeletedWithoutRelease: the DistributedLock was deleted without
	// releasing its backend lock (its namespace is being deleted and the
	// backend could not be used); the hold expires by its TTL.
	ReasonDeletedWithoutRelease = "DeletedWithoutRelease"
	// ReasonFencingRegressed: the backend would have handed out a fencing
	// token at or below status.lastFencingToken (its data was wiped), so the
	// lock is not granted. See docs/design.md for what to do.
	ReasonFencingRegressed = "FencingRegressed"
	// ReasonLockNotFound: a pod names a DistributedLock that does not exist.
	ReasonLockNotFound = "LockNotFound"
	// ReasonWaiting: a pod waits for the lock.
	ReasonWaiting = "Waiting"
	// ReasonHoldsAnotherLock: a pod that holds one lock asks for another; a
	// pod holds one lock at a time, so it is not granted the second.
	ReasonHoldsAnotherLock = "HoldsAnotherLock"
	// ReasonAdopted: after a restart the controller found a hold it made
	// earlier and took it over again.
	ReasonAdopted = "Adopted"
)

// MinLeaseDuration is the shortest spec.leaseDuration: long enough that a
// hold outlives a failover of the manager (a standby takes over within about
// 4.2s of the leader's last renewal, and a hold has at least two thirds of
// its lease left at that time).
const MinLeaseDuration = "10s"

// DistributedLockSpec defines which lock a DistributedLock names and where it is held.
// +kubebuilder:validation:XValidation:rule="has(self.key) == has(oldSelf.key) && (!has(self.key) || self.key == oldSelf.key)",message="spec.key is immutable: delete and recreate the DistributedLock to move it to another key"
// +kubebuilder:validation:XValidation:rule="!has(self.key) || !has(self.backend.zookeeper) || (self.key.startsWith('/') && !self.key.endsWith('/') && !self.key.contains('//'))",message="spec.key for a ZooKeeper lock must be an absolute znode path such as /locks/reports: it starts with '/', has no empty segment and does not end with '/'"
// +kubebuilder:validation:XValidation:rule="!has(self.key) || !has(self.backend.zookeeper) || !self.key.matches('/[.][.]?(/|$)')",message="spec.key for a ZooKeeper lock must not have a '.' or '..' segment: ZooKeeper paths are not resolved, so /a/../b is refused by the server"
// +kubebuilder:validation:XValidation:rule="!has(self.maxHoldDuration) || duration(self.maxHoldDuration) >= duration(self.leaseDuration)",message="spec.maxHoldDuration must be at least spec.leaseDuration"
// +kubebuilder:validation:XValidation:rule="!has(self.key) || !has(self.backend.redis) || !has(self.backend.redis.cluster) || !self.key.contains('}') || self.key.matches('^[^{]*[{][^}]+[}]')",message="spec.key for a Redis Cluster lock contains '}' but no hash tag, so its fencing counter cannot be put in the key's hash slot: give the key a hash tag, a non-empty {...} before any other '}', such as locks:{reports}:nightly"
type DistributedLockSpec struct {
	// backend selects the server that holds the lock. Exactly one of
	// backend.redis or backend.zookeeper must be set.
	// +required
	Backend BackendSpec `json:"backend"`

	// key is the Redis key or ZooKeeper znode path that holds the lock in the
	// backend. Leave it empty: the controller then uses
	// "distlock/<namespace>/<name>" (Redis) or "/distlock/<namespace>/<name>"
	// (ZooKeeper), so locks in different namespaces never collide. Naming a
	// key explicitly, to share a lock with programs outside the cluster, is
	// allowed only when the manager runs with --allow-custom-keys (a
	// cluster administrator's decision), and only under the namespace's own
	// prefixes ("<namespace>/", "<namespace>:", "/<namespace>/") or those an
	// administrator lists in the Namespace's distlock.io/allowed-key-prefixes
	// annotation. On a Redis Cluster, a key that contains '}' must have a
	// hash tag (a non-empty {...} before any other '}'), so that its fencing
	// counter can share its hash slot. Cannot be changed after creation.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[!-~]+$')",message="spec.key must be printable ASCII without spaces"
	Key string `json:"key,omitempty"`

	// leaseDuration is how long the backend keeps the lock without a renewal.
	// The controller renews the hold every leaseDuration/3 while the holder
	// runs, on its own timers (not waiting for the API server); if the
	// controller stops, the backend frees the lock after at most
	// leaseDuration. Between 10s and 1h; defaults to 30s.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('1h')",message="leaseDuration must be between 10s and 1h"
	LeaseDuration *metav1.Duration `json:"leaseDuration,omitempty"`

	// maxHoldDuration, when set, bounds how long one pod may hold the lock.
	// A holder that exceeds it gets a Warning Event and its pod is deleted;
	// the lock passes on once the pod has stopped, never before.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s')",message="maxHoldDuration must be at least 5s"
	MaxHoldDuration *metav1.Duration `json:"maxHoldDuration,omitempty"`

	// maxHolders is how many pods may hold the lock at once: 1 (the
	// default) makes it a mutex; 2 or more a semaphore, where each holder
	// gets its own fencing token. It may be changed while the lock is held:
	// raising it grants waiting pods at once; lowering it never ends a
	// running hold, new grants wait until fewer than maxHolders pods hold
	// the lock. A mutex and a semaphore use different recipes in the
	// backend (docs/design.md, "Semaphores"); after a change between 1 and
	// more, pods are granted with the new recipe once every hold taken with
	// the old one has ended. Between 1 and 64.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	MaxHolders int32 `json:"maxHolders,omitempty"`

	// queueOrder is the order in which waiting pods are granted the lock.
	// FIFO (the default): oldest pod first, by creation time. Priority: the
	// pod with the highest spec.priority (set from its PriorityClass) first,
	// and among pods of equal priority the oldest first, so that none of
	// them starves. Either way a pod that cannot be granted yet (its waiter
	// has not started) never holds up the pods behind it.
	// +optional
	// +kubebuilder:default=FIFO
	QueueOrder QueueOrder `json:"queueOrder,omitempty"`
}

// QueueOrder is the order in which waiting pods are granted a lock.
// +kubebuilder:validation:Enum=FIFO;Priority
type QueueOrder string

// Queue orders.
const (
	// QueueFIFO grants the oldest pod first.
	QueueFIFO QueueOrder = "FIFO"
	// QueuePriority grants the pod with the highest priority first, the
	// oldest among equals.
	QueuePriority QueueOrder = "Priority"
)

// Holders is spec.maxHolders, 1 when unset.
func (s *DistributedLockSpec) Holders() int {
	if s.MaxHolders < 1 {
		return 1
	}
	return int(s.MaxHolders)
}

// LockHolder is a pod that holds the lock.
type LockHolder struct {
	// pod is the name of the holding pod.
	// +required
	Pod string `json:"pod"`

	// podUID is the UID of the holding pod.
	// +required
	PodUID types.UID `json:"podUID"`

	// identity is the holder identity stored in the backend: unique to this
	// cluster and pod.
	// +required
	Identity string `json:"identity"`

	// acquiredAt is when the backend lock was taken for this pod.
	// +required
	AcquiredAt metav1.Time `json:"acquiredAt"`

	// leaseExpiresAt is set only while the controller cannot renew the hold
	// (condition Held=Unknown, reason RenewalFailing): the backend keeps the
	// hold at least until then, and may drop it after. While renewals
	// succeed it is empty: the hold is renewed every leaseDuration/3, on the
	// controller's own timers, for as long as its pod runs, and no status is
	// written per renewal.
	// +optional
	LeaseExpiresAt *metav1.Time `json:"leaseExpiresAt,omitempty"`

	// leaseDuration is the lease this hold was taken with. A change of
	// spec.leaseDuration applies from the next hold on (a ZooKeeper lock
	// node's TTL is fixed when it is created).
	// +optional
	LeaseDuration *metav1.Duration `json:"leaseDuration,omitempty"`

	// fencingToken increases with every hold of this lock. Pass it to the
	// resource the lock protects so that it can refuse a stale holder.
	// +required
	FencingToken int64 `json:"fencingToken"`

	// lost is set when the backend no longer records this hold while the pod
	// still runs. The lock is not granted to anyone else until the pod ends
	// or an operator force-releases the lock.
	// +optional
	Lost bool `json:"lost,omitempty"`
}

// WaitingPod is a pod that waits for the lock.
type WaitingPod struct {
	// pod is the name of the waiting pod.
	// +required
	Pod string `json:"pod"`

	// podUID is the UID of the waiting pod.
	// +required
	PodUID types.UID `json:"podUID"`
}

// RevokedPod is a pod whose hold was taken from it while it may still run.
type RevokedPod struct {
	// pod is the name of the pod.
	// +required
	Pod string `json:"pod"`

	// podUID is the UID of the pod.
	// +required
	PodUID types.UID `json:"podUID"`

	// fencingToken is the token of the hold that was taken.
	// +optional
	FencingToken int64 `json:"fencingToken,omitempty"`

	// reason says why the hold was taken: Lost or Broken.
	// +required
	Reason string `json:"reason"`
}

// MaxRevokedListed bounds status.revoked.
const MaxRevokedListed = 16

// MaxWaitingListed bounds status.waiting; status.waitingCount has the total.
const MaxWaitingListed = 10

// DistributedLockStatus is the observed state of a DistributedLock.
type DistributedLockStatus struct {
	// observedGeneration is the metadata.generation that the status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// backend is the kind of backend, "redis" or "zookeeper".
	// +optional
	Backend string `json:"backend,omitempty"`

	// key is the Redis key or znode path in use.
	// +optional
	Key string `json:"key,omitempty"`

	// holders lists the pods that hold the lock, oldest hold first: at most
	// one for a mutex, at most spec.maxHolders for a semaphore (more only
	// right after maxHolders was lowered: running holds are never ended).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Holders []LockHolder `json:"holders,omitempty"`

	// waiting lists the first pods that wait for the lock, in the order they
	// will be granted it (oldest pod first).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Waiting []WaitingPod `json:"waiting,omitempty"`

	// holding shows how many pods hold the lock out of how many may, as
	// "2/3" (kubectl get's Holders column).
	// +optional
	Holding string `json:"holding,omitempty"`

	// waitingCount is the number of pods waiting for the lock.
	// +optional
	WaitingCount int32 `json:"waitingCount"`

	// lastFencingToken is the highest fencing token handed out for this
	// lock. A new hold always gets a higher one, even after the backend lost
	// its counter (a Redis restart without persistence): the controller
	// raises the backend's counter above it, or refuses to grant.
	// +optional
	LastFencingToken int64 `json:"lastFencingToken,omitempty"`

	// revoked lists pods whose hold was taken from them (lost in the
	// backend, or broken by an operator) while they may still run, newest
	// last. Their waiters exit with code 4 instead of waiting forever; they
	// are never granted the lock again. A pod leaves the list once it has
	// stopped.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Revoked []RevokedPod `json:"revoked,omitempty"`

	// conditions describe the lock's state: Ready, BackendReachable and
	// Held, each with a reason a person can act on.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dlock;dlocks,categories=distlock
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.status.backend`
// +kubebuilder:printcolumn:name="Holders",type=string,JSONPath=`.status.holding`
// +kubebuilder:printcolumn:name="Holder",type=string,JSONPath=`.status.holders[0].pod`
// +kubebuilder:printcolumn:name="Waiting",type=integer,JSONPath=`.status.waitingCount`
// +kubebuilder:printcolumn:name="Since",type=date,JSONPath=`.status.holders[0].acquiredAt`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Held")].reason`,priority=1
// +kubebuilder:printcolumn:name="Token",type=integer,JSONPath=`.status.holders[0].fencingToken`,priority=1
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.key`,priority=1
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.holders[0].leaseExpiresAt`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: pods name the lock in the label distlock.io/lock, whose values are limited to 63"

// DistributedLock names one lock held in Redis or ZooKeeper. Pods ask for it
// with the label distlock.io/lock=<name>; the controller grants it to one pod
// at a time (spec.maxHolders at a time: a semaphore), in the order of
// spec.queueOrder, holds it in the backend on each holder's behalf, and
// releases it when the holder finishes or goes away.
type DistributedLock struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec names the lock and its backend.
	// +required
	Spec DistributedLockSpec `json:"spec"`

	// status reports the lock's holder, waiters and health.
	// +optional
	Status DistributedLockStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// DistributedLockList contains a list of DistributedLock.
type DistributedLockList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DistributedLock `json:"items"`
}
