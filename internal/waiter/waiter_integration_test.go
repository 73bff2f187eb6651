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

package waiter

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// The pod the waiter runs in, in every test.
const me = "report-me"

func TestWaiterAgainstTheAPIServer(t *testing.T) {
	type step func(ctx context.Context, t *testing.T, ns string, rw *runningWaiter)

	tests := map[string]struct {
		// initial is the lock's status when the waiter starts; nil: no lock.
		initial *locksv1alpha1.DistributedLockStatus
		timeout time.Duration
		// then runs while the waiter waits.
		then step
		// wantLines are the lines on stdout ("%s" is the lock's namespace).
		wantLines []string
		wantCode  int
		// wantMessage is the error's message; wantToken the token file's
		// content ("" for no file).
		wantMessage string
		wantToken   string
	}{
		"a pod that already holds the lock is granted at once and gets its token": {
			initial: &locksv1alpha1.DistributedLockStatus{
				Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder(me, 42, false)},
			},
			wantLines: []string{"granted lock %s/nightly-report to pod report-me: fencing token 42"},
			wantToken: "42\n",
		},
		"a waiting pod reports each new position, then the grant": {
			initial: &locksv1alpha1.DistributedLockStatus{
				Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder("report-abc", 7, false)},
				Waiting: waiting("report-def", me), WaitingCount: 2,
			},
			then: func(ctx context.Context, t *testing.T, ns string, rw *runningWaiter) {
				rw.stdout.waitFor(t, "waiting for lock "+ns+"/nightly-report (redis): position 2 of 2, held by pod report-abc")
				// A renewal-like write that changes nothing the waiter shows
				// prints nothing.
				setStatus(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
					Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder("report-abc", 7, false)},
					Waiting: waiting("report-def", me), WaitingCount: 2, ObservedGeneration: 1,
				})
				setStatus(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
					Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder("report-def", 8, false)},
					Waiting: waiting(me), WaitingCount: 1,
				})
				rw.stdout.waitFor(t, "waiting for lock "+ns+"/nightly-report (redis): position 1 of 1, held by pod report-def")
				setStatus(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
					Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder(me, 9, false)},
				})
			},
			wantLines: []string{
				"waiting for lock %s/nightly-report (redis): position 2 of 2, held by pod report-abc",
				"waiting for lock %s/nightly-report (redis): position 1 of 1, held by pod report-def",
				"granted lock %s/nightly-report to pod report-me: fencing token 9",
			},
			wantToken: "9\n",
		},
		"a missing lock is waited for, then created and granted": {
			then: func(ctx context.Context, t *testing.T, ns string, rw *runningWaiter) {
				rw.stdout.waitFor(t, "lock "+ns+"/nightly-report does not exist yet; waiting for it to be created")
				createLock(ctx, t, ns, locksv1alpha1.DistributedLockStatus{})
				rw.stdout.waitFor(t, "waiting for lock "+ns+"/nightly-report (redis): not in the queue yet (0 waiting), not held by any pod")
				setStatus(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
					Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder(me, 1, false)},
				})
			},
			wantLines: []string{
				"lock %s/nightly-report does not exist yet; waiting for it to be created",
				"waiting for lock %s/nightly-report (redis): not in the queue yet (0 waiting), not held by any pod",
				"granted lock %s/nightly-report to pod report-me: fencing token 1",
			},
			wantToken: "1\n",
		},
		"a lock deleted while the pod waits is waited for again": {
			initial: &locksv1alpha1.DistributedLockStatus{
				Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder("report-abc", 3, false)},
				Waiting: waiting(me), WaitingCount: 1,
			},
			then: func(ctx context.Context, t *testing.T, ns string, rw *runningWaiter) {
				rw.stdout.waitFor(t, "waiting for lock "+ns+"/nightly-report (redis): position 1 of 1, held by pod report-abc")
				lock := &locksv1alpha1.DistributedLock{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: testLock}}
				if err := k8sClient.Delete(ctx, lock); err != nil {
					t.Fatalf("deleting the lock: %v", err)
				}
				rw.stdout.waitFor(t, "lock "+ns+"/nightly-report does not exist yet; waiting for it to be created")
				createLock(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
					Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder(me, 1, false)},
				})
			},
			wantLines: []string{
				"waiting for lock %s/nightly-report (redis): position 1 of 1, held by pod report-abc",
				"lock %s/nightly-report does not exist yet; waiting for it to be created",
				"waiting for lock %s/nightly-report (redis): not in the queue yet (0 waiting), not held by any pod",
				"granted lock %s/nightly-report to pod report-me: fencing token 1",
			},
			wantToken: "1\n",
		},
		"a pod still waiting when the timeout expires exits with code 3 and its position": {
			initial: &locksv1alpha1.DistributedLockStatus{
				Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder("report-abc", 7, false)},
				Waiting: waiting("report-def", me, "report-ghi"), WaitingCount: 3,
			},
			timeout: 2 * time.Second,
			wantLines: []string{
				"waiting for lock %s/nightly-report (redis): position 2 of 3, held by pod report-abc",
			},
			wantCode:    ExitTimeout,
			wantMessage: "timed out after 2s waiting for lock %s/nightly-report; position 2 of 3",
		},
		"a timeout while the lock does not exist says so": {
			timeout: 2 * time.Second,
			wantLines: []string{
				"lock %s/nightly-report does not exist yet; waiting for it to be created",
			},
			wantCode:    ExitTimeout,
			wantMessage: "timed out after 2s waiting for lock %s/nightly-report; the lock does not exist",
		},
		"a pod whose hold was lost exits with code 4 and writes no token": {
			initial: &locksv1alpha1.DistributedLockStatus{
				Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder(me, 5, true)},
			},
			wantCode: ExitLost,
			wantMessage: "lost lock %s/nightly-report: the controller recorded the hold of pod report-me (fencing token 5) as lost; " +
				"this pod must not do the work the lock protects, and the lock will not be granted to it again",
		},
		"a pod whose hold was taken away before its waiter started exits with code 4 instead of waiting forever": {
			initial: &locksv1alpha1.DistributedLockStatus{
				Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder("report-next", 6, false)},
				Revoked: []locksv1alpha1.RevokedPod{{Pod: me, PodUID: uid(me), FencingToken: 5, Reason: locksv1alpha1.ReasonBroken}},
			},
			wantCode: ExitLost,
			wantMessage: "lost lock %s/nightly-report: the hold of pod report-me (fencing token 5) was taken away (Broken); " +
				"this pod must not do the work the lock protects, and the lock will not be granted to it again",
		},
		"a hold lost while the pod waits ends the wait with code 4": {
			initial: &locksv1alpha1.DistributedLockStatus{
				Backend: "zookeeper", Holders: []locksv1alpha1.LockHolder{holder("report-abc", 7, true)},
				Waiting: waiting(me), WaitingCount: 1,
			},
			then: func(ctx context.Context, t *testing.T, ns string, rw *runningWaiter) {
				rw.stdout.waitFor(t, "waiting for lock "+ns+"/nightly-report (zookeeper): position 1 of 1, held by pod report-abc (hold lost)")
				setStatus(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
					Backend: "zookeeper", Holders: []locksv1alpha1.LockHolder{holder(me, 8, true)},
				})
			},
			wantLines: []string{
				"waiting for lock %s/nightly-report (zookeeper): position 1 of 1, held by pod report-abc (hold lost)",
			},
			wantCode: ExitLost,
			wantMessage: "lost lock %s/nightly-report: the controller recorded the hold of pod report-me (fencing token 8) as lost; " +
				"this pod must not do the work the lock protects, and the lock will not be granted to it again",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			ns := newTestNamespace(ctx, t)
			if tc.initial != nil {
				createLock(ctx, t, ns, *tc.initial)
			}
			opts := optionsFor(t, ns, me)
			opts.Timeout = tc.timeout
			rw := startWaiter(t, newWaiterClient(t, cfg), opts)
			if tc.then != nil {
				tc.then(ctx, t, ns, rw)
			}
			err := rw.result(t)

			if got := ExitCode(err); got != tc.wantCode {
				t.Fatalf("exit code %d (%v), want %d; stdout:\n%s\nstderr:\n%s", got, err, tc.wantCode, rw.stdout, rw.stderr)
			}
			if tc.wantMessage != "" {
				if want := sprintfNS(tc.wantMessage, ns); err.Error() != want {
					t.Errorf("message:\n got %q\nwant %q", err.Error(), want)
				}
			}
			wantLines := make([]string, 0, len(tc.wantLines))
			for _, l := range tc.wantLines {
				wantLines = append(wantLines, sprintfNS(l, ns))
			}
			gotLines, _ := rw.stdout.snapshot()
			if diff := cmp.Diff(wantLines, gotLines, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			token, err := os.ReadFile(opts.TokenFile)
			switch {
			case tc.wantToken == "" && !errors.Is(err, os.ErrNotExist):
				t.Errorf("token file: want none, got %q (%v)", token, err)
			case tc.wantToken != "" && (err != nil || string(token) != tc.wantToken):
				t.Errorf("token file: got %q (%v), want %q", token, err, tc.wantToken)
			}
		})
	}
}

// sprintfNS puts the namespace ns in place of every %s of format.
func sprintfNS(format, ns string) string { return strings.ReplaceAll(format, "%s", ns) }

// The server ends every watch after its timeoutSeconds; the waiter must
// open the next watch from where the last one ended and still see the
// grant.
func TestWaiterWatchesAgainWhenTheServerClosesTheWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ns := newTestNamespace(ctx, t)
	createLock(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
		Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder("report-abc", 7, false)},
		Waiting: waiting(me), WaitingCount: 1,
	})
	watches := make(chan string, 100)
	opts := optionsFor(t, ns, me)
	opts.WatchTimeout = time.Second
	opts.onWatch = func(rv string) { watches <- rv }
	rw := startWaiter(t, newWaiterClient(t, cfg), opts)

	// Three watches: the server closed the first two.
	var rvs []string
	for len(rvs) < 3 {
		select {
		case rv := <-watches:
			rvs = append(rvs, rv)
		case <-ctx.Done():
			t.Fatalf("the waiter opened only %d watches (from resourceVersions %v); stderr:\n%s", len(rvs), rvs, rw.stderr)
		}
	}
	if slices.Contains(rvs, "") {
		t.Errorf("a watch started from no resourceVersion (%q): it would replay the lock instead of resuming", rvs)
	}
	setStatus(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
		Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder(me, 8, false)},
	})
	if err := rw.result(t); err != nil {
		t.Fatalf("the waiter failed: %v; stderr:\n%s", err, rw.stderr)
	}
	want := []string{
		"waiting for lock " + ns + "/nightly-report (redis): position 1 of 1, held by pod report-abc",
		"granted lock " + ns + "/nightly-report to pod report-me: fencing token 8",
	}
	got, _ := rw.stdout.snapshot()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if got := rw.stderr.String(); got != "" {
		t.Errorf("closed watches are routine and report nothing, but stderr has:\n%s", got)
	}
}

// A watch from a resourceVersion the server no longer has fails with 410
// Gone ("too old resource version"); the waiter must list again and watch
// from the new resourceVersion.
func TestWaiterListsAgainWhenTheResourceVersionExpired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ns := newTestNamespace(ctx, t)
	createLock(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
		Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder("report-abc", 7, false)},
		Waiting: waiting(me), WaitingCount: 1,
	})

	// The server really answers 410 for a watch from resourceVersion 1.
	w, err := newWaiterClient(t, cfg).Watch(ctx, &locksv1alpha1.DistributedLockList{},
		&client.ListOptions{Namespace: ns, Raw: &metav1.ListOptions{ResourceVersion: "1"}})
	if err == nil {
		select {
		case ev := <-w.ResultChan():
			err = apierrors.FromObject(ev.Object)
		case <-ctx.Done():
			err = ctx.Err()
		}
		w.Stop()
	}
	if !isExpired(err) {
		t.Fatalf("a watch from resourceVersion 1 gave %v, not 410 Gone: this test cannot make the server expire a watch", err)
	}

	watches := make(chan string, 100)
	opts := optionsFor(t, ns, me)
	opts.firstWatchFrom = "1"
	opts.onWatch = func(rv string) { watches <- rv }
	rw := startWaiter(t, newWaiterClient(t, cfg), opts)
	var rvs []string
	for len(rvs) < 2 {
		select {
		case rv := <-watches:
			rvs = append(rvs, rv)
		case <-ctx.Done():
			t.Fatalf("the waiter opened only %d watches (from resourceVersions %v); stderr:\n%s", len(rvs), rvs, rw.stderr)
		}
	}
	if rvs[0] != "1" || rvs[1] == "1" || rvs[1] == "" {
		t.Fatalf("watches from resourceVersions %q: want the first from 1, the next from a new list", rvs)
	}
	setStatus(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
		Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder(me, 8, false)},
	})
	if err := rw.result(t); err != nil {
		t.Fatalf("the waiter failed: %v; stderr:\n%s", err, rw.stderr)
	}
	want := []string{
		"waiting for lock " + ns + "/nightly-report (redis): position 1 of 1, held by pod report-abc",
		"granted lock " + ns + "/nightly-report to pod report-me: fencing token 8",
	}
	got, _ := rw.stdout.snapshot()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
}
