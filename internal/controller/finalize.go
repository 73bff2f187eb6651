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
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/keeper"
	"github.com/distlock/distlock/internal/metrics"
)

// finalize lets a deleted DistributedLock go once nothing of ours is held:
// its holder has stopped and its hold was released. What the backend keeps
// besides holds (the Redis fencing counter, an empty ZooKeeper lock node) is
// removed only when no pod that held the lock may still run: a counter
// removed while such a pod runs would let the next lock on the key hand out
// tokens below that pod's.
func (r *DistributedLockReconciler) finalize(ctx context.Context, lc *lockContext) result {
	r.queued.leave(ctx, lc, "")
	r.watches.stop(lc.name)
	if lc.conn != nil && !r.revokedStillRun(lc) && !lc.inBackend.Held {
		callCtx, cancel := r.backendContext(ctx)
		err := lc.conn.Locker().Purge(callCtx, lc.key)
		cancel()
		if err != nil && !errors.Is(err, backend.ErrNotAcquired) {
			return r.backendError(lc, fmt.Errorf("removing what the backend keeps for %q: %w", lc.key, err))
		}
	}
	return r.removeFinalizer(ctx, lc)
}

// revokedStillRun reports whether status lists a pod whose hold was taken
// and that may still run (observe has dropped those that stopped).
func (r *DistributedLockReconciler) revokedStillRun(lc *lockContext) bool {
	return len(lc.lock.Status.Revoked) > 0
}

// finalizeWithoutRelease lets a DistributedLock go whose namespace is being
// deleted while its backend cannot be used (its credentials Secret went with
// the namespace, say): any hold expires by its TTL.
func (r *DistributedLockReconciler) finalizeWithoutRelease(ctx context.Context, lc *lockContext) result {
	err := lc.inspectErr
	if err == nil {
		err = lc.connErr
	}
	for _, st := range r.Keeper.Holds(lc.name) {
		r.Keeper.Drop(keeper.Key{Lock: lc.name, Pod: st.PodUID})
	}
	r.queued.forget(lc.name)
	r.watches.stop(lc.name)
	logf.FromContext(ctx).Info("deleting a DistributedLock of a terminating namespace without releasing its backend lock; "+
		"it expires by its TTL", "error", errMessage(err), "ttl", lc.ttl.String())
	// The API server may refuse this Event (a terminating namespace takes no
	// new objects); the log line above stays.
	r.eventf(lc.lock, nil, corev1.EventTypeWarning, locksv1alpha1.ReasonDeletedWithoutRelease, "Delete",
		"Namespace %s is being deleted and the backend cannot be used (%s); deleting the DistributedLock without "+
			"releasing its backend lock, which expires by its TTL (%s)", lc.lock.Namespace, errMessage(err), lc.ttl)
	return r.removeFinalizer(ctx, lc)
}

func (r *DistributedLockReconciler) removeFinalizer(ctx context.Context, lc *lockContext) result {
	patch := client.MergeFrom(lc.lock.DeepCopy())
	if !controllerutil.RemoveFinalizer(lc.lock, locksv1alpha1.Finalizer) {
		return result{finalized: true}
	}
	if err := r.Patch(ctx, lc.lock, patch); client.IgnoreNotFound(err) != nil {
		return result{err: fmt.Errorf("removing finalizer: %w", err)}
	}
	metrics.ForgetLock(lc.name)
	r.status.forget(lc.name)
	return result{finalized: true}
}

// lockGone handles a request for a DistributedLock that no longer exists:
// pods that name it are told, and anything this replica still keeps for it
// (possible only when its finalizer was removed by hand) is let go.
func (r *DistributedLockReconciler) lockGone(ctx context.Context, name types.NamespacedName) error {
	for _, st := range r.Keeper.Holds(name) {
		logf.FromContext(ctx).Info("the DistributedLock was removed without its finalizer; no longer renewing its hold",
			"pod", st.Pod, "token", st.Lease.Token)
		r.Keeper.Drop(keeper.Key{Lock: name, Pod: st.PodUID})
	}
	r.queued.forget(name)
	r.watches.stop(name)
	r.line.SetOrder(name, false)
	metrics.ForgetLock(name)
	r.status.forget(name)
	return r.reportMissingLock(ctx, name)
}

// reportMissingLock warns the pods that name a DistributedLock that does not
// exist. They wait; creating the lock grants it.
func (r *DistributedLockReconciler) reportMissingLock(ctx context.Context, name types.NamespacedName) error {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(name.Namespace), client.MatchingLabels{locksv1alpha1.LockLabel: name.Name}); err != nil {
		return fmt.Errorf("listing pods that name lock %s: %w", name, err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if podWaits(pod) && r.Recorder != nil {
			r.Recorder.Eventf(pod, nil, corev1.EventTypeWarning, locksv1alpha1.ReasonLockNotFound, "Wait",
				"Pod asks for DistributedLock %q (label %s), which does not exist in namespace %s; it waits until the lock is created",
				name.Name, locksv1alpha1.LockLabel, name.Namespace)
		}
	}
	return nil
}
