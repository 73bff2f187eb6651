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
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backendpool"
	"github.com/distlock/distlock/internal/keeper"
	"github.com/distlock/distlock/internal/metrics"
	"github.com/distlock/distlock/internal/podqueue"
)

// Timings of the reconciler. They are variables of the reconciler (see its
// fields) with these defaults.
const (
	// DefaultRetryInterval is how soon a lock is looked at again when its
	// backend is unreachable, its Secret is unusable or its holder cannot
	// be read.
	DefaultRetryInterval = 5 * time.Second
	// DefaultForeignPollInterval is how often a lock held outside this
	// controller is checked for release when its backend cannot notify
	// (Redis).
	DefaultForeignPollInterval = time.Second
	// DefaultBackendTimeout bounds every call to a backend.
	DefaultBackendTimeout = 5 * time.Second
	// maxSteps bounds the decide-and-apply steps of one reconcile (release,
	// then grant, is two).
	maxSteps = 4
)

// Leadership tells the reconciler whether this replica may act. See
// internal/leader; without leader election it is always true.
type Leadership interface {
	// Leading reports whether this replica may grant, release and write
	// status.
	Leading() bool
	// MayRenewHolds reports whether this replica may keep renewing the
	// holds it owns.
	MayRenewHolds() bool
}

// DistributedLockReconciler grants DistributedLocks to the pods that ask for
// them. It decides who holds each lock; the keeper (internal/keeper) keeps
// the holds alive in the backend on its own timers.
type DistributedLockReconciler struct {
	client.Client
	Scheme *runtime.Scheme
	// APIReader reads Secrets, Namespaces and holder pods that left the
	// cache, uncached.
	APIReader client.Reader
	// Recorder emits Events on locks and pods.
	Recorder recorder.EventRecorder
	// Backends holds the backend connections.
	Backends *backendpool.Pool
	// Keeper renews the holds this manager owns. SetupWithManager creates
	// one when nil.
	Keeper *keeper.Keeper
	// Leader gates every action; nil means this replica always leads.
	Leader Leadership
	// ClusterID identifies this cluster in holder identities (by default the
	// UID of the kube-system namespace). It must be the same across restarts.
	ClusterID string
	// AllowCustomKeys lets locks name their own backend key (spec.key),
	// within their namespace's prefixes.
	AllowCustomKeys bool
	// ClientName names this replica's backend connections where the server
	// shows them (Redis CLIENT LIST).
	ClientName string
	// AllowedBackendAddresses, when not empty, are the only backend
	// addresses (host:port, with * wildcards) that locks may name.
	AllowedBackendAddresses []string

	// RetryInterval, ForeignPollInterval and BackendTimeout override the
	// defaults above when not zero.
	RetryInterval       time.Duration
	ForeignPollInterval time.Duration
	BackendTimeout      time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	enqueuer *enqueuer
	line     *podqueue.Index
	watches  *watchSet
	status   *statusWriter
	queued   *queuedPlaces
	once     *onceSet
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

func (r *DistributedLockReconciler) retryInterval() time.Duration {
	return orDefault(r.RetryInterval, DefaultRetryInterval)
}

func (r *DistributedLockReconciler) backendTimeout() time.Duration {
	return orDefault(r.BackendTimeout, DefaultBackendTimeout)
}

func (r *DistributedLockReconciler) backendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.backendTimeout())
}

func (r *DistributedLockReconciler) leading() bool {
	return r.Leader == nil || r.Leader.Leading()
}

// +kubebuilder:rbac:groups=locks.distlock.io,resources=distributedlocks,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=locks.distlock.io,resources=distributedlocks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=locks.distlock.io,resources=distributedlocks/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one DistributedLock and its backend lock in line with the
// pods that ask for it: it observes, decides (decide, a pure function) and
// applies the decision, until nothing is left to do in this pass. See
// docs/design.md for the state machine.
//
// Reconcile never renews holds: the keeper does, on its own timers, so a
// slow or failing reconcile (API server down, Secret gone, error back-off)
// never costs a hold. A failure here delays only grants and status.
func (r *DistributedLockReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if !r.leading() {
		// Not (or no longer sure to be) the leader: touch nothing. Every lock
		// is enqueued again when this replica leads.
		return ctrl.Result{}, nil
	}
	var lock locksv1alpha1.DistributedLock
	if err := r.Get(ctx, req.NamespacedName, &lock); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.lockGone(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, fmt.Errorf("reading DistributedLock %s: %w", req.NamespacedName, err)
	}
	if lock.DeletionTimestamp.IsZero() && controllerutil.AddFinalizer(&lock, locksv1alpha1.Finalizer) {
		if err := r.Update(ctx, &lock); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}
	if !lock.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(&lock, locksv1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}

	lc := r.newLockContext(ctx, &lock)
	defer lc.close()
	r.pruneRevoked(ctx, lc)
	res := r.reconcileHolders(ctx, lc)
	if !lc.stale {
		res = r.reconcileFreePermits(ctx, lc, res)
	}
	r.summarizeHolders(lc)
	r.updateWaiting(lc)
	r.setReady(lc)
	return r.finish(ctx, lc, res)
}

// reconcileHolders looks at each recorded holder in turn: keeps, releases,
// evicts or reports its hold (decide, then apply, until nothing is left to
// do for it).
func (r *DistributedLockReconciler) reconcileHolders(ctx context.Context, lc *lockContext) result {
	r.recordFromKeeper(lc)
	var res result
	for _, uid := range lc.recordedUIDs() {
		lc.focus = uid
		for step := 0; step < maxSteps && lc.focus == uid; step++ {
			act := r.step(ctx, lc)
			res = res.merge(r.apply(ctx, lc, act))
			if !act.loops() || lc.stale {
				break
			}
		}
		if lc.stale {
			break
		}
	}
	lc.focus = ""
	return res
}

// reconcileFreePermits looks, with no holder in focus, at the holds the
// backend has that status does not record (adopting or releasing our own),
// and grants the lock to the pods in line while a permit is free. A lock
// being deleted grants nothing, and lets go only once no holder is left.
func (r *DistributedLockReconciler) reconcileFreePermits(ctx context.Context, lc *lockContext, res result) result {
	if len(lc.lock.Status.Holders) > 0 && (!lc.hasFreePermit() || !lc.lock.DeletionTimestamp.IsZero()) {
		r.nextInLine(lc) // no grant now, but a pod in line that holds another lock is told so
		return res
	}
	for step := 0; step < maxSteps+lc.limit; step++ {
		lc.focus = ""
		granted := lc.grantedNow
		act := r.step(ctx, lc)
		res = res.merge(r.apply(ctx, lc, act))
		lc.focus = ""
		if lc.stale || res.finalized {
			break
		}
		// After a grant or an adoption, look again while a permit is free.
		took := act == actAdopt || (act == actGrant && lc.grantedNow > granted)
		if again := act.loops() || (took && lc.hasFreePermit()); !again {
			break
		}
	}
	return res
}

// step observes and decides once.
func (r *DistributedLockReconciler) step(ctx context.Context, lc *lockContext) action {
	obs := r.observe(ctx, lc)
	act := decide(obs)
	logf.FromContext(ctx).V(1).Info("decided", "action", act.String(), "holder", string(lc.focus),
		"observation", fmt.Sprintf("%+v", obs))
	return act
}

// result is what applying an action asks of the rest of the reconcile.
type result struct {
	// requeueAfter, when positive, looks at the lock again after it.
	requeueAfter time.Duration
	// finalized: the finalizer was removed; the object may be gone.
	finalized bool
	// err is a failure worth retrying with back-off (never a hold at stake).
	err error
}

// merge combines the results of two steps of one reconcile: the sooner
// requeue, the first error.
func (res result) merge(next result) result {
	if next.requeueAfter > 0 && (res.requeueAfter == 0 || next.requeueAfter < res.requeueAfter) {
		res.requeueAfter = next.requeueAfter
	}
	res.finalized = res.finalized || next.finalized
	if res.err == nil {
		res.err = next.err
	}
	return res
}

// finish writes status, removes the annotations that were acted on, and
// turns the result into the controller's.
func (r *DistributedLockReconciler) finish(ctx context.Context, lc *lockContext, res result) (ctrl.Result, error) {
	if res.finalized || lc.stale || !r.leading() {
		return ctrl.Result{}, res.err
	}
	held := slices.ContainsFunc(lc.lock.Status.Holders, func(h locksv1alpha1.LockHolder) bool { return !h.Lost })
	metrics.SetLock(lc.name, metrics.LockState{Backend: lc.lock.Spec.Backend.Name(),
		Held: held, Waiting: int(lc.lock.Status.WaitingCount)})
	heldBack, err := r.patchStatus(ctx, lc)
	if err != nil {
		return ctrl.Result{}, err
	}
	if heldBack > 0 {
		res = r.after(res, heldBack)
	}
	if err := r.clearHandledAnnotations(ctx, lc); err != nil {
		return ctrl.Result{}, err
	}
	if res.err != nil {
		return ctrl.Result{}, res.err
	}
	return ctrl.Result{RequeueAfter: res.requeueAfter}, nil
}

// clearHandledAnnotations removes a distlock.io/force-release or
// distlock.io/break annotation that this reconcile acted on. The optimistic
// lock makes sure it is the same request: one made meanwhile conflicts and
// is looked at again.
func (r *DistributedLockReconciler) clearHandledAnnotations(ctx context.Context, lc *lockContext) error {
	if !lc.forceHandled && !lc.breakHandled {
		return nil
	}
	patch := client.MergeFromWithOptions(lc.lock.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if lc.forceHandled {
		delete(lc.lock.Annotations, locksv1alpha1.ForceReleaseAnnotation)
	}
	if lc.breakHandled {
		delete(lc.lock.Annotations, locksv1alpha1.BreakAnnotation)
	}
	if err := r.Patch(ctx, lc.lock, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing the handled force-release or break annotation: %w", err)
	}
	return nil
}
