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

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/history"
)

// nodeName is the node the driver's pods claim to run on (envtest has no
// kubelet: the driver plays it).
const nodeName = "fault-node"

// holdForever, returned by a hold function, keeps the holder inside until
// its pod is deleted or its hold is reported lost.
const holdForever = time.Duration(-1)

// driver keeps pods asking for a cell's locks and plays their kubelet and
// their containers: a pod that the controller grants a lock enters its
// critical section (recorded in the history with the pod's fencing token),
// stays a little, leaves (recorded), and ends; a new pod takes its place in
// line. A pod whose hold is reported lost, or that is deleted, leaves at
// once, as its container would be stopped.
type driver struct {
	name   string // prefixes holder names in the history (two clusters share one)
	ns     string
	c      client.Client
	cfg    *rest.Config
	rec    *history.Recorder
	locks  []string
	line   int
	errorf func(format string, args ...any)

	holdFor func(lock string) time.Duration

	mu    sync.Mutex
	pods  map[string]*podRun // by pod name
	seq   int
	topUp atomic.Bool
	wg    sync.WaitGroup

	handoffs atomic.Int64
	grants   sync.Map // lock/uid -> struct{}: grants already recorded from status

	// ended, when set, is called once after a holder's pod is deleted, at
	// the start of a handoff; a fault uses it to strike mid-handoff.
	ended atomic.Pointer[func()]
}

// podRun is one pod the driver made, and what its container did.
type podRun struct {
	lock, name string
	uid        types.UID
	entered    bool
	done       bool // left its critical section, or cancelled while waiting
	end        chan struct{}
	endOnce    sync.Once
}

func (p *podRun) stop() { p.endOnce.Do(func() { close(p.end) }) }

func randomHold(string) time.Duration { return 5*time.Millisecond + rand.N(35*time.Millisecond) }

// start watches the namespace's pods and locks, and puts line pods in each
// lock's line.
func (d *driver) start(ctx context.Context) error {
	if d.holdFor == nil {
		d.holdFor = randomHold
	}
	d.pods = map[string]*podRun{}
	cache, err := crcache.New(d.cfg, crcache.Options{Scheme: scheme.Scheme, DefaultNamespaces: map[string]crcache.Config{d.ns: {}}})
	if err != nil {
		return fmt.Errorf("a cache for the driver: %w", err)
	}
	pods, err := cache.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return fmt.Errorf("a pod informer: %w", err)
	}
	if _, err := pods.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { d.onPod(ctx, obj, false) },
		UpdateFunc: func(_, obj any) { d.onPod(ctx, obj, false) },
		DeleteFunc: func(obj any) { d.onPod(ctx, obj, true) },
	}); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	locks, err := cache.GetInformer(ctx, &locksv1alpha1.DistributedLock{})
	if err != nil {
		return fmt.Errorf("a lock informer: %w", err)
	}
	if _, err := locks.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    d.onLock,
		UpdateFunc: func(_, obj any) { d.onLock(obj) },
	}); err != nil {
		return fmt.Errorf("watching locks: %w", err)
	}
	go func() { _ = cache.Start(ctx) }()
	if !cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("the driver's cache did not sync: %w", ctx.Err())
	}
	d.topUp.Store(true)
	for _, lock := range d.locks {
		for range d.line {
			d.wg.Add(1)
			go func() { defer d.wg.Done(); d.newPod(ctx, lock) }()
		}
	}
	return nil
}

func (d *driver) record(e history.Event) {
	if err := d.rec.Record(e); err != nil {
		d.errorf("recording %s of %s: %v", e.Kind, e.Holder, err)
	}
}

func (d *driver) holderName(pod string) string { return d.name + "/" + pod }

// newPod puts one more pod in lock's line.
func (d *driver) newPod(ctx context.Context, lock string) {
	if !d.topUp.Load() {
		return
	}
	d.mu.Lock()
	d.seq++
	run := &podRun{lock: lock, name: fmt.Sprintf("%s-%05d", lock, d.seq), end: make(chan struct{})}
	d.pods[run.name] = run
	d.mu.Unlock()

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: d.ns, Name: run.name, Labels: map[string]string{locksv1alpha1.LockLabel: lock}},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "work", Image: "busybox"}}},
	}
	d.record(history.Event{Kind: history.Request, Lock: lock, Holder: d.holderName(run.name)})
	if err := retry(ctx, func() error { return client.IgnoreAlreadyExists(d.c.Create(ctx, pod.DeepCopy())) }); err != nil {
		d.errorf("creating pod %s: %v", run.name, err)
		return
	}
	running := client.RawPatch(types.MergePatchType, []byte(`{"status":{"phase":"Running"}}`))
	if err := retry(ctx, func() error { return d.c.Status().Patch(ctx, pod, running) }); err != nil && !apierrors.IsNotFound(err) {
		d.errorf("marking pod %s running: %v", run.name, err)
	}
}

// onPod plays the kubelet and the container of one of the driver's pods.
func (d *driver) onPod(ctx context.Context, obj any, deleted bool) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	run := d.pods[pod.Name]
	if run == nil || run.done || (run.uid != "" && run.uid != pod.UID) {
		return
	}
	run.uid = pod.UID
	gone := deleted || pod.DeletionTimestamp != nil
	if !run.entered {
		if gone {
			// Deleted while it waited: it gives up, and another takes its place.
			run.done = true
			d.record(history.Event{Kind: history.Cancel, Lock: run.lock, Holder: d.holderName(run.name)})
			d.wg.Add(1)
			go func() { defer d.wg.Done(); d.finish(ctx, run) }()
			return
		}
		token, err := strconv.ParseInt(pod.Annotations[locksv1alpha1.FencingTokenAnnotation], 10, 64)
		if pod.Annotations[locksv1alpha1.GrantedAnnotation] != run.lock || err != nil {
			return
		}
		run.entered = true
		d.record(history.Event{Kind: history.Enter, Lock: run.lock, Holder: d.holderName(run.name), Token: token})
		d.handoffs.Add(1)
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.hold(ctx, run) }()
		return
	}
	if gone || pod.Annotations[locksv1alpha1.LostAnnotation] != "" {
		run.stop()
	}
}

// hold is the critical section of a granted pod's container.
func (d *driver) hold(ctx context.Context, run *podRun) {
	wait := d.holdFor(run.lock)
	var timeout <-chan time.Time
	if wait != holdForever {
		timeout = time.After(wait)
	}
	select {
	case <-timeout:
	case <-run.end:
	case <-ctx.Done():
	}
	d.mu.Lock()
	run.done = true
	d.record(history.Event{Kind: history.Exit, Lock: run.lock, Holder: d.holderName(run.name)})
	d.mu.Unlock()
	d.finish(ctx, run)
}

// finish ends a pod (the container exited: the kubelet deletes it) and puts
// a new one in line.
func (d *driver) finish(ctx context.Context, run *podRun) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: d.ns, Name: run.name}}
	uid := run.uid
	err := retry(ctx, func() error {
		return client.IgnoreNotFound(d.c.Delete(ctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &uid}))
	})
	if err != nil && !apierrors.IsConflict(err) {
		d.errorf("deleting pod %s: %v", run.name, err)
	}
	if run.entered {
		if f := d.ended.Swap(nil); f != nil {
			(*f)()
		}
	}
	d.newPod(ctx, run.lock)
}

// onLock records every grant the controller reports in status, in the
// order the API server stored them.
func (d *driver) onLock(obj any) {
	lock, ok := obj.(*locksv1alpha1.DistributedLock)
	if !ok {
		return
	}
	for _, h := range lock.Status.Holders {
		if _, seen := d.grants.LoadOrStore(lock.Name+"/"+string(h.PodUID), struct{}{}); seen {
			continue
		}
		d.record(history.Event{Kind: history.Grant, Lock: lock.Name, Holder: d.holderName(h.Pod), Token: h.FencingToken})
	}
}

// drain stops putting new pods in line and waits until every pod made has
// been granted and has ended (or was cancelled).
func (d *driver) drain(ctx context.Context) error {
	d.topUp.Store(false)
	for {
		d.mu.Lock()
		var waiting []string
		for _, run := range d.pods {
			if !run.done {
				waiting = append(waiting, run.name)
			}
		}
		d.mu.Unlock()
		if len(waiting) == 0 {
			return d.waitGoroutines(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("draining: %d pods never got their turn, e.g. %v: %w", len(waiting), waiting[:min(len(waiting), 5)], ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// holders are the pods inside their critical section now.
func (d *driver) holders() []*podRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	var inside []*podRun
	for _, run := range d.pods {
		if run.entered && !run.done {
			inside = append(inside, run)
		}
	}
	return inside
}

// midHandoff waits until the next holder's pod has been deleted.
func (d *driver) midHandoff(ctx context.Context) error {
	done := make(chan struct{})
	f := func() { close(done) }
	d.ended.Store(&f)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a handoff: %w", ctx.Err())
	}
}

// waitGoroutines waits until every pod's goroutine has returned (the last
// deletions made).
func (d *driver) waitGoroutines(ctx context.Context) error {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("draining: the last pods were not deleted: %w", ctx.Err())
	}
}

// wait waits for the driver's goroutines (after its context ended).
func (d *driver) wait() { d.wg.Wait() }

// retry calls fn until it succeeds, returns a permanent error, or ctx ends:
// the API server may be down for a while during a fault.
func retry(ctx context.Context, fn func() error) error {
	backoff := 20 * time.Millisecond
	for {
		err := fn()
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) ||
			apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}
