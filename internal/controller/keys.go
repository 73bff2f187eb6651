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

package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// checkKey refuses a spec.key that this lock may not use.
func (r *DistributedLockReconciler) checkKey(ctx context.Context, lock *locksv1alpha1.DistributedLock) error {
	if lock.Spec.Key == "" {
		return nil
	}
	if !r.AllowCustomKeys {
		return fmt.Errorf("%w: spec.key %s names a backend key explicitly, which this controller does not allow; "+
			"remove spec.key, or ask the cluster administrator to run the manager with --allow-custom-keys",
			errKeyNotAllowed, capValue(lock.Spec.Key))
	}
	var ns corev1.Namespace
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: lock.Namespace}, &ns); err != nil {
		return fmt.Errorf("reading namespace %s for its allowed key prefixes: %w", lock.Namespace, err)
	}
	extra := splitList(ns.Annotations[locksv1alpha1.AllowedKeyPrefixesAnnotation])
	if why := keyRefusal(lock.Spec.Key, lock.Namespace, extra); why != "" {
		return fmt.Errorf("%w: spec.key %s %s", errKeyNotAllowed, capValue(lock.Spec.Key), why)
	}
	return nil
}

// keyRefusal says why a namespace may not use key, or "" when it may. A
// namespace may use keys under its own prefixes ("<ns>/", "<ns>:",
// "/<ns>/", and its own part of the default space, "distlock/<ns>/" and
// "/distlock/<ns>/") and under the prefixes an administrator lists on the
// Namespace. It may never use another namespace's part of the default
// space, whatever the Namespace lists, so no tenant can take over another's
// default keys.
func keyRefusal(key, namespace string, extra []string) string {
	for _, reserved := range []string{"distlock/", "/distlock/"} {
		if strings.HasPrefix(key, reserved) {
			if strings.HasPrefix(key, reserved+namespace+"/") {
				return ""
			}
			return fmt.Sprintf("is in the space of another namespace's default keys (%s<namespace>/)", reserved)
		}
	}
	allowed := make([]string, 0, 3+len(extra))
	allowed = append(allowed, namespace+"/", namespace+":", "/"+namespace+"/")
	allowed = append(allowed, extra...)
	for _, prefix := range allowed {
		if strings.HasPrefix(key, prefix) {
			return ""
		}
	}
	return fmt.Sprintf("is outside this namespace's key prefixes (%s); a cluster administrator may allow more "+
		"with the Namespace annotation %s", strings.Join(allowed, ", "), locksv1alpha1.AllowedKeyPrefixesAnnotation)
}

// splitList splits a comma-separated annotation value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
