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

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// queueWriteInterval is how often a lock's status is written when only its
// queue changed (pods arriving or leaving): a burst of arrivals costs one
// write per lock per interval, not one per pod.
const queueWriteInterval = time.Second

// maxRemembered bounds the locks whose last written status is remembered;
// past it the memory starts again (a lock then compares with its cached
// copy, as after a restart).
const maxRemembered = 100000

// statusWriter remembers, per lock, the status this replica last wrote and
// when. Writes are decided against it rather than against the cached copy,
// which may not show the last write yet: a write the cache has not caught up
// with is neither repeated nor lost. It also recognises the watch events of
// its own status writes, which need no reconcile.
type statusWriter struct {
	mu   sync.Mutex
	last map[types.NamespacedName]writtenStatus
}

type writtenStatus struct {
	uid    types.UID
	status locksv1alpha1.DistributedLockStatus
	at     time.Time
}

func newStatusWriter() *statusWriter {
	return &statusWriter{last: map[types.NamespacedName]writtenStatus{}}
}

// base is what the API server has for lock's status as far as this replica
// knows: its own last write to this object, else the cached copy.
func (w *statusWriter) base(lock *locksv1alpha1.DistributedLock, cached locksv1alpha1.DistributedLockStatus) (
	locksv1alpha1.DistributedLockStatus, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if last, ok := w.last[client.ObjectKeyFromObject(lock)]; ok && last.uid == lock.UID {
		return last.status, last.at
	}
	return cached, time.Time{}
}

func (w *statusWriter) record(lock *locksv1alpha1.DistributedLock, status locksv1alpha1.DistributedLockStatus, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.last) >= maxRemembered {
		w.last = map[types.NamespacedName]writtenStatus{}
	}
	w.last[client.ObjectKeyFromObject(lock)] = writtenStatus{uid: lock.UID, status: *status.DeepCopy(), at: at}
}

func (w *statusWriter) forget(lock types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.last, lock)
}

// reset forgets everything: another replica may have written since (this
// one just took over).
func (w *statusWriter) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = map[types.NamespacedName]writtenStatus{}
}

// ownStatusWrite reports whether an update of a lock is only this replica's
// own last status write: nothing in it needs a reconcile.
func (w *statusWriter) ownStatusWrite(e event.UpdateEvent) bool {
	oldLock, ok1 := e.ObjectOld.(*locksv1alpha1.DistributedLock)
	newLock, ok2 := e.ObjectNew.(*locksv1alpha1.DistributedLock)
	if !ok1 || !ok2 || oldLock.Generation != newLock.Generation ||
		!equality.Semantic.DeepEqual(oldLock.Annotations, newLock.Annotations) ||
		!equality.Semantic.DeepEqual(oldLock.Labels, newLock.Labels) ||
		!equality.Semantic.DeepEqual(oldLock.Finalizers, newLock.Finalizers) ||
		!oldLock.DeletionTimestamp.Equal(newLock.DeletionTimestamp) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.last[client.ObjectKeyFromObject(newLock)]
	return ok && last.uid == newLock.UID && statusEqual(last.status, newLock.Status)
}

// skipOwnStatusWrites is the predicate that drops the events of this
// replica's own status writes.
func (w *statusWriter) skipOwnStatusWrites() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return !w.ownStatusWrite(e) }}
}

// patchStatus writes status when it differs from what the API server has.
// A change of the queue alone is written at most every queueWriteInterval;
// it returns how long to wait before writing such a change held back.
func (r *DistributedLockReconciler) patchStatus(ctx context.Context, lc *lockContext) (time.Duration, error) {
	lc.lock.Status.ObservedGeneration = lc.lock.Generation
	desired := *lc.lock.Status.DeepCopy()
	base, lastWrite := r.status.base(lc.lock, lc.orig.Status)
	if statusEqual(base, desired) {
		return 0, nil
	}
	if queueOnlyChange(base, desired) {
		if wait := queueWriteInterval - r.now().Sub(lastWrite); wait > 0 {
			return wait, nil
		}
	}
	from := lc.lock.DeepCopy()
	from.Status = base
	if err := r.Status().Patch(ctx, lc.lock, client.MergeFrom(from)); client.IgnoreNotFound(err) != nil {
		return 0, fmt.Errorf("updating status: %w", err)
	}
	r.status.record(lc.lock, desired, r.now())
	return 0, nil
}

// queueOnlyChange reports whether two statuses differ in the queue only.
func queueOnlyChange(a, b locksv1alpha1.DistributedLockStatus) bool {
	a.Waiting, a.WaitingCount = nil, 0
	b.Waiting, b.WaitingCount = nil, 0
	return statusEqual(a, b)
}
