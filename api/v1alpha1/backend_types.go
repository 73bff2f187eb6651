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
)

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

// RedisBackend describes a Redis server: a single server, a master that
// Redis Sentinels monitor, or a Redis Cluster.
// +kubebuilder:validation:XValidation:rule="(has(self.address) ? 1 : 0) + (has(self.sentinel) ? 1 : 0) + (has(self.cluster) ? 1 : 0) == 1",message="set exactly one of redis.address (one server), redis.sentinel (a master found through Sentinels) or redis.cluster (a Redis Cluster)"
// +kubebuilder:validation:XValidation:rule="!has(self.cluster) || !has(self.db) || self.db == 0",message="redis.db must be 0 or unset with redis.cluster: a Redis Cluster has only database 0"
type RedisBackend struct {
	// address is the host:port of the Redis server, for example
	// "redis.infra.svc:6379".
	// +optional
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:XValidation:rule="self.matches('^([[][0-9a-fA-F:.]+[]]|[A-Za-z0-9.-]+):[0-9]{1,5}$')",message="redis.address must be host:port, for example redis.infra.svc:6379"
	Address string `json:"address,omitempty"`

	// sentinel reaches the Redis master through Redis Sentinel. When the
	// Sentinels require a password of their own (requirepass in
	// sentinel.conf), put it in the credentials Secret under
	// "sentinelPassword" (and "sentinelUsername" for a Sentinel ACL user).
	// +optional
	Sentinel *RedisSentinel `json:"sentinel,omitempty"`

	// cluster holds the lock in a Redis Cluster. The lock key and its
	// fencing counter are kept in the same hash slot: the counter of a key
	// without a hash tag is "{<key>}:fencing", of a key with one
	// "<key>:fencing".
	// +optional
	Cluster *RedisCluster `json:"cluster,omitempty"`

	// db is the Redis logical database number. Defaults to 0; must be 0 with
	// cluster (a Redis Cluster has only database 0).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	DB int32 `json:"db,omitempty"`

	// credentialsSecretRef names a Secret in the lock's namespace with the
	// key "password" and, for a Redis ACL user, "username" (on a cluster:
	// the same on every node). With sentinel, the keys "sentinelPassword"
	// and "sentinelUsername" authenticate to the Sentinels themselves, when
	// they require it (requirepass, or an ACL user, in sentinel.conf);
	// "password" may then be left out if the Redis servers require none. The
	// Secret must allow this lock to use it: annotation
	// distlock.io/allowed-locks with the lock's name or "*".
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`

	// tls, when set, connects over TLS (to the Sentinels too, and to every
	// node of a cluster).
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

// RedisCluster describes a Redis Cluster.
type RedisCluster struct {
	// addresses lists the host:port of some nodes of the cluster, for
	// example "redis-cluster-0.infra.svc:6379": the controller learns the
	// rest of the cluster, and follows failovers and resharding, from them.
	// List more than one, so that one node down does not keep the
	// controller from connecting.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=15
	// +kubebuilder:validation:items:MaxLength=261
	// +kubebuilder:validation:XValidation:rule="self.all(a, a.matches('^([[][0-9a-fA-F:.]+[]]|[A-Za-z0-9.-]+):[0-9]{1,5}$'))",message="every cluster address must be host:port, for example redis-cluster-0.infra.svc:6379"
	// +listType=atomic
	Addresses []string `json:"addresses"`
}

// TLSConfig configures TLS to a backend.
type TLSConfig struct {
	// caSecretRef names a Secret in the lock's namespace whose key "ca.crt"
	// holds the PEM certificates that sign the server's certificate. When
	// unset, the system roots are used. Like a credentials Secret, it must
	// carry the annotation distlock.io/allowed-locks.
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
	// The Secret must allow this lock to use it: annotation
	// distlock.io/allowed-locks with the lock's name or "*".
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`

	// nodeNames is how the controller names its nodes under the lock path,
	// to match the outside programs that share the path: "Curator" (the
	// default: "_c_<uuid>-lock-<seq>", as Apache Curator's InterProcessMutex
	// and go-zookeeper's zk.Lock) or "Kazoo" ("<hex>__lock__<seq>", as
	// Python's kazoo Lock). The controller recognises both, and the nodes of
	// Curator's and kazoo's read-write locks, whatever this says; outside
	// programs recognise only their own by default.
	// +optional
	// +kubebuilder:default=Curator
	// +kubebuilder:validation:Enum=Curator;Kazoo
	NodeNames string `json:"nodeNames,omitempty"`
}

// SecretReference names a Secret in the DistributedLock's namespace.
type SecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be the name of a Secret in the lock's own namespace: lowercase letters, digits, '-' and '.' (no '/': a lock cannot name another namespace's Secret)"
	Name string `json:"name"`
}
