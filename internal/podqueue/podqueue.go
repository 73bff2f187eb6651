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

// Package podqueue keeps, for every DistributedLock, the pods that ask for
// it and the line of those that wait, in first-come-first-served order or,
// for a lock set to it (SetOrder), by priority and then first come first
// served. It is
// updated from pod events one pod at a time (O(log n) each), so a reconcile
// reads the head of a line of any length, its length and any one pod without
// listing the pods or sorting them: a lock with 10,000 waiting pods costs
// per event what a lock with one does.
//
// The pods it holds are the informer cache's own objects: callers must not
// modify them (copy one before a call that decodes into it).
package podqueue

import (
	"sync"

	"github.com/google/btree"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Index is the set of lines. Its zero value is not usable: call New.
type Index struct {
	label string
	waits func(*corev1.Pod) bool

	mu sync.RWMutex
	// pods are the pods that carry the label, by UID.
	pods map[types.UID]*corev1.Pod
	// lines are the waiting pods of each lock, in order.
	lines map[types.NamespacedName]*btree.BTreeG[*corev1.Pod]
	// byPriority lists the locks whose lines are ordered by ByPriority.
	byPriority map[types.NamespacedName]bool
}

// btreeDegree suits lines from a few pods to tens of thousands.
const btreeDegree = 16

// New returns an empty Index of the pods whose label named label names a
// lock in their namespace. waits tells whether such a pod is in line (it
// may hold the lock or be granted it); the others are known but not in line.
func New(label string, waits func(*corev1.Pod) bool) *Index {
	return &Index{
		label:      label,
		waits:      waits,
		pods:       map[types.UID]*corev1.Pod{},
		lines:      map[types.NamespacedName]*btree.BTreeG[*corev1.Pod]{},
		byPriority: map[types.NamespacedName]bool{},
	}
}

// ByPriority orders a line by the pods' priority (spec.priority, set from
// their PriorityClass; 0 when unset), the highest first, and pods of equal
// priority as Before does, so that none of them starves behind later ones.
func ByPriority(a, b *corev1.Pod) bool {
	if pa, pb := priority(a), priority(b); pa != pb {
		return pa > pb
	}
	return Before(a, b)
}

func priority(pod *corev1.Pod) int32 {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	return 0
}

// SetOrder orders lock's line by priority (ByPriority) or, when byPriority
// is false, first come first served (Before, the default). Changing the
// order re-sorts the line: O(n log n) once.
func (x *Index) SetOrder(lock types.NamespacedName, byPriority bool) {
	x.mu.RLock()
	same := x.byPriority[lock] == byPriority
	x.mu.RUnlock()
	if same {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if byPriority {
		x.byPriority[lock] = true
	} else {
		delete(x.byPriority, lock)
	}
	old := x.lines[lock]
	if old == nil {
		return
	}
	line := x.newLineLocked(lock)
	old.Ascend(func(pod *corev1.Pod) bool {
		line.ReplaceOrInsert(pod)
		return true
	})
	x.lines[lock] = line
}

func (x *Index) newLineLocked(lock types.NamespacedName) *btree.BTreeG[*corev1.Pod] {
	if x.byPriority[lock] {
		return btree.NewG(btreeDegree, ByPriority)
	}
	return btree.NewG(btreeDegree, Before)
}

// Before orders a line: the oldest creationTimestamp first, ties broken by
// name and then UID, so the order is total and stable.
func Before(a, b *corev1.Pod) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.UID < b.UID
}

// LockOf returns the lock a pod asks for, and false when it asks for none.
func (x *Index) LockOf(pod *corev1.Pod) (types.NamespacedName, bool) {
	name := pod.Labels[x.label]
	return types.NamespacedName{Namespace: pod.Namespace, Name: name}, name != ""
}

// Set records a pod that was added or changed. A pod without the label is
// forgotten.
func (x *Index) Set(pod *corev1.Pod) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(pod.UID)
	lock, ok := x.LockOf(pod)
	if !ok {
		return
	}
	x.pods[pod.UID] = pod
	if !x.waits(pod) {
		return
	}
	line := x.lines[lock]
	if line == nil {
		line = x.newLineLocked(lock)
		x.lines[lock] = line
	}
	line.ReplaceOrInsert(pod)
}

// Delete forgets a pod that was deleted (or, in a cache filtered by the
// label, lost the label).
func (x *Index) Delete(uid types.UID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.removeLocked(uid)
}

func (x *Index) removeLocked(uid types.UID) {
	old, ok := x.pods[uid]
	if !ok {
		return
	}
	delete(x.pods, uid)
	lock, _ := x.LockOf(old)
	line := x.lines[lock]
	if line == nil {
		return
	}
	// Cached objects are replaced, never changed, so old still sorts where
	// it was inserted.
	line.Delete(old)
	if line.Len() == 0 {
		delete(x.lines, lock)
	}
}

// Pod returns the pod with the given UID if it asks for lock.
func (x *Index) Pod(lock types.NamespacedName, uid types.UID) (*corev1.Pod, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	pod, ok := x.pods[uid]
	if !ok {
		return nil, false
	}
	if l, _ := x.LockOf(pod); l != lock {
		return nil, false
	}
	return pod, true
}

// Len returns how many pods wait in lock's line.
func (x *Index) Len(lock types.NamespacedName) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if line := x.lines[lock]; line != nil {
		return line.Len()
	}
	return 0
}

// Ascend calls fn with the pods in lock's line, first in line first, until
// fn returns false. It walks a snapshot of the line taken when it was called
// (a copy-on-write clone, O(1)) and holds no lock while fn runs, so fn may
// call any method of the Index, and pod events are not held up meanwhile.
// (Holding the read lock across fn deadlocked: fn's own read lock waited
// behind a pod event's pending write lock, which waited for the first.)
func (x *Index) Ascend(lock types.NamespacedName, fn func(*corev1.Pod) bool) {
	if line := x.snapshot(lock); line != nil {
		line.Ascend(fn)
	}
}

// snapshot returns a clone of lock's line, or nil. Cloning marks the
// original copy-on-write, which is a write: it takes the write lock.
func (x *Index) snapshot(lock types.NamespacedName) *btree.BTreeG[*corev1.Pod] {
	x.mu.Lock()
	defer x.mu.Unlock()
	if line := x.lines[lock]; line != nil {
		return line.Clone()
	}
	return nil
}
