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
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backendpool"
)

// watchSet keeps at most one backend watch per lock: while someone outside
// this controller holds a lock, a backend that can watch (ZooKeeper) tells
// when the holder goes, and the lock is reconciled at once instead of at
// the next poll.
type watchSet struct {
	enqueue func(types.NamespacedName)

	mu      sync.Mutex
	cancels map[types.NamespacedName]context.CancelFunc
}

// ensure starts a watch on key for lock unless one runs. It takes ownership
// of ref.
func (s *watchSet) ensure(ctx context.Context, lock types.NamespacedName, ref *backendpool.Ref, w backend.Watcher, key, holder string) {
	s.mu.Lock()
	if _, running := s.cancels[lock]; running {
		s.mu.Unlock()
		ref.Close()
		return
	}
	// The watch outlives the reconcile that started it.
	watchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancels[lock] = cancel
	s.mu.Unlock()

	go func() {
		defer ref.Close()
		defer s.remove(lock, cancel)
		changed, err := w.Watch(watchCtx, key, holder)
		if err != nil {
			return // the caller's periodic look covers it
		}
		select {
		case <-changed:
			if watchCtx.Err() == nil {
				s.enqueue(lock)
			}
		case <-watchCtx.Done():
		}
	}()
}

func (s *watchSet) remove(lock types.NamespacedName, cancel context.CancelFunc) {
	cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cancels, lock)
}

// stop ends the watch of lock, if any.
func (s *watchSet) stop(lock types.NamespacedName) {
	s.mu.Lock()
	cancel := s.cancels[lock]
	delete(s.cancels, lock)
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// queuedPlace is the place in a backend's own queue (a ZooKeeper waiting
// node) kept for the first pod in line.
type queuedPlace struct {
	podUID types.UID
	lease  backend.Lease
}

// queuedPlaces remembers, per lock, the place kept in line, so that it is
// given up when another pod comes first (the pod it was kept for was
// deleted, say) or the lock is deleted. A place not refreshed expires by
// its TTL anyway.
type queuedPlaces struct {
	mu     sync.Mutex
	places map[types.NamespacedName]queuedPlace
}

func (q *queuedPlaces) keep(lock types.NamespacedName, pod types.UID, lease backend.Lease) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.places[lock] = queuedPlace{podUID: pod, lease: lease}
}

// forget drops the record of lock's place without giving it up (it became
// the hold, or it expires).
func (q *queuedPlaces) forget(lock types.NamespacedName) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.places, lock)
}

// leave gives up lock's place in line unless it is kept for pod keepFor.
func (q *queuedPlaces) leave(ctx context.Context, lc *lockContext, keepFor types.UID) {
	q.mu.Lock()
	place, ok := q.places[lc.name]
	if ok && (keepFor == "" || place.podUID != keepFor) {
		delete(q.places, lc.name)
	}
	q.mu.Unlock()
	if !ok || (keepFor != "" && place.podUID == keepFor) || lc.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultBackendTimeout)
	defer cancel()
	logOnError(ctx, lc.conn.Locker().Release(ctx, place.lease), "giving up a place in line", "key", lc.key)
}
