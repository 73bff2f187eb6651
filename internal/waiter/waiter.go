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

// Package waiter is the logic of the init container that gates a pod on a
// DistributedLock: it watches the one lock until the controller records the
// pod as its holder, writes the fencing token to a file the pod's other
// containers read, and exits 0. It reports its place in the queue while it
// waits, and exits with a distinct code when it times out or when the
// controller records the pod's hold as lost.
//
// The waiter needs only get, list and watch on distributedlocks in the pod's
// namespace (config/waiter). It never polls: it lists the lock once, then
// watches it from that resourceVersion, re-watching when the server closes
// a watch and re-listing when the resourceVersion has expired (410 Gone).
package waiter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

const (
	// defaultWatchTimeout is how long one watch request stays open unless
	// Options.WatchTimeout says otherwise.
	defaultWatchTimeout = 5 * time.Minute
	// listTimeout bounds one list request.
	listTimeout = 30 * time.Second
	// minBackoff and maxBackoff bound the wait between failed requests; the
	// wait doubles with each failure in a row.
	minBackoff = 200 * time.Millisecond
	maxBackoff = 30 * time.Second
	// quickClose is how soon a watch that delivered nothing must not end:
	// a server (or proxy) that closes watches at once is treated as failing,
	// so the waiter backs off instead of spinning.
	quickClose = 500 * time.Millisecond
)

// NewClient returns a client for cfg that knows the DistributedLock type and
// can watch.
func NewClient(cfg *rest.Config) (client.WithWatch, error) {
	scheme := runtime.NewScheme()
	if err := locksv1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("registering the DistributedLock type: %w", err)
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: scheme})
}

// Run waits until the lock opts.Lock is granted to the pod opts.PodUID,
// printing one line to stdout each time the pod's place in the queue
// changes, and one when the lock is granted. On a grant it writes the
// fencing token to opts.TokenFile and returns nil. Otherwise it returns an
// *ExitError: ExitTimeout when opts.Timeout expires, ExitLost when the
// controller recorded this pod's hold as lost, ExitFailed when ctx is
// cancelled or the token file cannot be written. Errors talking to the API
// server are retried with a bounded backoff and reported on stderr when
// they change.
func Run(ctx context.Context, c client.WithWatch, opts Options, stdout, stderr io.Writer) error {
	if err := opts.validate(); err != nil {
		return err
	}
	if opts.WatchTimeout == 0 {
		opts.WatchTimeout = defaultWatchTimeout
	}
	w := &waiter{c: c, opts: opts, stdout: stdout, stderr: stderr, ref: opts.Namespace + "/" + opts.Lock}
	waitCtx := ctx
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	err := w.wait(waitCtx)
	if _, isExit := errors.AsType[*ExitError](err); err == nil || isExit {
		return err
	}
	switch {
	case ctx.Err() != nil:
		return &ExitError{Code: ExitFailed, Message: fmt.Sprintf("stopped while waiting for lock %s (%v); %s",
			w.ref, context.Cause(ctx), w.summary())}
	case waitCtx.Err() != nil:
		return &ExitError{Code: ExitTimeout, Message: fmt.Sprintf("timed out after %v waiting for lock %s; %s",
			opts.Timeout, w.ref, w.summary())}
	default:
		return &ExitError{Code: ExitFailed, Message: fmt.Sprintf("waiting for lock %s: %v", w.ref, err)}
	}
}

// waiter is the state of one Run.
type waiter struct {
	c              client.WithWatch
	opts           Options
	stdout, stderr io.Writer
	// ref is "namespace/name" of the lock, as printed.
	ref string

	// rv is the resourceVersion to watch from; empty means list first.
	rv string
	// watched is set once the first watch was opened.
	watched bool
	// failures counts failed requests since the last healthy watch.
	failures int
	// lastErr is the last failure; lastReported the text last printed.
	lastErr      error
	lastReported string

	// seen is set once the waiter has read the lock (or learnt it is
	// missing); missing tells which; place is the pod's last known place
	// in the queue; lastLine the last line printed.
	seen     bool
	missing  bool
	place    string
	lastLine string
}

// wait lists and watches until the lock is granted (nil), a final
// *ExitError, or ctx ends (ctx.Err()).
func (w *waiter) wait(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if w.rv == "" {
			done, err := w.list(ctx)
			if done {
				return err
			}
			if err != nil {
				if err := w.backOff(ctx, err); err != nil {
					return err
				}
				continue
			}
		}
		done, err := w.watchOnce(ctx)
		switch {
		case done:
			return err
		case err == nil:
			// The server closed the watch as agreed: watch again from the
			// last resourceVersion seen.
		case isExpired(err):
			// Our resourceVersion is too old to watch from: list again. A
			// first expiry after a healthy watch is routine, so list at
			// once; expiries in a row back off like any failure.
			w.rv = ""
			if w.failures == 0 {
				w.failures++
				continue
			}
			if err := w.backOff(ctx, err); err != nil {
				return err
			}
		default:
			if err := w.backOff(ctx, err); err != nil {
				return err
			}
		}
	}
}

// list reads the lock and the resourceVersion to watch from. done reports
// that the wait is over, with err as its result.
func (w *waiter) list(ctx context.Context) (done bool, err error) {
	listCtx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	var locks locksv1alpha1.DistributedLockList
	if err := w.c.List(listCtx, &locks, client.InNamespace(w.opts.Namespace),
		client.MatchingFields{"metadata.name": w.opts.Lock}); err != nil {
		return false, fmt.Errorf("listing: %w", err)
	}
	if len(locks.Items) == 0 {
		w.observeMissing()
	} else if done, err := w.observe(&locks.Items[0]); done {
		return true, err
	}
	w.rv = locks.ResourceVersion
	return false, nil
}

// watchOnce watches the lock from w.rv until the server closes the watch,
// an error, or the end of the wait. done reports that the wait is over, with
// err as its result; otherwise err is nil when the server closed the watch
// normally.
func (w *waiter) watchOnce(ctx context.Context) (done bool, err error) {
	from := w.rv
	if !w.watched && w.opts.firstWatchFrom != "" {
		from = w.opts.firstWatchFrom
	}
	w.watched = true
	if w.opts.onWatch != nil {
		w.opts.onWatch(from)
	}
	timeoutSeconds := max(int64(w.opts.WatchTimeout/time.Second), 1)
	started := time.Now()
	watcher, err := w.c.Watch(ctx, &locksv1alpha1.DistributedLockList{},
		client.InNamespace(w.opts.Namespace),
		client.MatchingFields{"metadata.name": w.opts.Lock},
		&client.ListOptions{Raw: &metav1.ListOptions{
			ResourceVersion:     from,
			AllowWatchBookmarks: true,
			TimeoutSeconds:      &timeoutSeconds,
		}})
	if err != nil {
		return false, fmt.Errorf("watching: %w", err)
	}
	defer watcher.Stop()
	events := 0
	for {
		var ev watch.Event
		var open bool
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case ev, open = <-watcher.ResultChan():
		}
		if !open {
			if events == 0 && time.Since(started) < quickClose {
				return false, errors.New("watching: the API server closed the watch at once")
			}
			w.failures = 0
			return false, nil
		}
		if ev.Type == watch.Error {
			return false, fmt.Errorf("watching: %w", apierrors.FromObject(ev.Object))
		}
		if m, err := meta.Accessor(ev.Object); err == nil && m.GetResourceVersion() != "" {
			w.rv = m.GetResourceVersion()
		}
		events++
		w.failures = 0
		switch ev.Type {
		case watch.Added, watch.Modified:
			lock, ok := ev.Object.(*locksv1alpha1.DistributedLock)
			if !ok {
				return false, fmt.Errorf("watching: unexpected %T in a %s event", ev.Object, ev.Type)
			}
			if done, err := w.observe(lock); done {
				return true, err
			}
		case watch.Deleted:
			w.observeMissing()
		}
	}
}

// isExpired tells whether err means the resourceVersion can no longer be
// watched from (410 Gone, "too old resource version").
func isExpired(err error) bool {
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}

// backOff records a failed request, reports it on stderr if it differs
// from the last one reported, and sleeps before the next attempt. It
// returns ctx.Err() if ctx ends first.
func (w *waiter) backOff(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		// The failure is the end of the wait, not a reason to retry.
		return ctx.Err()
	}
	w.failures++
	w.lastErr = err
	delay := minBackoff
	for i := 1; i < w.failures && delay < maxBackoff; i++ {
		delay *= 2
	}
	delay = wait.Jitter(min(delay, maxBackoff), 0.2)
	if msg := err.Error(); msg != w.lastReported {
		w.lastReported = msg
		fmt.Fprintf(w.stderr, "error reading lock %s (retrying, next in %v): %v\n", w.ref, delay.Round(time.Millisecond), err)
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// observe judges one state of the lock. done reports that the wait is over,
// with err as its result: nil when the lock was granted to this pod and the
// token file written.
func (w *waiter) observe(lock *locksv1alpha1.DistributedLock) (done bool, err error) {
	w.seen, w.missing = true, false
	v := judge(lock, w.opts.PodUID)
	if rv := v.revoked; rv != nil {
		return true, &ExitError{Code: ExitLost, Message: fmt.Sprintf(
			"lost lock %s: the hold of pod %s (fencing token %d) was taken away (%s); "+
				"this pod must not do the work the lock protects, and the lock will not be granted to it again",
			w.ref, rv.Pod, rv.FencingToken, rv.Reason)}
	}
	if h := v.holder; h != nil {
		if h.Lost {
			return true, &ExitError{Code: ExitLost, Message: fmt.Sprintf(
				"lost lock %s: the controller recorded the hold of pod %s (fencing token %d) as lost; "+
					"this pod must not do the work the lock protects, and the lock will not be granted to it again",
				w.ref, h.Pod, h.FencingToken)}
		}
		if err := writeTokenFile(w.opts.TokenFile, h.FencingToken); err != nil {
			return true, &ExitError{Code: ExitFailed, Message: fmt.Sprintf(
				"lock %s was granted to pod %s with fencing token %d, but the token file could not be written: %v",
				w.ref, h.Pod, h.FencingToken, err)}
		}
		w.say(fmt.Sprintf("granted lock %s to pod %s: fencing token %d", w.ref, h.Pod, h.FencingToken))
		return true, nil
	}
	w.place = v.position
	w.say(fmt.Sprintf("waiting for lock %s (%s): %s, %s", w.ref, v.backend, v.position, v.heldBy))
	return false, nil
}

// observeMissing notes that the lock does not exist (yet, or any more).
func (w *waiter) observeMissing() {
	w.seen, w.missing = true, true
	w.say(fmt.Sprintf("lock %s does not exist yet; waiting for it to be created", w.ref))
}

// say prints line unless it is the line printed last.
func (w *waiter) say(line string) {
	if line == w.lastLine {
		return
	}
	w.lastLine = line
	fmt.Fprintf(w.stdout, "%s\n", line)
}

// summary says where the wait stands, for the message that ends it.
func (w *waiter) summary() string {
	switch {
	case !w.seen && w.lastErr != nil:
		return fmt.Sprintf("no answer from the API server yet: %v", w.lastErr)
	case !w.seen:
		return "no answer from the API server yet"
	case w.missing:
		return "the lock does not exist"
	default:
		return w.place
	}
}
