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

package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	watchtools "k8s.io/client-go/tools/watch"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// Phases of a run, as losses and handoff samples are tagged.
const (
	phaseCreate = "creation"
	phaseHold   = "hold"
	phaseProbe  = "single-lock handoffs"
	phaseDrain  = "drain"
)

// holderRef is a lock's recorded holder; the zero value is "nobody".
type holderRef struct {
	pod   string
	uid   types.UID
	token int64
}

// lockState is what the watch has shown of one lock.
type lockState struct {
	backend string
	key     string
	pods    int // pods created for it
	holder  holderRef
	status  *locksv1alpha1.DistributedLockStatus
	// deleteAt is when the driver sent the delete of deletedUID, the holder
	// at the time; zero when no handoff is being timed.
	deleteAt   time.Time
	deletedUID types.UID
	deleted    int // pods of this lock the driver deleted
	notTrue    bool
}

// loss is one hold found lost, by the first check that saw it.
type loss struct {
	phase  string
	at     time.Duration // since the run started
	lock   string
	token  int64
	how    string
	detail string
}

// sample is one timed handoff: the holder's delete sent, to the next
// holder seen in a watch.
type sample struct {
	phase   string
	latency time.Duration
	at      time.Time
}

// counters are the writes the watches saw, by what was written.
type counters struct {
	lockStatusWrites int64 // lock changes that changed status
	lockOtherWrites  int64 // lock changes that did not (metadata: finalizer)
	podAnnotations   int64 // pod changes to distlock.io/ annotations
	eventCreates     int64
	eventUpdates     int64
	grants           int64 // new holders seen
}

// holderEvent tells the drain driver that a lock has a new holder.
type holderEvent struct {
	lock string
	pod  string
	uid  types.UID
}

// tracker follows every lock, pod and Event of the run through watches,
// and finds lost holds and handoffs in what they show.
type tracker struct {
	ns      string
	started time.Time

	mu      sync.Mutex
	phase   string
	locks   map[string]*lockState
	deleted map[types.UID]bool
	podAnn  map[types.UID]string
	losses  []loss
	lostKey map[string]bool
	samples []sample
	count   counters
	reasons map[string]int // Events by regarding kind and reason
	drain   chan<- holderEvent
	dropped int
	changed chan struct{} // closed and replaced on every change
	errs    []string
}

func newTracker(ns string, started time.Time, plan []lockPlan) *tracker {
	t := &tracker{
		ns: ns, started: started, phase: phaseCreate,
		locks: map[string]*lockState{}, deleted: map[types.UID]bool{}, podAnn: map[types.UID]string{},
		lostKey: map[string]bool{}, reasons: map[string]int{}, changed: make(chan struct{}),
	}
	for _, p := range plan {
		t.locks[p.name] = &lockState{backend: p.backend, pods: p.pods}
	}
	return t
}

// notifyLocked wakes everyone waiting for a change. t.mu is held.
func (t *tracker) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// waitFor waits until cond (called with t.mu held) is true.
func (t *tracker) waitFor(ctx context.Context, cond func() bool) error {
	for {
		t.mu.Lock()
		ok, ch := cond(), t.changed
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(time.Second): // conditions on time, or a missed wake-up
		}
	}
}

func (t *tracker) setPhase(p string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.phase = p
}

// lostLocked records a lost hold, once per lock and token. t.mu is held.
func (t *tracker) lostLocked(lock string, token int64, how, detail string) {
	key := lock + "/" + strconv.FormatInt(token, 10)
	if t.lostKey[key] {
		return
	}
	t.lostKey[key] = true
	l := loss{phase: t.phase, at: time.Since(t.started), lock: lock, token: token, how: how, detail: detail}
	t.losses = append(t.losses, l)
	logf("LOST: lock %s token %d (%s) %s", lock, token, how, detail)
}

// observeLock follows one lock's status.
func (t *tracker) observeLock(ev watch.Event) {
	l, ok := ev.Object.(*locksv1alpha1.DistributedLock)
	if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.locks[l.Name]
	if st == nil {
		return // not ours
	}
	if ev.Type == watch.Modified {
		if st.status != nil && !equality.Semantic.DeepEqual(*st.status, l.Status) {
			t.count.lockStatusWrites++
		} else {
			t.count.lockOtherWrites++
		}
	}
	st.status = l.Status.DeepCopy()
	if l.Status.Key != "" {
		st.key = l.Status.Key
	}
	var cur holderRef
	if len(l.Status.Holders) > 0 {
		h := l.Status.Holders[0]
		cur = holderRef{pod: h.Pod, uid: h.PodUID, token: h.FencingToken}
		if h.Lost {
			t.lostLocked(l.Name, h.FencingToken, "status.holders[0].lost", "pod "+h.Pod)
		}
	}
	if c := meta.FindStatusCondition(l.Status.Conditions, locksv1alpha1.ConditionHeld); c != nil {
		if c.Reason == locksv1alpha1.ReasonLost {
			t.lostLocked(l.Name, cur.token, "Held=False Lost", c.Message)
		}
		if cur.uid != "" && c.Status != metav1.ConditionTrue && t.phase != phaseCreate {
			st.notTrue = true
		}
	}
	for _, rv := range l.Status.Revoked {
		t.lostLocked(l.Name, rv.FencingToken, "status.revoked", rv.Reason+": pod "+rv.Pod)
	}
	prev := st.holder
	switch {
	case prev.uid == "" || prev == cur:
	case cur.uid == prev.uid:
		t.lostLocked(l.Name, prev.token, "token changed without a release",
			fmt.Sprintf("pod %s: token %d, then %d", prev.pod, prev.token, cur.token))
	case !t.deleted[prev.uid]:
		t.lostLocked(l.Name, prev.token, "holder replaced while it ran",
			fmt.Sprintf("pod %s (not deleted) replaced by %q", prev.pod, cur.pod))
	}
	if cur.uid != "" && cur.uid != prev.uid {
		t.newHolderLocked(l.Name, st, cur)
	}
	st.holder = cur
	t.notifyLocked()
}

// newHolderLocked times a handoff the driver started and tells the drain
// driver. t.mu is held.
func (t *tracker) newHolderLocked(name string, st *lockState, cur holderRef) {
	t.count.grants++
	now := time.Now()
	if !st.deleteAt.IsZero() && cur.uid != st.deletedUID {
		t.samples = append(t.samples, sample{phase: t.phase, latency: now.Sub(st.deleteAt), at: now})
		st.deleteAt = time.Time{}
	}
	if t.drain != nil {
		select {
		case t.drain <- holderEvent{lock: name, pod: cur.pod, uid: cur.uid}:
		default:
			t.dropped++
		}
	}
}

// observePod counts the manager's annotation writes on pods and notices
// pods marked lost.
func (t *tracker) observePod(ev watch.Event) {
	pod, ok := ev.Object.(*corev1.Pod)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ann := pod.Annotations
	sig := ann[locksv1alpha1.GrantedAnnotation] + "|" + ann[locksv1alpha1.FencingTokenAnnotation] + "|" + ann[locksv1alpha1.LostAnnotation]
	switch ev.Type {
	case watch.Added:
		t.podAnn[pod.UID] = sig
	case watch.Modified:
		if t.podAnn[pod.UID] != sig {
			t.count.podAnnotations++
		}
		t.podAnn[pod.UID] = sig
	case watch.Deleted:
		delete(t.podAnn, pod.UID)
	}
	if why, lost := ann[locksv1alpha1.LostAnnotation]; lost && ev.Type != watch.Deleted {
		token, _ := strconv.ParseInt(ann[locksv1alpha1.FencingTokenAnnotation], 10, 64)
		t.lostLocked(pod.Labels[locksv1alpha1.LockLabel], token, "pod annotated "+locksv1alpha1.LostAnnotation, why)
	}
}

// observeEvent counts the Events written in the namespace (by the manager:
// there is no kubelet or scheduler here).
func (t *tracker) observeEvent(ev watch.Event) {
	e, ok := ev.Object.(*eventsv1.Event)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Type {
	case watch.Added:
		t.count.eventCreates++
		t.reasons[e.Regarding.Kind+" "+e.Reason]++
	case watch.Modified:
		t.count.eventUpdates++
	}
}

// markDeleted notes that the driver is deleting pod uid, holder of lock
// (timing the handoff) or not (lock empty).
func (t *tracker) markDeleted(lock string, uid types.UID, holder bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deleted[uid] = true
	st := t.locks[lock]
	st.deleted++
	if holder {
		st.deleteAt, st.deletedUID = time.Now(), uid
	}
}

// startDrain makes every new holder go to ch from now on and returns the
// current holders, atomically.
func (t *tracker) startDrain(ch chan<- holderEvent) []holderEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.drain = ch
	evs := make([]holderEvent, 0, len(t.locks))
	for name, st := range t.locks {
		if st.holder.uid != "" && !t.deleted[st.holder.uid] {
			evs = append(evs, holderEvent{lock: name, pod: st.holder.pod, uid: st.holder.uid})
		}
	}
	return evs
}

// allHeld reports whether every lock has a holder. t.mu is held.
func (t *tracker) allHeldLocked() bool {
	for _, st := range t.locks {
		if st.holder.uid == "" {
			return false
		}
	}
	return true
}

// heldCount is how many locks have a holder. t.mu is held.
func (t *tracker) heldCountLocked() int {
	n := 0
	for _, st := range t.locks {
		if st.holder.uid != "" {
			n++
		}
	}
	return n
}

// drainedLocked reports whether every pod was deleted and no lock has a
// holder. t.mu is held.
func (t *tracker) drainedLocked() bool {
	for _, st := range t.locks {
		if st.holder.uid != "" || st.deleted < st.pods {
			return false
		}
	}
	return true
}

// holder returns lock's recorded holder.
func (t *tracker) holder(lock string) holderRef {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.locks[lock].holder
}

// heldView lists the locks with a recorded holder that the driver has not
// deleted, except skip: what the backend must show.
type heldLock struct {
	name    string
	backend string
	key     string
	holder  holderRef
}

func (t *tracker) heldView(skip string) []heldLock {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]heldLock, 0, len(t.locks))
	for name, st := range t.locks {
		if name == skip || st.holder.uid == "" || st.key == "" || t.deleted[st.holder.uid] {
			continue
		}
		out = append(out, heldLock{name: name, backend: st.backend, key: st.key, holder: st.holder})
	}
	return out
}

// backendDisagrees records a hold the backend does not have, if the lock's
// recorded holder is still the one that was checked.
func (t *tracker) backendDisagrees(h heldLock, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.locks[h.name]; st.holder == h.holder && !t.deleted[h.holder.uid] {
		t.lostLocked(h.name, h.holder.token, "backend", detail)
	}
}

func (t *tracker) counters() counters {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count
}

func (t *tracker) watchError(what string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs = append(t.errs, fmt.Sprintf("%s: %v", what, err))
	logf("watch of %s: %v", what, err)
}

// notTrueCount is how many locks showed a Held condition other than True
// while they had a holder, after creation.
func (t *tracker) notTrueCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, st := range t.locks {
		if st.notTrue {
			n++
		}
	}
	return n
}

// latencies returns the handoff latencies of phase, sorted.
func (t *tracker) latencies(phase string) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d []time.Duration
	for _, s := range t.samples {
		if s.phase == phase {
			d = append(d, s.latency)
		}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d
}

// lastSample is when the last handoff of phase was seen.
func (t *tracker) lastSample(phase string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last time.Time
	for _, s := range t.samples {
		if s.phase == phase && s.at.After(last) {
			last = s.at
		}
	}
	return last
}

// lossesIn lists the losses found in phase.
func (t *tracker) lossesIn(phase string) []loss {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []loss
	for _, l := range t.losses {
		if l.phase == phase {
			out = append(out, l)
		}
	}
	return out
}

// --- Watches ------------------------------------------------------------------

// watcherFunc adapts a function to client-go's WatcherWithContext.
type watcherFunc func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)

func (f watcherFunc) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return f(ctx, opts)
}

// follow runs a retrying watch from resourceVersion rv until ctx ends,
// handing every event to handle. It returns when the watch has stopped.
func follow(ctx context.Context, t *tracker, what, rv string, w watcherFunc, handle func(watch.Event)) {
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, w)
	if err != nil {
		t.watchError(what, err)
		return
	}
	defer func() {
		rw.Stop()
		<-rw.Done()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-rw.ResultChan():
			if !ok {
				if ctx.Err() == nil {
					t.watchError(what, fmt.Errorf("the watch ended early"))
				}
				return
			}
			if ev.Type == watch.Error {
				t.watchError(what, fmt.Errorf("%v", ev.Object))
				continue
			}
			handle(ev)
		}
	}
}
