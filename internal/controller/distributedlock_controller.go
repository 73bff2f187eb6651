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
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backendpool"
	"github.com/distlock/distlock/internal/holder"
)

// Timings of the reconciler. They are variables of the reconciler (see its
// fields) with these defaults.
const (
	// DefaultRetryInterval is how soon a lock is looked at again when its
	// backend is unreachable or its Secret is unusable.
	DefaultRetryInterval = 5 * time.Second
	// DefaultForeignPollInterval is how often a lock held outside this
	// controller is checked for release (such holders send no event).
	DefaultForeignPollInterval = time.Second
	// DefaultBackendTimeout bounds every call to a backend.
	DefaultBackendTimeout = 5 * time.Second
)

// DistributedLockReconciler grants DistributedLocks to the pods that ask for
// them, holding each lock in its backend on the holder's behalf.
type DistributedLockReconciler struct {
	client.Client
	Scheme *runtime.Scheme
	// APIReader reads DistributedLocks and Secrets uncached.
	APIReader client.Reader
	// Recorder emits Events on locks and pods.
	Recorder recorder.EventRecorder
	// Backends holds the backend connections.
	Backends *backendpool.Pool
	// ClusterID identifies this cluster in holder identities (by default the
	// UID of the kube-system namespace). It must be the same across restarts.
	ClusterID string
	// AllowCustomKeys lets locks name their own backend key (spec.key).
	AllowCustomKeys bool

	// RetryInterval, ForeignPollInterval and BackendTimeout override the
	// defaults above when not zero.
	RetryInterval       time.Duration
	ForeignPollInterval time.Duration
	BackendTimeout      time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

func (r *DistributedLockReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (r *DistributedLockReconciler) dialTimeout() time.Duration {
	return orDefault(r.BackendTimeout, DefaultBackendTimeout)
}

// +kubebuilder:rbac:groups=locks.distlock.io,resources=distributedlocks,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=locks.distlock.io,resources=distributedlocks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=locks.distlock.io,resources=distributedlocks/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one DistributedLock and its backend lock in line with the
// pods that ask for it. See docs/design.md for the state machine.
func (r *DistributedLockReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// The lock is read from the API server, not the cache: its status is
	// where this controller records holders, and a reconcile that ran on a
	// stale copy would not see the grant it made a moment ago.
	var lock locksv1alpha1.DistributedLock
	if err := r.APIReader.Get(ctx, req.NamespacedName, &lock); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.reportMissingLock(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if !lock.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, &lock)
	}
	if controllerutil.AddFinalizer(&lock, locksv1alpha1.Finalizer) {
		if err := r.Update(ctx, &lock); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}

	orig := lock.DeepCopy()
	forced := lock.Annotations[locksv1alpha1.ForceReleaseAnnotation]
	result, err := r.reconcileLock(ctx, &lock)
	if patchErr := r.patchStatus(ctx, orig, &lock); patchErr != nil {
		return ctrl.Result{}, errors.Join(err, patchErr)
	}
	if forced != "" && err == nil && lock.Annotations[locksv1alpha1.ForceReleaseAnnotation] == forced {
		// The request this reconcile read was acted on (the holder was
		// dropped); remove it so that it does not apply to the next holder
		// too. The optimistic lock makes sure it is the same request: a
		// request made meanwhile conflicts and is looked at again.
		patch := client.MergeFromWithOptions(lock.DeepCopy(), client.MergeFromWithOptimisticLock{})
		delete(lock.Annotations, locksv1alpha1.ForceReleaseAnnotation)
		if err := r.Patch(ctx, &lock, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("removing the %s annotation: %w", locksv1alpha1.ForceReleaseAnnotation, err)
		}
	}
	return result, err
}

func (r *DistributedLockReconciler) patchStatus(ctx context.Context, orig, lock *locksv1alpha1.DistributedLock) error {
	lock.Status.ObservedGeneration = lock.Generation
	if equality.Semantic.DeepEqual(orig.Status, lock.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, lock, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("updating status: %w", err)
	}
	return nil
}

// lockState is what one reconcile learns and decides about a lock.
type lockState struct {
	lock    *locksv1alpha1.DistributedLock
	key     string
	ttl     time.Duration
	locker  backend.Locker
	pods    map[types.UID]*corev1.Pod
	podList []corev1.Pod
}

func (r *DistributedLockReconciler) reconcileLock(ctx context.Context, lock *locksv1alpha1.DistributedLock) (ctrl.Result, error) {
	st := &lockState{lock: lock, key: lockKey(lock), ttl: leaseDuration(lock)}
	lock.Status.Backend = lock.Spec.Backend.Name()
	lock.Status.Key = st.key

	if lock.Spec.Key != "" && !r.AllowCustomKeys {
		msg := fmt.Sprintf("spec.key %q names a backend key explicitly, which this controller does not allow; "+
			"remove spec.key, or ask the cluster administrator to run the manager with --allow-custom-keys", lock.Spec.Key)
		r.setNotReady(lock, locksv1alpha1.ReasonKeyNotAllowed, msg)
		return ctrl.Result{}, nil
	}

	locker, fingerprint, err := r.connect(ctx, lock)
	if err != nil {
		return r.backendFailed(ctx, lock, err), nil
	}
	st.locker = locker

	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(lock.Namespace),
		client.MatchingLabels{locksv1alpha1.LockLabel: lock.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing pods: %w", err)
	}
	st.podList = pods.Items
	st.pods = make(map[types.UID]*corev1.Pod, len(st.podList))
	for i := range st.podList {
		st.pods[st.podList[i].UID] = &st.podList[i]
	}

	result, err := r.reconcileHolder(ctx, st)
	if err != nil {
		if errors.Is(err, backend.ErrUnauthorized) || errors.Is(err, backend.ErrUnreachable) {
			// Connect afresh next time: new credentials, or a server whose
			// name now resolves to another address.
			r.Backends.Forget(fingerprint)
		}
		if isBackendError(err) {
			return r.backendFailed(ctx, lock, err), nil
		}
		return ctrl.Result{}, err
	}
	r.setCondition(lock, locksv1alpha1.ConditionBackendReachable, metav1.ConditionTrue, locksv1alpha1.ReasonConnected,
		fmt.Sprintf("%s %v answered", lock.Spec.Backend.Name(), lock.Spec.Backend.Servers()))
	r.updateWaiting(st)
	return result, nil
}

// reconcileHolder is the state machine of docs/design.md. It reads who holds
// the lock in the backend, reconciles that with status.holders and the
// pods, and grants the lock to the first waiter when it is free.
func (r *DistributedLockReconciler) reconcileHolder(ctx context.Context, st *lockState) (ctrl.Result, error) {
	lock := st.lock
	log := logf.FromContext(ctx)

	inBackend, err := r.inspect(ctx, st)
	if err != nil {
		return ctrl.Result{}, err
	}
	ours := r.ownIdentity(inBackend, lock.Namespace)
	forced := lock.Annotations[locksv1alpha1.ForceReleaseAnnotation]

	// 1. Someone is recorded as holder: keep, renew, release or mark lost.
	if rec := currentHolder(lock); rec != nil {
		pod, err := r.lookupPod(ctx, st, rec.Pod, rec.PodUID)
		if err != nil {
			return r.holderUnknown(lock, rec.Pod, err), nil
		}
		holderDone := pod == nil || podFinished(pod)
		held := ours != nil && ours.UID == rec.PodUID && inBackend.Token == rec.FencingToken
		switch {
		case held && (holderDone || forced != ""):
			if err := r.release(ctx, st, rec); err != nil {
				return ctrl.Result{}, err
			}
			r.dropHolder(ctx, lock, rec, pod, holderDone, forced)
			inBackend, ours = backend.State{}, nil
		case held:
			return r.keepHolder(ctx, st, rec, pod)
		case holderDone || forced != "":
			// The hold is already gone from the backend (lost or expired)
			// and the holder stopped, or the operator let it go.
			r.dropHolder(ctx, lock, rec, pod, holderDone, forced)
		default:
			// The backend no longer has the hold but the holder still
			// runs: never hand the lock to anyone else behind its back.
			r.markLost(ctx, lock, rec, pod, inBackend)
			return ctrl.Result{RequeueAfter: r.pollInterval(st)}, nil
		}
	}

	// 2. Nobody is recorded. The backend may still hold the lock for one of
	// our pods (a restart between acquiring and writing status) or for
	// somebody else.
	if inBackend.Held {
		if ours == nil {
			r.setHeldElsewhere(lock, inBackend)
			return ctrl.Result{RequeueAfter: r.pollInterval(st)}, nil
		}
		pod, err := r.lookupPod(ctx, st, ours.Pod, ours.UID)
		if err != nil {
			return r.holderUnknown(lock, ours.Pod, err), nil
		}
		lease := backend.Lease{Key: st.key, Holder: inBackend.Holder, Token: inBackend.Token}
		if pod != nil && !podFinished(pod) && forced == "" {
			log.Info("adopting a hold found in the backend", "pod", pod.Name, "token", inBackend.Token)
			rec := r.newHolder(pod, lease, st.ttl)
			lock.Status.Holders = []locksv1alpha1.LockHolder{rec}
			r.eventf(lock, pod, corev1.EventTypeNormal, locksv1alpha1.ReasonAdopted, "Adopt",
				"Found pod %s holding the lock in the backend (fencing token %d) and took the hold over again", pod.Name, lease.Token)
			return r.keepHolder(ctx, st, &lock.Status.Holders[0], pod)
		}
		// Our hold, for a pod that is gone or finished: release it.
		log.Info("releasing a hold found in the backend for a pod that no longer runs", "pod", ours.Pod, "token", inBackend.Token)
		if err := r.releaseLease(ctx, st, lease); err != nil {
			return ctrl.Result{}, err
		}
		r.eventf(lock, nil, corev1.EventTypeNormal, locksv1alpha1.ReasonReleased, "Release",
			"Released the hold of pod %s (fencing token %d), which no longer runs", ours.Pod, lease.Token)
	}

	// 3. The lock is free: grant it to the first pod in line.
	return r.grantNext(ctx, st)
}

func (r *DistributedLockReconciler) pollInterval(st *lockState) time.Duration {
	return min(orDefault(r.ForeignPollInterval, DefaultForeignPollInterval), st.ttl/3)
}

// grantNext acquires the lock for the first waiting pod.
func (r *DistributedLockReconciler) grantNext(ctx context.Context, st *lockState) (ctrl.Result, error) {
	lock := st.lock
	waiting := waitingPods(st.podList, "")
	if len(waiting) == 0 {
		lock.Status.Holders = nil
		r.setCondition(lock, locksv1alpha1.ConditionHeld, metav1.ConditionFalse, locksv1alpha1.ReasonFree,
			"Nobody holds the lock and no pod waits for it")
		r.setReady(lock)
		return ctrl.Result{}, nil
	}
	next := waiting[0]
	id := r.identity(next)
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	lease, err := st.locker.Acquire(callCtx, st.key, id.String(), st.ttl)
	if errors.Is(err, backend.ErrNotAcquired) {
		// Taken by someone else between Inspect and Acquire.
		state, inspectErr := st.locker.Inspect(callCtx, st.key)
		if inspectErr != nil {
			return ctrl.Result{}, inspectErr
		}
		lock.Status.Holders = nil
		r.setHeldElsewhere(lock, state)
		return ctrl.Result{RequeueAfter: r.pollInterval(st)}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("acquiring %q for pod %s: %w", st.key, next.Name, err)
	}
	rec := r.newHolder(next, lease, st.ttl)
	lock.Status.Holders = []locksv1alpha1.LockHolder{rec}
	r.setHeld(lock, &rec)
	r.eventf(lock, next, corev1.EventTypeNormal, locksv1alpha1.ReasonGranted, "Grant",
		"Granted the lock to pod %s (fencing token %d)", next.Name, lease.Token)
	if err := r.annotateHolder(ctx, next, lock.Name, lease.Token); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: renewInterval(st.ttl)}, nil
}

// keepHolder renews the hold of a running holder and enforces
// maxHoldDuration.
func (r *DistributedLockReconciler) keepHolder(
	ctx context.Context, st *lockState, rec *locksv1alpha1.LockHolder, pod *corev1.Pod,
) (ctrl.Result, error) {
	lock := st.lock
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	lease := backend.Lease{Key: st.key, Holder: rec.Identity, Token: rec.FencingToken}
	ttl := holdTTL(rec, st.ttl)
	renewed, err := st.locker.Renew(callCtx, lease, ttl)
	if errors.Is(err, backend.ErrNotHeld) {
		state, inspectErr := st.locker.Inspect(callCtx, st.key)
		if inspectErr != nil {
			return ctrl.Result{}, inspectErr
		}
		r.markLost(ctx, lock, rec, pod, state)
		return ctrl.Result{RequeueAfter: r.pollInterval(st)}, nil
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("renewing %q for pod %s: %w", st.key, rec.Pod, err)
	}
	now := r.now()
	// Write the expiry only when the recorded one comes within half a lease:
	// about one status write per two renewals instead of one per renewal.
	if rec.LeaseExpiresAt == nil || rec.LeaseExpiresAt.Sub(now) < ttl/2 {
		rec.LeaseExpiresAt = leaseExpiry(now, renewed, ttl)
	}
	r.setHeld(lock, rec)
	if err := r.annotateHolder(ctx, pod, lock.Name, rec.FencingToken); err != nil {
		return ctrl.Result{}, err
	}

	requeue := renewInterval(ttl)
	if max := lock.Spec.MaxHoldDuration; max != nil {
		deadline := rec.AcquiredAt.Add(max.Duration)
		if !now.Before(deadline) {
			if pod.DeletionTimestamp.IsZero() {
				r.eventf(lock, pod, corev1.EventTypeWarning, locksv1alpha1.ReasonMaxHoldExceeded, "Evict",
					"Pod %s held the lock for longer than maxHoldDuration %s; deleting the pod. The lock passes on once it has stopped",
					pod.Name, max.Duration)
				if err := r.Delete(ctx, pod); client.IgnoreNotFound(err) != nil {
					return ctrl.Result{}, fmt.Errorf("deleting pod %s after maxHoldDuration: %w", pod.Name, err)
				}
			}
		} else if left := deadline.Sub(now); left < requeue {
			requeue = left
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// renewInterval is how often a hold is renewed: a third of the lease, so two
// renewals can fail before the hold expires.
func renewInterval(ttl time.Duration) time.Duration { return ttl / 3 }

func leaseDuration(lock *locksv1alpha1.DistributedLock) time.Duration {
	if d := lock.Spec.LeaseDuration; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return 30 * time.Second
}

func currentHolder(lock *locksv1alpha1.DistributedLock) *locksv1alpha1.LockHolder {
	if len(lock.Status.Holders) == 0 {
		return nil
	}
	return &lock.Status.Holders[0]
}

func (r *DistributedLockReconciler) identity(pod *corev1.Pod) holder.Identity {
	return holder.Identity{Cluster: r.ClusterID, Namespace: pod.Namespace, Pod: pod.Name, UID: pod.UID}
}

// ownIdentity returns the identity of the backend's holder when it is a pod
// of this cluster in the lock's namespace, nil otherwise (another cluster, a
// program outside Kubernetes, or another namespace's lock on the same key).
func (r *DistributedLockReconciler) ownIdentity(state backend.State, namespace string) *holder.Identity {
	if !state.Held {
		return nil
	}
	id, err := holder.Parse(state.Holder)
	if err != nil || id.Cluster != r.ClusterID || id.Namespace != namespace {
		return nil
	}
	return &id
}

// lookupPod finds the pod with the given name and UID: in the cache of pods
// that ask for the lock, or else straight from the API server (a holder
// whose label was removed still holds the lock until it ends). It returns
// nil when the pod no longer exists.
func (r *DistributedLockReconciler) lookupPod(ctx context.Context, st *lockState, name string, uid types.UID) (*corev1.Pod, error) {
	if pod, ok := st.pods[uid]; ok {
		return pod, nil
	}
	var pod corev1.Pod
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: st.lock.Namespace, Name: name}, &pod)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading pod %s: %w", name, err)
	case pod.UID != uid:
		return nil, nil // a new pod with the same name; the holder is gone
	}
	return &pod, nil
}

// holderUnknown fails closed: when the controller cannot tell whether the
// holder still runs, it neither releases nor grants.
func (r *DistributedLockReconciler) holderUnknown(lock *locksv1alpha1.DistributedLock, pod string, err error) ctrl.Result {
	msg := fmt.Sprintf("Cannot tell whether holder pod %s still runs (%v); granting and releasing nothing until it can", pod, err)
	r.setCondition(lock, locksv1alpha1.ConditionHeld, metav1.ConditionUnknown, locksv1alpha1.ReasonUnknownHolder, msg)
	r.setNotReady(lock, locksv1alpha1.ReasonUnknownHolder, msg)
	return ctrl.Result{RequeueAfter: orDefault(r.RetryInterval, DefaultRetryInterval)}
}

func (r *DistributedLockReconciler) newHolder(pod *corev1.Pod, lease backend.Lease, ttl time.Duration) locksv1alpha1.LockHolder {
	now := r.now()
	return locksv1alpha1.LockHolder{
		Pod:            pod.Name,
		PodUID:         pod.UID,
		Identity:       lease.Holder,
		AcquiredAt:     metav1.NewTime(now.Truncate(time.Second)),
		LeaseExpiresAt: leaseExpiry(now, lease, ttl),
		LeaseDuration:  &metav1.Duration{Duration: ttl},
		FencingToken:   lease.Token,
	}
}

// leaseExpiry is when a hold that was just taken or renewed expires: now
// plus the TTL the backend reported, or plus the lease asked for when the
// backend cannot report one (a ZooKeeper TTL node).
func leaseExpiry(now time.Time, lease backend.Lease, ttl time.Duration) *metav1.Time {
	remaining := lease.TTL
	if remaining <= 0 || remaining > ttl {
		remaining = ttl
	}
	exp := metav1.NewTime(now.Add(remaining).Truncate(time.Second))
	return &exp
}

// holdTTL is the lease of a recorded hold: the one it was taken with.
func holdTTL(rec *locksv1alpha1.LockHolder, specTTL time.Duration) time.Duration {
	if rec.LeaseDuration != nil && rec.LeaseDuration.Duration > 0 {
		return rec.LeaseDuration.Duration
	}
	return specTTL
}

func (r *DistributedLockReconciler) backendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, orDefault(r.BackendTimeout, DefaultBackendTimeout))
}

func (r *DistributedLockReconciler) inspect(ctx context.Context, st *lockState) (backend.State, error) {
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	state, err := st.locker.Inspect(callCtx, st.key)
	if err != nil {
		return state, fmt.Errorf("inspecting %q: %w", st.key, err)
	}
	return state, nil
}

func (r *DistributedLockReconciler) release(ctx context.Context, st *lockState, rec *locksv1alpha1.LockHolder) error {
	return r.releaseLease(ctx, st, backend.Lease{Key: st.key, Holder: rec.Identity, Token: rec.FencingToken})
}

func (r *DistributedLockReconciler) releaseLease(ctx context.Context, st *lockState, lease backend.Lease) error {
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	if err := st.locker.Release(callCtx, lease); err != nil {
		return fmt.Errorf("releasing %q (fencing token %d): %w", st.key, lease.Token, err)
	}
	return nil
}

// dropHolder clears the recorded holder after its hold was released or lost,
// with an Event saying why.
func (r *DistributedLockReconciler) dropHolder(ctx context.Context, lock *locksv1alpha1.DistributedLock,
	rec *locksv1alpha1.LockHolder, pod *corev1.Pod, holderDone bool, forced string) {
	switch {
	case forced != "":
		r.eventf(lock, pod, corev1.EventTypeWarning, locksv1alpha1.ReasonForceReleased, "ForceRelease",
			"An operator force-released the lock from pod %s (fencing token %d): %s", rec.Pod, rec.FencingToken, forced)
		if pod != nil && !holderDone {
			_ = r.markPodLost(ctx, pod, "force-released by an operator: "+forced)
		}
	case pod == nil:
		r.eventf(lock, nil, corev1.EventTypeNormal, locksv1alpha1.ReasonReleased, "Release",
			"Released the lock: holder pod %s was deleted", rec.Pod)
	default:
		r.eventf(lock, pod, corev1.EventTypeNormal, locksv1alpha1.ReasonReleased, "Release",
			"Released the lock: holder pod %s finished (%s)", rec.Pod, pod.Status.Phase)
	}
	lock.Status.Holders = nil
}

// markLost records that the backend no longer has the holder's hold while
// the holder still runs. The lock is not granted again until the holder
// ends or an operator force-releases it.
func (r *DistributedLockReconciler) markLost(ctx context.Context, lock *locksv1alpha1.DistributedLock,
	rec *locksv1alpha1.LockHolder, pod *corev1.Pod, inBackend backend.State) {
	who := "nobody holds it now"
	if inBackend.Held {
		who = fmt.Sprintf("it is now held by %q", inBackend.Holder)
	}
	msg := fmt.Sprintf("The backend lost pod %s's hold (fencing token %d) while the pod still runs; %s. "+
		"The lock is granted to no one else until the pod ends; to let it go now: "+
		"kubectl annotate distributedlock %s %s=<reason>", rec.Pod, rec.FencingToken, who, lock.Name, locksv1alpha1.ForceReleaseAnnotation)
	if !rec.Lost {
		rec.Lost = true
		r.eventf(lock, pod, corev1.EventTypeWarning, locksv1alpha1.ReasonLost, "Lose", "%s", msg)
		if pod != nil {
			if err := r.markPodLost(ctx, pod, who); err != nil {
				logf.FromContext(ctx).Error(err, "annotating the pod that lost the lock", "pod", pod.Name)
			}
		}
	}
	r.setCondition(lock, locksv1alpha1.ConditionHeld, metav1.ConditionFalse, locksv1alpha1.ReasonLost, msg)
	r.setReady(lock)
}

func (r *DistributedLockReconciler) setHeldElsewhere(lock *locksv1alpha1.DistributedLock, inBackend backend.State) {
	lock.Status.Holders = nil
	r.setCondition(lock, locksv1alpha1.ConditionHeld, metav1.ConditionFalse, locksv1alpha1.ReasonHeldElsewhere,
		fmt.Sprintf("The lock is held outside this controller by %q; waiting pods are granted it "+
			"once that holder releases it or its hold expires", inBackend.Holder))
	r.setReady(lock)
}

func (r *DistributedLockReconciler) setHeld(lock *locksv1alpha1.DistributedLock, rec *locksv1alpha1.LockHolder) {
	r.setCondition(lock, locksv1alpha1.ConditionHeld, metav1.ConditionTrue, locksv1alpha1.ReasonGranted,
		fmt.Sprintf("Pod %s holds the lock (fencing token %d)", rec.Pod, rec.FencingToken))
	r.setReady(lock)
}

func (r *DistributedLockReconciler) setReady(lock *locksv1alpha1.DistributedLock) {
	r.setCondition(lock, locksv1alpha1.ConditionReady, metav1.ConditionTrue, locksv1alpha1.ReasonConnected,
		"The backend answers and the lock's holder is known")
}

func (r *DistributedLockReconciler) setNotReady(lock *locksv1alpha1.DistributedLock, reason, msg string) {
	if prev := meta.FindStatusCondition(lock.Status.Conditions, locksv1alpha1.ConditionReady); prev == nil || prev.Reason != reason {
		r.eventf(lock, nil, corev1.EventTypeWarning, reason, "Reconcile", "%s", msg)
	}
	r.setCondition(lock, locksv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
}

func (r *DistributedLockReconciler) setCondition(
	lock *locksv1alpha1.DistributedLock, typ string, status metav1.ConditionStatus, reason, msg string,
) {
	meta.SetStatusCondition(&lock.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: lock.Generation,
	})
}

// backendFailed records a failure to reach or use the backend. Nothing is
// granted or released while it lasts; a recorded holder stays recorded.
func (r *DistributedLockReconciler) backendFailed(ctx context.Context, lock *locksv1alpha1.DistributedLock, err error) ctrl.Result {
	logf.FromContext(ctx).Info("backend call failed", "error", err.Error())
	reason := locksv1alpha1.ReasonUnreachable
	switch {
	case errors.Is(err, errCredentials):
		reason = locksv1alpha1.ReasonCredentialsInvalid
	case errors.Is(err, backend.ErrUnauthorized):
		reason = locksv1alpha1.ReasonUnauthorized
	}
	msg := fmt.Sprintf("%s; nothing is granted or released until this is fixed", err)
	r.setCondition(lock, locksv1alpha1.ConditionBackendReachable, metav1.ConditionFalse, reason, msg)
	r.setNotReady(lock, reason, msg)
	return ctrl.Result{RequeueAfter: orDefault(r.RetryInterval, DefaultRetryInterval)}
}

func isBackendError(err error) bool {
	return errors.Is(err, backend.ErrUnreachable) || errors.Is(err, backend.ErrUnauthorized) || errors.Is(err, errCredentials)
}

// connect returns the backend connection of a lock.
func (r *DistributedLockReconciler) connect(ctx context.Context, lock *locksv1alpha1.DistributedLock) (backend.Locker, string, error) {
	cfg, fingerprint, err := r.backendConfig(ctx, lock)
	if err != nil {
		return nil, "", err
	}
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	locker, err := r.Backends.Get(callCtx, fingerprint, lock.Spec.Backend.Name(), cfg)
	if err != nil {
		return nil, "", err
	}
	return locker, fingerprint, nil
}

// updateWaiting records the queue in status: the first MaxWaitingListed pods
// and the total.
func (r *DistributedLockReconciler) updateWaiting(st *lockState) {
	var skip types.UID
	if rec := currentHolder(st.lock); rec != nil {
		skip = rec.PodUID
	}
	waiting := waitingPods(st.podList, skip)
	st.lock.Status.WaitingCount = int32(len(waiting))
	st.lock.Status.Waiting = nil
	for i, pod := range waiting {
		if i == locksv1alpha1.MaxWaitingListed {
			break
		}
		st.lock.Status.Waiting = append(st.lock.Status.Waiting, locksv1alpha1.WaitingPod{Pod: pod.Name, PodUID: pod.UID})
	}
}

// annotateHolder marks the holder pod with the lock it holds and its fencing
// token, for the pod itself and its init container to see.
func (r *DistributedLockReconciler) annotateHolder(ctx context.Context, pod *corev1.Pod, lockName string, token int64) error {
	want := strconv.FormatInt(token, 10)
	if pod.Annotations[locksv1alpha1.GrantedAnnotation] == lockName && pod.Annotations[locksv1alpha1.FencingTokenAnnotation] == want {
		return nil
	}
	patch := client.MergeFrom(pod.DeepCopy())
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[locksv1alpha1.GrantedAnnotation] = lockName
	pod.Annotations[locksv1alpha1.FencingTokenAnnotation] = want
	if err := r.Patch(ctx, pod, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("annotating holder pod %s: %w", pod.Name, err)
	}
	return nil
}

func (r *DistributedLockReconciler) markPodLost(ctx context.Context, pod *corev1.Pod, why string) error {
	patch := client.MergeFrom(pod.DeepCopy())
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[locksv1alpha1.LostAnnotation] = why
	if err := r.Patch(ctx, pod, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("annotating pod %s as having lost the lock: %w", pod.Name, err)
	}
	return nil
}

// eventf records an Event on the lock and, when pod is not nil, the same
// Event on the pod.
func (r *DistributedLockReconciler) eventf(
	lock *locksv1alpha1.DistributedLock, pod *corev1.Pod, eventType, reason, action, format string, args ...any,
) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(lock, nil, eventType, reason, action, format, args...)
	if pod != nil {
		r.Recorder.Eventf(pod, lock, eventType, reason, action, format, args...)
	}
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

// finalize releases the backend lock of a DistributedLock being deleted and
// removes what the backend keeps for it, then lets the object go.
func (r *DistributedLockReconciler) finalize(ctx context.Context, lock *locksv1alpha1.DistributedLock) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(lock, locksv1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if err := r.releaseForDeletion(ctx, lock); err != nil {
		if reason := lock.Annotations[locksv1alpha1.ForceReleaseAnnotation]; reason != "" {
			r.eventf(lock, nil, corev1.EventTypeWarning, locksv1alpha1.ReasonForceReleased, "Delete",
				"Deleting without releasing the backend lock (%v), as asked by the %s annotation: %s",
				err, locksv1alpha1.ForceReleaseAnnotation, reason)
		} else {
			orig := lock.DeepCopy()
			res := r.backendFailed(ctx, lock, err)
			r.setCondition(lock, locksv1alpha1.ConditionReady, metav1.ConditionFalse, locksv1alpha1.ReasonUnreachable,
				fmt.Sprintf("Cannot release the backend lock before deletion: %v. Fix the backend, or delete without releasing: "+
					"kubectl annotate distributedlock %s %s=<reason>", err, lock.Name, locksv1alpha1.ForceReleaseAnnotation))
			return res, r.patchStatus(ctx, orig, lock)
		}
	}
	controllerutil.RemoveFinalizer(lock, locksv1alpha1.Finalizer)
	if err := r.Update(ctx, lock); client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("removing finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

func (r *DistributedLockReconciler) releaseForDeletion(ctx context.Context, lock *locksv1alpha1.DistributedLock) error {
	locker, _, err := r.connect(ctx, lock)
	if err != nil {
		return err
	}
	st := &lockState{lock: lock, key: lockKey(lock), locker: locker}
	inBackend, err := r.inspect(ctx, st)
	if err != nil {
		return err
	}
	if ours := r.ownIdentity(inBackend, lock.Namespace); ours != nil {
		if err := r.releaseLease(ctx, st, backend.Lease{Key: st.key, Holder: inBackend.Holder, Token: inBackend.Token}); err != nil {
			return err
		}
		var pod corev1.Pod
		if err := r.Get(ctx, client.ObjectKey{Namespace: lock.Namespace, Name: ours.Pod}, &pod); err == nil && pod.UID == ours.UID {
			r.eventf(lock, &pod, corev1.EventTypeWarning, locksv1alpha1.ReasonReleased, "Delete",
				"DistributedLock %s was deleted while pod %s held it; the backend lock is released", lock.Name, pod.Name)
			_ = r.markPodLost(ctx, &pod, "the DistributedLock was deleted")
		}
		inBackend = backend.State{}
	}
	if inBackend.Held {
		// Held outside this controller: not ours to remove.
		return nil
	}
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	if err := locker.Purge(callCtx, st.key); err != nil && !errors.Is(err, backend.ErrNotAcquired) {
		return fmt.Errorf("removing what the backend keeps for %q: %w", st.key, err)
	}
	return nil
}

// PodCacheSelector limits the manager's pod cache to pods that ask for a
// lock: the controller never caches every pod in the cluster.
func PodCacheSelector() labels.Selector {
	req, err := labels.NewRequirement(locksv1alpha1.LockLabel, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant, valid label key
	}
	return labels.NewSelector().Add(*req)
}

// CacheOptions are the cache options the manager needs for this controller.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Label: PodCacheSelector()},
	}}
}

// SetupWithManager sets up the controller with the Manager: it watches
// DistributedLocks and the pods that ask for them.
func (r *DistributedLockReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Backends == nil {
		r.Backends = &backendpool.Pool{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&locksv1alpha1.DistributedLock{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(lockForPod)).
		Named("distributedlock").
		// Locks are independent: one whose backend is slow to answer must not
		// delay another's handoff. A single lock is never reconciled twice at
		// once.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// lockForPod maps a pod to the DistributedLock its label names.
func lockForPod(_ context.Context, obj client.Object) []ctrl.Request {
	name := obj.GetLabels()[locksv1alpha1.LockLabel]
	if name == "" {
		return nil
	}
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}}
}
