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
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backendpool"
	"github.com/distlock/distlock/internal/holder"
	"github.com/distlock/distlock/internal/keeper"
	"github.com/distlock/distlock/internal/podqueue"
)

// lockContext is what one reconcile learns about a lock and carries from
// observing to applying. Its lock is the object whose status is written.
type lockContext struct {
	lock *locksv1alpha1.DistributedLock
	orig *locksv1alpha1.DistributedLock
	name types.NamespacedName
	key  string
	ttl  time.Duration

	// conn is the backend connection for new calls, or nil with connErr.
	conn    *backendpool.Ref
	connErr error
	// fingerprint identifies conn's configuration in the pool.
	fingerprint string

	// line knows the pods that carry a lock's label and the line of those
	// that wait, kept from pod events. Its pods are the cache's own: never
	// modify them.
	line *podqueue.Index
	// namespaceTerminating is set when the lock's namespace is being deleted.
	namespaceTerminating bool
	// limit is spec.maxHolders.
	limit int
	// focus is the pod UID of the recorded holder in focus ("" for none,
	// see holders.go).
	focus types.UID
	// grantedNow counts the grants of this reconcile.
	grantedNow int
	// semaphoreInBackend: the backend's holds, as last inspected, are a
	// semaphore's.
	semaphoreInBackend bool
	// foreign counts the holds of others (outside programs, other clusters)
	// the backend showed when last inspected.
	foreign int
	// unsure and unsureReason: holders whose holds cannot be confirmed, and
	// why (see summarizeHolders).
	unsure       []string
	unsureReason string

	// Filled by observe for apply.
	kept        keeper.Status // the keeper's hold, when keptOK
	keptOK      bool
	renewed     *backend.Lease // a renewal observe made itself (no keeper hold)
	renewedAt   time.Time
	holdErr     error         // why the recorded hold is not confirmed
	inBackend   backend.State // the backend's holder when nobody is recorded
	inspectErr  error
	ours        *holder.Identity // the backend's holder, when it is ours
	holderPod   *corev1.Pod      // the recorded (or backend's own) holder pod
	holderPodOK podState

	// Set by apply for finish.
	forceHandled, breakHandled bool
	// notReady: this reconcile set Ready=False.
	notReady bool
	// requestsConfirmed: the annotations were read from the API server.
	requestsConfirmed bool
	// stale: this replica stopped leading during the reconcile; nothing is
	// written.
	stale bool
}

func (lc *lockContext) close() {
	if lc.conn != nil {
		lc.conn.Close()
	}
}

func (r *DistributedLockReconciler) newLockContext(ctx context.Context, lock *locksv1alpha1.DistributedLock) *lockContext {
	// Status is this controller's own: its last write is newer than a cache
	// that has not caught up with it (the highest fencing token, the revoked
	// pods), so the reconcile starts from that.
	lock.Status, _ = r.status.base(lock, lock.Status)
	lock.Status = *lock.Status.DeepCopy()
	lc := &lockContext{
		lock:  lock,
		orig:  lock.DeepCopy(),
		name:  types.NamespacedName{Namespace: lock.Namespace, Name: lock.Name},
		key:   lockKey(lock),
		ttl:   leaseDuration(lock),
		line:  r.line,
		limit: lock.Spec.Holders(),
	}
	lc.line.SetOrder(lc.name, lock.Spec.QueueOrder == locksv1alpha1.QueuePriority)
	lock.Status.Backend = lock.Spec.Backend.Name()
	lock.Status.Key = lc.key
	lc.conn, lc.fingerprint, lc.connErr = r.connect(ctx, lock)
	if !lock.DeletionTimestamp.IsZero() {
		lc.namespaceTerminating = r.namespaceTerminating(ctx, lock.Namespace)
	}
	return lc
}

// observe gathers what decide needs. It asks the backend only what the
// keeper does not already know. It may renew a recorded hold that the keeper
// does not keep (after a restart or a failover): a renewal is a
// compare-and-extend of that exact hold, safe to repeat, and confirms it in
// one round trip.
func (r *DistributedLockReconciler) observe(ctx context.Context, lc *lockContext) observation {
	lock := lc.lock
	o := observation{
		deleting:             !lock.DeletionTimestamp.IsZero(),
		namespaceTerminating: lc.namespaceTerminating,
	}
	o.breakRequested, o.forceRequested = r.operatorRequests(ctx, lc)
	lc.focusOn(r.Keeper, lc.focus)
	lc.renewed, lc.holdErr, lc.inBackend, lc.inspectErr, lc.ours = nil, nil, backend.State{}, nil, nil

	if rec := lc.recorded(); rec != nil {
		o.recorded = true
		o.recordedLost = rec.Lost
		lc.holderPod, lc.holderPodOK = r.lookupPod(ctx, lc, rec.Pod, rec.PodUID)
		o.holderPod = lc.holderPodOK
		o.holderPodDeleting = lc.holderPod != nil && !lc.holderPod.DeletionTimestamp.IsZero()
		if !rec.Lost {
			o.hold = r.observeHold(ctx, lc, rec)
		}
		if max := lock.Spec.MaxHoldDuration; max != nil {
			o.maxHoldExceeded = !r.now().Before(rec.AcquiredAt.Add(max.Duration))
		}
	} else {
		o.inBackend = r.observeBackend(ctx, lc)
		if o.inBackend == backendOurs {
			lc.holderPod, lc.holderPodOK = r.lookupPod(ctx, lc, lc.ours.Pod, lc.ours.UID)
			o.backendPod = lc.holderPodOK
		}
	}
	if !o.recorded {
		o.waiterReady = r.nextInLine(lc) != nil
	}
	return o
}

// operatorRequests reports whether a break or a force-release is asked for.
// These annotations are one-shot requests that the controller removes once
// acted on; a cached copy may still show one that was just handled, and
// acting on it again would take the lock from the next holder. So a request
// seen in the cache is confirmed with a read from the API server.
func (r *DistributedLockReconciler) operatorRequests(ctx context.Context, lc *lockContext) (breakNow, force bool) {
	ann := lc.lock.Annotations
	if ann[locksv1alpha1.BreakAnnotation] == "" && ann[locksv1alpha1.ForceReleaseAnnotation] == "" {
		return false, false
	}
	if !lc.requestsConfirmed {
		var fresh locksv1alpha1.DistributedLock
		if err := r.APIReader.Get(ctx, lc.name, &fresh); err != nil {
			return false, false // look again later; no request is acted on unconfirmed
		}
		lc.lock.Annotations = fresh.Annotations
		lc.requestsConfirmed = true
	}
	return lc.lock.Annotations[locksv1alpha1.BreakAnnotation] != "", lc.lock.Annotations[locksv1alpha1.ForceReleaseAnnotation] != ""
}

// recordFromKeeper makes status record the holds the keeper keeps, when a
// status write was lost (the keeper is the memory of what this replica
// granted).
func (r *DistributedLockReconciler) recordFromKeeper(lc *lockContext) {
	recorded := map[types.UID]int64{}
	for _, h := range lc.lock.Status.Holders {
		recorded[h.PodUID] = h.FencingToken
	}
	for _, kept := range r.Keeper.Holds(lc.name) {
		if token, ok := recorded[kept.PodUID]; ok && token == kept.Lease.Token {
			continue
		}
		lc.record(holderRecord(kept))
	}
	lc.focus = ""
}

// observeHold finds out whether the recorded hold is still in the backend.
func (r *DistributedLockReconciler) observeHold(ctx context.Context, lc *lockContext, rec *locksv1alpha1.LockHolder) holdKnown {
	if lc.keptOK && lc.kept.Lease.Token == rec.FencingToken {
		switch lc.kept.Phase {
		case keeper.Renewing:
			return holdConfirmed
		case keeper.Lost:
			lc.holdErr = lc.kept.Err
			return holdGone
		default:
			lc.holdErr = lc.kept.Err
			return holdUncertain
		}
	}
	if lc.conn == nil {
		lc.holdErr = lc.connErr
		return holdUncertain
	}
	lease := backend.Lease{Key: lc.key, Holder: rec.Identity, Token: rec.FencingToken}
	ctx, cancel := r.backendContext(ctx)
	defer cancel()
	start := time.Now()
	renewed, err := lc.conn.Locker().Renew(ctx, lease, holdTTL(rec, lc.ttl))
	switch {
	case err == nil:
		lc.renewed, lc.renewedAt = &renewed, start
		return holdConfirmed
	case errors.Is(err, backend.ErrNotHeld):
		lc.holdErr = err
		lc.inBackend, lc.inspectErr = lc.conn.Locker().Inspect(ctx, lc.key)
		return holdGone
	default:
		lc.holdErr = err
		return holdUncertain
	}
}

// observeBackend asks the backend who holds an unrecorded lock.
func (r *DistributedLockReconciler) observeBackend(ctx context.Context, lc *lockContext) backendSays {
	if lc.conn == nil {
		lc.inspectErr = lc.connErr
		return backendUnavailable
	}
	ctx, cancel := r.backendContext(ctx)
	defer cancel()
	state, err := lc.conn.Locker().Inspect(ctx, lc.key)
	if err != nil {
		lc.inspectErr = fmt.Errorf("inspecting %q: %w", lc.key, err)
		return backendUnavailable
	}
	lc.inBackend, lc.semaphoreInBackend, lc.foreign = state, state.Holds != nil, 0
	recorded := map[string]bool{}
	for _, h := range lc.lock.Status.Holders {
		recorded[h.Identity] = true
	}
	var foreign []backend.Hold
	for _, h := range holdsOf(state) {
		switch st := stateOfHold(h); {
		case recorded[h.Holder]:
		case r.ownIdentity(lc.lock, st) != nil:
			lc.inBackend, lc.ours = st, r.ownIdentity(lc.lock, st)
			return backendOurs
		default:
			foreign = append(foreign, h)
		}
	}
	lc.foreign = len(foreign)
	if len(foreign) > 0 {
		lc.inBackend = stateOfHold(foreign[0])
	}
	if lc.foreign > 0 && lc.takenWithOthers() {
		return backendForeign
	}
	return backendFree
}

// ownIdentity returns the identity of the backend's holder when it is a pod
// of this cluster holding this DistributedLock, nil otherwise (another
// cluster, another lock on the same key, a program outside Kubernetes).
// Holds made by distlock v1 name no lock: they are this lock's when cluster
// and namespace match.
func (r *DistributedLockReconciler) ownIdentity(lock *locksv1alpha1.DistributedLock, state backend.State) *holder.Identity {
	if !state.Held {
		return nil
	}
	id, err := holder.Parse(state.Holder)
	if err != nil || id.Cluster != r.ClusterID || id.Namespace != lock.Namespace {
		return nil
	}
	if !id.Legacy() && (id.Lock != lock.Name || id.LockUID != lock.UID) {
		return nil
	}
	return &id
}

func (r *DistributedLockReconciler) identity(lock *locksv1alpha1.DistributedLock, pod *corev1.Pod) holder.Identity {
	return holder.Identity{Cluster: r.ClusterID, Namespace: pod.Namespace, Lock: lock.Name, LockUID: lock.UID,
		Pod: pod.Name, UID: pod.UID}
}

// lookupPod finds the pod with the given name and UID: in the cache of pods
// that ask for the lock, or else straight from the API server (a holder
// whose label was removed still holds the lock until it ends).
func (r *DistributedLockReconciler) lookupPod(ctx context.Context, lc *lockContext, name string, uid types.UID) (*corev1.Pod, podState) {
	if pod, ok := lc.line.Pod(lc.name, uid); ok {
		return pod, stateOf(pod)
	}
	// Not in the cache: deleted, or its label removed (the cache holds only
	// labelled pods, and a filtered watch reports both as a deletion of the
	// labelled pod), so only the API server can tell.
	var pod corev1.Pod
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: lc.lock.Namespace, Name: name}, &pod)
	switch {
	case apierrors.IsNotFound(err):
		return nil, podEnded
	case err != nil:
		lc.holdErr = fmt.Errorf("reading pod %s: %w", name, err)
		return nil, podUnknown
	case pod.UID != uid:
		return nil, podEnded // a new pod with the same name; the holder is gone
	}
	return &pod, stateOf(&pod)
}

func stateOf(pod *corev1.Pod) podState {
	if podFinished(pod) {
		return podEnded
	}
	return podRunning
}

// pruneRevoked drops the pods that have stopped from status.revoked, once
// per reconcile.
func (r *DistributedLockReconciler) pruneRevoked(ctx context.Context, lc *lockContext) {
	kept := lc.lock.Status.Revoked[:0:0]
	for _, rv := range lc.lock.Status.Revoked {
		if _, state := r.lookupPod(ctx, lc, rv.Pod, rv.PodUID); state != podEnded {
			kept = append(kept, rv)
		}
	}
	if len(kept) != len(lc.lock.Status.Revoked) {
		lc.lock.Status.Revoked = kept
	}
}

// namespaceTerminating reports whether the namespace is being deleted.
func (r *DistributedLockReconciler) namespaceTerminating(ctx context.Context, name string) bool {
	var ns corev1.Namespace
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		return false
	}
	return !ns.DeletionTimestamp.IsZero() || ns.Status.Phase == corev1.NamespaceTerminating
}

// holderRecord turns a kept hold into the status record of its holder.
func holderRecord(st keeper.Status) locksv1alpha1.LockHolder {
	return locksv1alpha1.LockHolder{
		Pod:           st.Pod,
		PodUID:        st.PodUID,
		Identity:      st.Lease.Holder,
		AcquiredAt:    metav1.NewTime(st.AcquiredAt.Truncate(time.Second)),
		LeaseDuration: &metav1.Duration{Duration: st.TTL},
		FencingToken:  st.Lease.Token,
	}
}

func expiryOf(t time.Time) *metav1.Time {
	e := metav1.NewTime(t.Truncate(time.Second))
	return &e
}

// holdTTL is the lease of a recorded hold: the one it was taken with.
func holdTTL(rec *locksv1alpha1.LockHolder, specTTL time.Duration) time.Duration {
	if rec.LeaseDuration != nil && rec.LeaseDuration.Duration > 0 {
		return rec.LeaseDuration.Duration
	}
	return specTTL
}

func leaseDuration(lock *locksv1alpha1.DistributedLock) time.Duration {
	if d := lock.Spec.LeaseDuration; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return 30 * time.Second
}
