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
// backend lock for a pod. The identity names the cluster and the pod (by
// namespace, name and UID), so that a restarted controller can tell its own
// holds from those of another cluster sharing the backend or of a program
// outside Kubernetes, and can find the pod a hold belongs to.
package holder

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// prefix starts every identity this package makes. The version lets a later
// format coexist with holds made by an older controller.
const prefix = "distlock:v1:"

// ErrNotOurs is returned by Parse for identities that this package did not
// make: holds of programs outside distlock.
var ErrNotOurs = errors.New("holder: not a distlock identity")

// Identity is a parsed holder identity.
type Identity struct {
	// Cluster identifies the Kubernetes cluster (by default the UID of its
	// kube-system namespace).
	Cluster string
	// Namespace, Pod and UID identify the holding pod.
	Namespace string
	Pod       string
	UID       types.UID
}

// String renders the identity as stored in the backend:
// "distlock:v1:<cluster>:<namespace>:<pod>:<uid>".
func (id Identity) String() string {
	return prefix + strings.Join([]string{id.Cluster, id.Namespace, id.Pod, string(id.UID)}, ":")
}

// Validate checks that every part is present and free of the separator.
func (id Identity) Validate() error {
	for name, part := range map[string]string{
		"cluster": id.Cluster, "namespace": id.Namespace, "pod": id.Pod, "uid": string(id.UID),
	} {
		if part == "" {
			return fmt.Errorf("holder: empty %s", name)
		}
		if strings.ContainsAny(part, ": \t\n") {
			return fmt.Errorf("holder: %s %q contains a colon or white space", name, part)
		}
	}
	return nil
}

// Parse reads an identity made by String. It returns an error wrapping
// ErrNotOurs for anything else.
func Parse(s string) (Identity, error) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return Identity{}, fmt.Errorf("%w: %q", ErrNotOurs, s)
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 4 {
		return Identity{}, fmt.Errorf("%w: %q has %d parts, want 4", ErrNotOurs, s, len(parts))
	}
	id := Identity{Cluster: parts[0], Namespace: parts[1], Pod: parts[2], UID: types.UID(parts[3])}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrNotOurs, err)
	}
	return id, nil
}
