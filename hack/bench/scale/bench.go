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
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// probeLock is the lock handed over again and again while all others are
// held.
const probeLock = "probe"

// nodeName is where every pod is "scheduled" (there is no kubelet).
const nodeName = "bench-node"

// lockPlan is one lock to create.
type lockPlan struct {
	name    string
	backend string
	pods    int
}

// profileLength is how long a kube-apiserver CPU profile runs
// (-profile-dir).
const profileLength = 20 * time.Second

// profile starts a CPU profile of kube-apiserver when -profile-dir asks for
// it, and returns a function that waits until it is saved.
func (b *bench) profile(ctx context.Context, phase string, d time.Duration) (wait func()) {
	if b.opts.profileDir == "" {
		return func() {}
	}
	return profileAPIServer(ctx, b.env.cfg, d, filepath.Join(b.opts.profileDir, "kube-apiserver-"+phase+".pprof"))
}

// bench is one run.
type bench struct {
	env  *environment
	opts options
	c    client.WithWatch
	cs   *kubernetes.Clientset
	ns   string
	plan []lockPlan
	t    *tracker
	res  *result
}

func newBench(env *environment, opts options) *bench {
	plan := make([]lockPlan, 0, opts.locks+1)
	for i := range opts.locks {
		plan = append(plan, lockPlan{name: fmt.Sprintf("lock-%04d", i), backend: opts.backends[i%len(opts.backends)], pods: opts.pods})
	}
	plan = append(plan, lockPlan{name: probeLock, backend: opts.backends[0], pods: opts.samples + 1})
	return &bench{env: env, opts: opts, plan: plan, res: newResult(opts, env)}
}

// snapshot is what is measured at a phase boundary.
type snapshot struct {
	at     time.Time
	m      metricSet
	cpu    time.Duration
	c      counters
	server map[string]time.Duration
}

func (b *bench) snapshot(ctx context.Context) snapshot {
	s := b.processSnapshot()
	m, err := scrape(ctx, b.env.metrics)
	if err != nil {
		logf("%v", err)
		m = metricSet{}
	}
	s.m = m
	return s
}

// processSnapshot is a snapshot without the manager's metrics: the CPU
// times of the processes and what the watches counted.
func (b *bench) processSnapshot() snapshot {
	s := snapshot{at: time.Now(), cpu: cpuOf(b.env.managerPID()), c: b.t.counters(), server: map[string]time.Duration{}}
	for name, pid := range b.env.serverPID {
		s.server[name] = cpuOf(pid)
	}
	s.server[self] = cpuOf(os.Getpid()) // the driver and its watches
	return s
}

// run runs every phase. The result holds whatever was measured, also when
// a phase fails.
func (b *bench) run(ctx context.Context) (*result, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return b.res, fmt.Errorf("building the scheme: %w", err)
	}
	if err := locksv1alpha1.AddToScheme(scheme); err != nil {
		return b.res, fmt.Errorf("building the scheme: %w", err)
	}
	var err error
	if b.c, err = client.NewWithWatch(b.env.cfg, client.Options{Scheme: scheme}); err != nil {
		return b.res, fmt.Errorf("creating a client: %w", err)
	}
	if b.cs, err = kubernetes.NewForConfig(b.env.cfg); err != nil {
		return b.res, fmt.Errorf("creating a clientset: %w", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-scale-"}}
	if err := b.c.Create(ctx, ns); err != nil {
		return b.res, fmt.Errorf("creating the namespace: %w", err)
	}
	b.ns = ns.Name
	b.t = newTracker(b.ns, started, b.plan)
	b.res.t = b.t

	watchCtx, stopWatches := context.WithCancel(ctx)
	var watches sync.WaitGroup
	defer func() {
		stopWatches()
		watches.Wait()
	}()
	if err := b.startWatches(watchCtx, &watches); err != nil {
		return b.res, err
	}
	checker, err := newBackendChecker(b.env, b.t)
	if err != nil {
		return b.res, err
	}
	defer checker.close()
	b.res.checker = checker
	checkCtx, stopChecks := context.WithCancel(ctx)
	var checks sync.WaitGroup
	defer func() {
		stopChecks()
		checks.Wait()
	}()
	checks.Go(func() { checker.run(checkCtx, b.opts.lease/3, probeLock) })

	if err := b.create(ctx); err != nil {
		return b.res, err
	}
	if err := b.hold(ctx); err != nil {
		return b.res, err
	}
	stopChecks()
	checks.Wait()
	if err := b.drain(ctx); err != nil {
		return b.res, err
	}
	return b.res, b.calibrate(ctx)
}

// calibrate measures the least API work a handoff can cost, with nothing
// else going on: the manager is paused (SIGSTOP) and the driver deletes a
// pod and patches a lock's status, b.opts.calibrate times, as fast as the
// API server allows. It bounds the handoffs per second any controller that
// writes status once per handoff can reach on this API server.
func (b *bench) calibrate(ctx context.Context) error {
	n := b.opts.calibrate
	if n == 0 {
		return nil
	}
	proc := b.env.manager.Process
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pausing the manager: %w", err)
	}
	defer func() { _ = proc.Signal(syscall.SIGCONT) }()
	logf("calibration: manager paused; creating %d unlabelled pods", n)
	names := make([]string, n)
	tasks := make([]func(context.Context) error, n)
	for i := range n {
		names[i] = fmt.Sprintf("calibration-%05d", i)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: names[i]},
			Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "work", Image: "busybox"}}},
		}
		tasks[i] = func(ctx context.Context) error {
			return retry(ctx, func() error { return ignoreExists(b.c.Create(ctx, pod.DeepCopy())) })
		}
	}
	if err := runAll(ctx, b.opts.concurrency, tasks); err != nil {
		return fmt.Errorf("calibration: creating pods: %w", err)
	}
	for i := range n {
		lock := &locksv1alpha1.DistributedLock{ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: b.plan[i%len(b.plan)].name}}
		patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"status":{"waitingCount":%d}}`, i+1))
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: names[i]}}
		tasks[i] = func(ctx context.Context) error {
			if err := retry(ctx, func() error { return client.IgnoreNotFound(b.c.Delete(ctx, pod, client.GracePeriodSeconds(0))) }); err != nil {
				return err
			}
			return retry(ctx, func() error { return b.c.Status().Patch(ctx, lock, patch) })
		}
	}
	// The paused manager cannot be scraped: processes only.
	from := b.processSnapshot()
	err := runAll(ctx, b.opts.concurrency, tasks)
	b.res.calibration = window{from, b.processSnapshot()}
	b.res.calibrated = n
	if err != nil {
		return fmt.Errorf("calibration: %w", err)
	}
	logf("calibration: %d pairs in %v", n, b.res.calibration.dur().Round(time.Millisecond))
	return nil
}

// startWatches watches the namespace's locks, pods and Events.
func (b *bench) startWatches(ctx context.Context, wg *sync.WaitGroup) error {
	var locks locksv1alpha1.DistributedLockList
	if err := b.c.List(ctx, &locks, client.InNamespace(b.ns)); err != nil {
		return fmt.Errorf("listing locks: %w", err)
	}
	pods, err := b.cs.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	events, err := b.cs.EventsV1().Events(b.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing events: %w", err)
	}
	wg.Go(func() {
		follow(ctx, b.t, "DistributedLocks", locks.ResourceVersion,
			func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
				return b.c.Watch(ctx, &locksv1alpha1.DistributedLockList{}, &client.ListOptions{Namespace: b.ns, Raw: &opts})
			}, b.t.observeLock)
	})
	if !b.opts.countWrites {
		return nil
	}
	wg.Go(func() {
		follow(ctx, b.t, "pods", pods.ResourceVersion,
			func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
				return b.cs.CoreV1().Pods(b.ns).Watch(ctx, opts)
			}, b.t.observePod)
	})
	wg.Go(func() {
		follow(ctx, b.t, "Events", events.ResourceVersion,
			func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
				return b.cs.EventsV1().Events(b.ns).Watch(ctx, opts)
			}, b.t.observeEvent)
	})
	return nil
}

// create makes every lock, then every pod (round robin over the locks, so
// that each lock is granted early and the rest of the burst arrives while
// holds are being renewed), each pod reported Running at once; then waits
// until every lock has a holder.
func (b *bench) create(ctx context.Context) error {
	r := b.res
	r.start = b.snapshot(ctx)
	logf("creating %d locks and %d pods in namespace %s, %d requests at a time", len(b.plan), b.totalPods(), b.ns, b.opts.concurrency)
	tasks := make([]func(context.Context) error, 0, len(b.plan)+b.totalPods())
	for _, p := range b.plan {
		tasks = append(tasks, func(ctx context.Context) error { return b.createLock(ctx, p) })
	}
	if err := runAll(ctx, b.opts.concurrency, tasks); err != nil {
		return fmt.Errorf("creating locks: %w", err)
	}
	tasks = tasks[:0]
	for i := 0; ; i++ {
		n := len(tasks)
		for _, p := range b.plan {
			if i < p.pods {
				name := fmt.Sprintf("%s-%03d", p.name, i)
				tasks = append(tasks, func(ctx context.Context) error { return b.createPod(ctx, p.name, name) })
			}
		}
		if len(tasks) == n {
			break
		}
	}
	if err := runAll(ctx, b.opts.concurrency, tasks); err != nil {
		return fmt.Errorf("creating pods: %w", err)
	}
	r.created = time.Since(r.start.at)
	logf("created everything in %v (%.0f pods/s)", r.created.Round(time.Millisecond), float64(b.totalPods())/r.created.Seconds())

	waitCtx, cancel := context.WithTimeout(ctx, max(2*time.Minute, time.Duration(b.totalPods())*20*time.Millisecond))
	defer cancel()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	err := b.t.waitFor(waitCtx, func() bool {
		select {
		case <-progress.C:
			logf("%d of %d locks held", b.t.heldCountLocked(), len(b.plan))
		default:
		}
		return b.t.allHeldLocked()
	})
	if err != nil {
		return fmt.Errorf("waiting until every lock is held: %w", err)
	}
	r.allHeld = time.Since(r.start.at)
	logf("every lock held %v after the first create", r.allHeld.Round(time.Millisecond))
	return nil
}

func (b *bench) totalPods() int {
	n := 0
	for _, p := range b.plan {
		n += p.pods
	}
	return n
}

func (b *bench) createLock(ctx context.Context, p lockPlan) error {
	lock := &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: p.name},
		Spec:       locksv1alpha1.DistributedLockSpec{LeaseDuration: &metav1.Duration{Duration: b.opts.lease}},
	}
	switch p.backend {
	case backendZooKeeper:
		lock.Spec.Backend.ZooKeeper = &locksv1alpha1.ZooKeeperBackend{Servers: b.env.zk.Servers()}
	default:
		lock.Spec.Backend.Redis = &locksv1alpha1.RedisBackend{Address: b.env.redis.Addr}
	}
	return retry(ctx, func() error { return ignoreExists(b.c.Create(ctx, lock)) })
}

func (b *bench) createPod(ctx context.Context, lock, name string) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: name, Labels: map[string]string{locksv1alpha1.LockLabel: lock}},
		Spec: corev1.PodSpec{
			NodeName:   nodeName,
			Containers: []corev1.Container{{Name: "work", Image: "busybox"}},
		},
	}
	if err := retry(ctx, func() error { return ignoreExists(b.c.Create(ctx, pod.DeepCopy())) }); err != nil {
		return err
	}
	running := client.RawPatch(types.MergePatchType, []byte(`{"status":{"phase":"Running"}}`))
	return retry(ctx, func() error { return b.c.Status().Patch(ctx, pod, running) })
}

// hold keeps every lock held, idle, for opts.hold, then hands the probe
// lock over opts.samples times while every other lock stays held.
func (b *bench) hold(ctx context.Context) error {
	r := b.res
	b.t.setPhase(phaseHold)
	logf("hold: every lock held and idle for %v", b.opts.hold)
	r.idleFrom = b.snapshot(ctx)
	profiled := b.profile(ctx, "hold", min(b.opts.hold, profileLength))
	select {
	case <-ctx.Done():
		return fmt.Errorf("holding: %w", ctx.Err())
	case <-time.After(b.opts.hold):
	}
	r.idleTo = b.snapshot(ctx)
	profiled()

	b.t.setPhase(phaseProbe)
	logf("hold: %d handoffs of lock %q while the others are held", b.opts.samples, probeLock)
	for i := range b.opts.samples {
		// Spread the handoffs out, off any period of the controller's.
		time.Sleep(200*time.Millisecond + rand.N(100*time.Millisecond))
		if err := b.probeOnce(ctx); err != nil {
			return fmt.Errorf("single-lock handoff %d: %w", i+1, err)
		}
		if (i+1)%10 == 0 {
			lat := b.t.latencies(phaseProbe)
			logf("hold: %d single-lock handoffs, slowest %v", i+1, lat[len(lat)-1].Round(time.Millisecond))
		}
	}
	r.probeTo = b.snapshot(ctx)
	return nil
}

// probeOnce deletes the probe lock's holder and waits until the next one
// holds.
func (b *bench) probeOnce(ctx context.Context) error {
	h := b.t.holder(probeLock)
	if h.uid == "" {
		return errors.New("the probe lock has no holder")
	}
	b.t.markDeleted(probeLock, h.uid, true)
	if err := b.deletePod(ctx, h.pod, h.uid); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return b.t.waitFor(ctx, func() bool {
		cur := b.t.locks[probeLock].holder
		return cur.uid != "" && cur.uid != h.uid
	})
}

func (b *bench) deletePod(ctx context.Context, name string, uid types.UID) error {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: name}}
	return retry(ctx, func() error {
		err := b.c.Delete(ctx, pod, client.GracePeriodSeconds(0), client.Preconditions{UID: &uid})
		return client.IgnoreNotFound(err)
	})
}

// drain deletes every holder as soon as it holds, until every pod is gone
// and no lock has a holder.
func (b *bench) drain(ctx context.Context) error {
	r := b.res
	b.t.setPhase(phaseDrain)
	r.drainFrom = b.snapshot(ctx)
	defer b.profile(ctx, "drain", profileLength)()
	logf("drain: deleting every holder as soon as it holds (%d handoffs to go)", b.totalPods()-len(b.plan)-b.opts.samples)

	ch := make(chan holderEvent, b.totalPods()+len(b.plan))
	for _, ev := range b.t.startDrain(ch) {
		ch <- ev
	}
	dctx, stop := context.WithCancel(ctx)
	var workers sync.WaitGroup
	var mu sync.Mutex
	var deleteErr error
	for range b.opts.concurrency {
		workers.Go(func() {
			for {
				select {
				case <-dctx.Done():
					return
				case ev := <-ch:
					b.t.markDeleted(ev.lock, ev.uid, true)
					if err := b.deletePod(dctx, ev.pod, ev.uid); err != nil && dctx.Err() == nil {
						mu.Lock()
						deleteErr = errors.Join(deleteErr, err)
						mu.Unlock()
					}
				}
			}
		})
	}
	waitCtx, cancel := context.WithTimeout(ctx, max(5*time.Minute, time.Duration(b.totalPods())*100*time.Millisecond))
	defer cancel()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	err := b.t.waitFor(waitCtx, func() bool {
		select {
		case <-progress.C:
			logf("drain: %d handoffs so far", len(b.t.samples))
		default:
		}
		return b.t.drainedLocked()
	})
	r.drained = time.Since(r.drainFrom.at)
	stop()
	workers.Wait()
	b.t.startDrain(nil)
	if err != nil {
		r.drainTo = b.snapshot(ctx)
		return errors.Join(fmt.Errorf("waiting until every queue is empty: %w", err), deleteErr)
	}
	logf("drain: every queue empty after %v", r.drained.Round(time.Millisecond))
	// Let the last Events and status writes land before the last look.
	time.Sleep(2 * time.Second)
	r.drainTo = b.snapshot(ctx)
	return deleteErr
}

// runAll runs tasks, n at a time, and returns the first error (which stops
// the rest).
func runAll(ctx context.Context, n int, tasks []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan func(context.Context) error)
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for task := range work {
				if err := task(ctx); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		})
	}
	for _, task := range tasks {
		select {
		case work <- task:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// retry calls fn until it succeeds, fails for good, or has failed 5 times
// with errors that say "try again" (an API server under load).
func retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range 5 {
		if err = fn(); err == nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
	return err
}

func transient(err error) bool {
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsConflict(err)
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
