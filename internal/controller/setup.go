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
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backendpool"
	"github.com/distlock/distlock/internal/keeper"
	"github.com/distlock/distlock/internal/metrics"
)

// Work queue settings.
const (
	// maxConcurrentReconciles: locks are independent; one whose backend is
	// slow to answer must not delay another's handoff. A reconcile mostly
	// waits on the API server and the backend: with 1,000 queues draining at
	// once, 32 workers drained 13% faster than 8 on a 2-core machine
	// (docs/scale.md), where the API server's CPU was then the limit.
	maxConcurrentReconciles = 32
	// maxBackoff caps the back-off of a lock whose reconcile keeps failing.
	// No hold depends on reconciles (the keeper renews them), but a pod
	// waiting for a grant should not wait for the default 1000 s.
	maxBackoff = 30 * time.Second
)

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
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Label: PodCacheSelector()},
		},
		// Nothing here reads managedFields: the cache need not keep them.
		DefaultTransform: cache.TransformStripManagedFields(),
	}
}

// SetupWithManager sets up the controller with the Manager: it watches
// DistributedLocks and the pods that ask for them, and runs the keeper that
// renews holds.
func (r *DistributedLockReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Backends == nil {
		r.Backends = &backendpool.Pool{}
	}
	if r.Backends.Wrap == nil {
		// Time and count every backend call (internal/metrics).
		r.Backends.Wrap = metrics.InstrumentLocker
	}
	r.enqueuer = &enqueuer{}
	r.line = newLine()
	r.watches = &watchSet{enqueue: r.enqueuer.add, cancels: map[types.NamespacedName]context.CancelFunc{}}
	r.queued = &queuedPlaces{places: map[types.NamespacedName]queuedPlace{}}
	r.once = &onceSet{seen: map[string]bool{}}
	r.status = newStatusWriter()
	if r.Keeper == nil {
		gate := func() bool { return true }
		if r.Leader != nil {
			gate = r.Leader.MayRenewHolds
		}
		r.Keeper = keeper.New(keeper.Options{
			Gate:        gate,
			Notify:      r.enqueuer.add,
			CallTimeout: r.backendTimeout(),
			Log:         mgr.GetLogger().WithName("keeper"),
		})
	}
	if err := mgr.Add(r.Keeper); err != nil {
		return fmt.Errorf("adding the keeper: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&locksv1alpha1.DistributedLock{}, builder.WithPredicates(r.status.skipOwnStatusWrites())).
		Watches(&corev1.Pod{}, podEvents(r.line)).
		WatchesRawSource(source.Func(r.enqueuer.start)).
		Named("distributedlock").
		WithOptions(controller.Options{
			MaxConcurrentReconciles: maxConcurrentReconciles,
			RateLimiter: workqueue.NewTypedMaxOfRateLimiter(
				workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, maxBackoff),
				&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(50), 500)},
			),
		}).
		Complete(r)
}

// EnqueueAll asks for a reconcile of every DistributedLock in the cache: a
// replica that starts leading looks at every lock at once.
func (r *DistributedLockReconciler) EnqueueAll(ctx context.Context) error {
	// Another replica led meanwhile: what this one wrote before may be stale.
	r.status.reset()
	var locks locksv1alpha1.DistributedLockList
	if err := r.List(ctx, &locks); err != nil {
		return fmt.Errorf("listing DistributedLocks: %w", err)
	}
	for i := range locks.Items {
		r.enqueuer.add(types.NamespacedName{Namespace: locks.Items[i].Namespace, Name: locks.Items[i].Name})
	}
	return nil
}

// enqueuer lets the keeper, backend watches and the leader elector ask for
// a reconcile without blocking: it adds to the controller's work queue,
// which merges repeated requests.
type enqueuer struct {
	mu      sync.Mutex
	queue   workqueue.TypedRateLimitingInterface[reconcile.Request]
	pending []types.NamespacedName
}

func (e *enqueuer) start(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queue = q
	for _, name := range e.pending {
		q.Add(reconcile.Request{NamespacedName: name})
	}
	e.pending = nil
	return nil
}

func (e *enqueuer) add(name types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.queue == nil {
		e.pending = append(e.pending, name)
		return
	}
	e.queue.Add(reconcile.Request{NamespacedName: name})
}

// onceSet remembers keys, so that an Event is emitted once per key. It
// forgets everything when it grows large; an Event may then repeat.
type onceSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

const maxOnceKeys = 10000

// has reports whether key was recorded.
func (s *onceSet) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[key]
}

// first records key and reports whether it is new.
func (s *onceSet) first(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[key] {
		return false
	}
	if len(s.seen) >= maxOnceKeys {
		s.seen = map[string]bool{}
	}
	s.seen[key] = true
	return true
}
