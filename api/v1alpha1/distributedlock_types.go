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

// Annotations the controller writes on the pod that holds a lock, and the
// annotation an operator sets on a DistributedLock to force-release it.
const (
	// GrantedAnnotation on a pod names the DistributedLock the pod holds.
	GrantedAnnotation = "distlock.io/granted"
	// FencingTokenAnnotation on a pod carries the fencing token of its hold.
	FencingTokenAnnotation = "distlock.io/fencing-token"
	// LostAnnotation on a pod is set when the pod's hold was lost in the
	// backend while the pod still ran; its value says why.
	LostAnnotation = "distlock.io/lost"
	// ForceReleaseAnnotation on a DistributedLock asks the controller to drop
	// the current holder (releasing its backend hold if it is this
	// controller's) and grant the next waiter. The controller removes the
	// annotation when done. Its value is recorded in the Event.
	//
	//   kubectl annotate distributedlock NAME distlock.io/force-release="reason"
	ForceReleaseAnnotation = "distlock.io/force-release"
	// Finalizer keeps a DistributedLock until its backend lock is released.
	Finalizer = "distlock.io/release-backend-lock"
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
	// ReasonKeyNotAllowed: spec.key is set but the manager does not allow custom keys.
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
	// ReasonUnknownHolder: the backend's holder cannot be matched to a pod;
	// the controller fails closed and grants nothing.
	ReasonUnknownHolder = "UnknownHolder"
	// ReasonForceReleased: an operator force-released the lock.
	ReasonForceReleased = "ForceReleased"
	// ReasonMaxHoldExceeded: the holder held the lock longer than
	// spec.maxHoldDuration and was asked to stop (its pod is deleted).
	ReasonMaxHoldExceeded = "MaxHoldExceeded"
	// ReasonLockNotFound: a pod names a DistributedLock that does not exist.
	ReasonLockNotFound = "LockNotFound"
	// ReasonWaiting: a pod waits for the lock.
	ReasonWaiting = "Waiting"
	// ReasonAdopted: after a restart the controller found a hold it made
	// earlier and took it over again.
	ReasonAdopted = "Adopted"
)

// DistributedLockSpec defines which lock a DistributedLock names and where it is held.
// +kubebuilder:validation:XValidation:rule="has(self.key) == has(oldSelf.key) && (!has(self.key) || self.key == oldSelf.key)",message="spec.key is immutable: delete and recreate the DistributedLock to move it to another key"
// +kubebuilder:validation:XValidation:rule="!has(self.key) || !has(self.backend.zookeeper) || (self.key.startsWith('/') && !self.key.endsWith('/') && !self.key.contains('//'))",message="spec.key for a ZooKeeper lock must be an absolute znode path such as /locks/reports: it starts with '/', has no empty segment and does not end with '/'"
// +kubebuilder:validation:XValidation:rule="!has(self.maxHoldDuration) || duration(self.maxHoldDuration) >= duration(self.leaseDuration)",message="spec.maxHoldDuration must be at least spec.leaseDuration"
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
	// cluster administrator's decision). Cannot be changed after creation.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[!-~]+$')",message="spec.key must be printable ASCII without spaces"
	Key string `json:"key,omitempty"`

	// leaseDuration is how long the backend keeps the lock without a renewal.
	// The controller renews the hold every leaseDuration/3 while the holder
	// runs; if the controller stops, the backend frees the lock after at most
	// leaseDuration. Between 5s and 1h; defaults to 30s.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s') && duration(self) <= duration('1h')",message="leaseDuration must be between 5s and 1h"
	LeaseDuration *metav1.Duration `json:"leaseDuration,omitempty"`

	// maxHoldDuration, when set, bounds how long one pod may hold the lock.
	// A holder that exceeds it gets a Warning Event and its pod is deleted;
	// the lock passes on once the pod has stopped, never before.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s')",message="maxHoldDuration must be at least 5s"
	MaxHoldDuration *metav1.Duration `json:"maxHoldDuration,omitempty"`
}

// BackendSpec selects the server that holds a lock.
// +kubebuilder:validation:XValidation:rule="(has(self.redis) ? 1 : 0) + (has(self.zookeeper) ? 1 : 0) == 1",message="exactly one of backend.redis or backend.zookeeper must be set"
type BackendSpec struct {
	// redis holds the lock in a Redis server, with SET NX PX and a fencing
	// counter.
	// +optional
	Redis *RedisBackend `json:"redis,omitempty"`

	// zookeeper holds the lock in a ZooKeeper ensemble, as a sequential node
	// in the layout of Apache Curator's InterProcessMutex.
	// +optional
	ZooKeeper *ZooKeeperBackend `json:"zookeeper,omitempty"`
}

// RedisBackend describes a Redis server, directly or through Sentinel.
// +kubebuilder:validation:XValidation:rule="has(self.address) != has(self.sentinel)",message="set exactly one of redis.address or redis.sentinel"
type RedisBackend struct {
	// address is the host:port of the Redis server, for example
	// "redis.infra.svc:6379".
	// +optional
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:XValidation:rule="self.matches('^([[][0-9a-fA-F:.]+[]]|[A-Za-z0-9.-]+):[0-9]{1,5}$')",message="redis.address must be host:port, for example redis.infra.svc:6379"
	Address string `json:"address,omitempty"`

	// sentinel reaches the Redis master through Redis Sentinel.
	// +optional
	Sentinel *RedisSentinel `json:"sentinel,omitempty"`

	// db is the Redis logical database number. Defaults to 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	DB int32 `json:"db,omitempty"`

	// credentialsSecretRef names a Secret in the lock's namespace with the
	// key "password" and, for a Redis ACL user, "username".
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`

	// tls, when set, connects over TLS.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`
}

// RedisSentinel describes a set of Redis Sentinels.
type RedisSentinel struct {
	// masterName is the name of the master the Sentinels monitor.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	MasterName string `json:"masterName"`

	// addresses lists the host:port of each Sentinel.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=15
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:XValidation:rule="self.all(a, a.matches('^([[][0-9a-fA-F:.]+[]]|[A-Za-z0-9.-]+):[0-9]{1,5}$'))",message="every sentinel address must be host:port, for example sentinel-0.infra.svc:26379"
	// +listType=atomic
	Addresses []string `json:"addresses"`
}

// TLSConfig configures TLS to a backend.
type TLSConfig struct {
	// caSecretRef names a Secret in the lock's namespace whose key "ca.crt"
	// holds the PEM certificates that sign the server's certificate. When
	// unset, the system roots are used.
	// +optional
	CASecretRef *SecretReference `json:"caSecretRef,omitempty"`

	// serverName overrides the name checked against the server's
	// certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`
}

// ZooKeeperBackend describes a ZooKeeper ensemble.
type ZooKeeperBackend struct {
	// servers lists the host:port of every member of the ensemble.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=15
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:XValidation:rule="self.all(s, s.matches('^([[][0-9a-fA-F:.]+[]]|[A-Za-z0-9.-]+):[0-9]{1,5}$'))",message="every zookeeper server must be host:port, for example zk-0.zk.infra.svc:2181"
	// +listType=atomic
	Servers []string `json:"servers"`

	// sessionTimeout is the ZooKeeper session timeout of the controller's
	// connection. Holds do not depend on the session (they are TTL nodes
	// renewed by the controller), so it only bounds how quickly a dead
	// connection is noticed. Between 2s and 60s; defaults to 10s.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('2s') && duration(self) <= duration('60s')",message="sessionTimeout must be between 2s and 60s"
	SessionTimeout *metav1.Duration `json:"sessionTimeout,omitempty"`

	// credentialsSecretRef names a Secret in the lock's namespace with the
	// keys "username" and "password" for ZooKeeper's digest scheme. Lock
	// nodes are then created readable and writable by that identity only.
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`
}

// SecretReference names a Secret in the DistributedLock's namespace.
type SecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
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

	// leaseExpiresAt is a time before which the backend will not let the
	// hold expire. The controller renews the hold every leaseDuration/3 but
	// writes this field only when it falls within leaseDuration/2, so the
	// real expiry is at or after this time while the controller runs.
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

	// holders lists the pods that hold the lock: at most one for a mutex.
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

	// waitingCount is the number of pods waiting for the lock.
	// +optional
	WaitingCount int32 `json:"waitingCount"`

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
// +kubebuilder:printcolumn:name="Holder",type=string,JSONPath=`.status.holders[0].pod`
// +kubebuilder:printcolumn:name="Waiting",type=integer,JSONPath=`.status.waitingCount`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.holders[0].leaseExpiresAt`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Held")].reason`,priority=1
// +kubebuilder:printcolumn:name="Token",type=integer,JSONPath=`.status.holders[0].fencingToken`,priority=1
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.status.key`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// DistributedLock names one lock held in Redis or ZooKeeper. Pods ask for it
// with the label distlock.io/lock=<name>; the controller grants it to one pod
// at a time, oldest pod first, holds it in the backend on that pod's behalf,
// and releases it when the pod finishes or goes away.
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
