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

// Package holder defines the identity under which the controller holds a
// backend lock for a pod. The identity names the cluster, the
// DistributedLock (by namespace, name and UID) and the pod (by name and
// UID), so that a restarted controller can tell its own holds from those of
// another cluster sharing the backend, of another DistributedLock naming the
// same key, or of a program outside Kubernetes, and can find the pod a hold
// belongs to.
package holder

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// Prefixes of the identities. The version lets formats coexist: holds made
// by a controller of an earlier version are still recognised after an
// upgrade.
const (
	prefixV1 = "distlock:v1:"
	prefixV2 = "distlock:v2:"
)

// MaxClusterIDLength bounds --cluster-id, so that identities stay short.
const MaxClusterIDLength = 128

// ErrNotOurs is returned by Parse for identities that this package did not
// make: holds of programs outside distlock.
var ErrNotOurs = errors.New("holder: not a distlock identity")

// Identity is a parsed holder identity.
type Identity struct {
	// Cluster identifies the Kubernetes cluster (by default the UID of its
	// kube-system namespace).
	Cluster string
	// Namespace is the namespace of the DistributedLock and the pod.
	Namespace string
	// Lock and LockUID identify the DistributedLock. They are empty in
	// identities made by distlock v1, which did not name the lock.
	Lock    string
	LockUID types.UID
	// Pod and UID identify the holding pod.
	Pod string
	UID types.UID
}

// String renders the identity as stored in the backend:
// "distlock:v2:<cluster>:<namespace>:<lock>:<lock uid>:<pod>:<pod uid>".
// An identity without a lock renders in the v1 format.
func (id Identity) String() string {
	if id.Lock == "" && id.LockUID == "" {
		return prefixV1 + strings.Join([]string{id.Cluster, id.Namespace, id.Pod, string(id.UID)}, ":")
	}
	return prefixV2 + strings.Join([]string{
		id.Cluster, id.Namespace, id.Lock, string(id.LockUID), id.Pod, string(id.UID),
	}, ":")
}

// Legacy reports whether the identity was made by distlock v1 and so does
// not name its lock.
func (id Identity) Legacy() bool { return id.Lock == "" && id.LockUID == "" }

// Validate checks that every part is present and free of the separator.
func (id Identity) Validate() error {
	parts := map[string]string{
		"cluster": id.Cluster, "namespace": id.Namespace, "pod": id.Pod, "uid": string(id.UID),
	}
	if !id.Legacy() {
		parts["lock"], parts["lock uid"] = id.Lock, string(id.LockUID)
	}
	for name, part := range parts {
		if part == "" {
			return fmt.Errorf("holder: empty %s", name)
		}
		if strings.ContainsAny(part, ": \t\n") {
			return fmt.Errorf("holder: %s %q contains a colon or white space", name, part)
		}
	}
	return nil
}

// ValidateClusterID checks a cluster id (the --cluster-id flag): not empty,
// at most MaxClusterIDLength characters, printable ASCII without colons or
// white space (a colon would make every hold of this cluster look foreign).
func ValidateClusterID(id string) error {
	switch {
	case id == "":
		return errors.New("the cluster id is empty")
	case len(id) > MaxClusterIDLength:
		return fmt.Errorf("the cluster id is %d characters long; at most %d are allowed", len(id), MaxClusterIDLength)
	}
	for _, r := range id {
		if r <= ' ' || r > '~' || r == ':' {
			return fmt.Errorf("the cluster id %q contains %q; use letters, digits and punctuation other than ':'", id, r)
		}
	}
	return nil
}

// Parse reads an identity made by String, in either format. It returns an
// error wrapping ErrNotOurs for anything else.
func Parse(s string) (Identity, error) {
	var id Identity
	switch {
	case strings.HasPrefix(s, prefixV2):
		parts := strings.Split(strings.TrimPrefix(s, prefixV2), ":")
		if len(parts) != 6 {
			return Identity{}, fmt.Errorf("%w: %q has %d parts, want 6", ErrNotOurs, s, len(parts))
		}
		id = Identity{Cluster: parts[0], Namespace: parts[1], Lock: parts[2], LockUID: types.UID(parts[3]),
			Pod: parts[4], UID: types.UID(parts[5])}
		if id.Lock == "" || id.LockUID == "" {
			return Identity{}, fmt.Errorf("%w: %q names no lock", ErrNotOurs, s)
		}
	case strings.HasPrefix(s, prefixV1):
		parts := strings.Split(strings.TrimPrefix(s, prefixV1), ":")
		if len(parts) != 4 {
			return Identity{}, fmt.Errorf("%w: %q has %d parts, want 4", ErrNotOurs, s, len(parts))
		}
		id = Identity{Cluster: parts[0], Namespace: parts[1], Pod: parts[2], UID: types.UID(parts[3])}
	default:
		return Identity{}, fmt.Errorf("%w: %q", ErrNotOurs, s)
	}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrNotOurs, err)
	}
	return id, nil
}
