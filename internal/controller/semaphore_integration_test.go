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
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	redisbackend "github.com/distlock/distlock/internal/backend/redis"
)

// withMaxHolders makes a lock a semaphore of n.
func withMaxHolders(n int32) func(*locksv1alpha1.DistributedLock) {
	return func(l *locksv1alpha1.DistributedLock) { l.Spec.MaxHolders = n }
}

// holdersAre reports whether exactly the named pods hold the lock, none of
// them lost.
func holdersAre(pods ...string) func(*locksv1alpha1.DistributedLock) bool {
	return func(l *locksv1alpha1.DistributedLock) bool {
		var got []string
		for _, h := range l.Status.Holders {
			if h.Lost {
				return false
			}
			got = append(got, h.Pod)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(pods))
		return slices.Equal(got, want)
	}
}

// tokensOf returns the fencing tokens of the holders, by pod.
func tokensOf(l *locksv1alpha1.DistributedLock) map[string]int64 {
	m := map[string]int64{}
	for _, h := range l.Status.Holders {
		m[h.Pod] = h.FencingToken
	}
	return m
}

// setMaxHolders changes spec.maxHolders of a lock.
func setMaxHolders(ctx context.Context, t *testing.T, ns, name string, n int32) {
	t.Helper()
	var lock locksv1alpha1.DistributedLock
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &lock); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(lock.DeepCopy())
	lock.Spec.MaxHolders = n
	if err := k8sClient.Patch(ctx, &lock, patch); err != nil {
		t.Fatalf("setting maxHolders of %s to %d: %v", name, n, err)
	}
}

// newPodsInOrder creates running pods one second apart: creation
// timestamps have a resolution of one second, and creation order (not name
// order) must decide the line.
func newPodsInOrder(ctx context.Context, t *testing.T, ns, lockName string, names ...string) []*corev1.Pod {
	t.Helper()
	var pods []*corev1.Pod
	for i, name := range names {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // distinct creation timestamps are the input under test
		}
		pods = append(pods, newPod(ctx, t, ns, name, lockName))
	}
	return pods
}

func TestASemaphoreGrantsMaxHoldersPodsInOrderEachWithItsOwnToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "db", bc, withMaxHolders(2))
		pods := newPodsInOrder(ctx, t, ns, "db", "d-first", "c-second", "b-third", "a-fourth")

		lock := waitLock(ctx, t, ns, "db", "held by the two oldest pods, two waiting", func(l *locksv1alpha1.DistributedLock) bool {
			return holdersAre("d-first", "c-second")(l) && l.Status.WaitingCount == 2 && l.Status.Holding == "2/2" &&
				heldReason(locksv1alpha1.ReasonGranted)(l)
		})
		if got := []string{lock.Status.Waiting[0].Pod, lock.Status.Waiting[1].Pod}; !slices.Equal(got, []string{"b-third", "a-fourth"}) {
			t.Errorf("waiting = %v; want b-third, a-fourth", got)
		}
		first := tokensOf(lock)
		if first["d-first"] == first["c-second"] {
			t.Errorf("the two holders share fencing token %d", first["d-first"])
		}
		if n := bc.holds(t, lock.Status.Key); n != 2 {
			t.Errorf("the backend has %d holds; want 2", n)
		}

		setPhase(ctx, t, pods[0], corev1.PodSucceeded)
		lock = waitLock(ctx, t, ns, "db", "a permit passed to b-third", holdersAre("c-second", "b-third"))
		if tok := tokensOf(lock)["b-third"]; tok <= max(first["d-first"], first["c-second"]) {
			t.Errorf("b-third's token %d is not above the earlier ones %v", tok, first)
		}
		if n := countEvents(ctx, t, ns, "Pod", "a-fourth", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("a-fourth was granted a permit while two pods held the lock")
		}
		setPhase(ctx, t, pods[1], corev1.PodSucceeded)
		setPhase(ctx, t, pods[2], corev1.PodSucceeded)
		waitLock(ctx, t, ns, "db", "held by a-fourth alone", func(l *locksv1alpha1.DistributedLock) bool {
			return holdersAre("a-fourth")(l) && l.Status.Holding == "1/2"
		})
		setPhase(ctx, t, pods[3], corev1.PodSucceeded)
		waitLock(ctx, t, ns, "db", "free", func(l *locksv1alpha1.DistributedLock) bool {
			return len(l.Status.Holders) == 0 && l.Status.Holding == "0/2" && heldReason(locksv1alpha1.ReasonFree)(l)
		})
		if n := bc.holds(t, lock.Status.Key); n != 0 {
			t.Errorf("the backend still has %d holds after every holder ended", n)
		}
	})
}

func TestMaxHoldersRaisedGrantsAtOnceAndLoweredEndsNoHold(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "db", bc, withMaxHolders(2))
		pods := newPodsInOrder(ctx, t, ns, "db", "p1", "p2", "p3", "p4", "p5")
		waitLock(ctx, t, ns, "db", "held by p1 and p2", holdersAre("p1", "p2"))

		// Raised: two more permits, granted without any release.
		setMaxHolders(ctx, t, ns, "db", 4)
		lock := waitLock(ctx, t, ns, "db", "held by four", func(l *locksv1alpha1.DistributedLock) bool {
			return holdersAre("p1", "p2", "p3", "p4")(l) && l.Status.Holding == "4/4"
		})
		before := tokensOf(lock)

		// Lowered below the holders: every running holder keeps its hold.
		setMaxHolders(ctx, t, ns, "db", 2)
		lock = waitLock(ctx, t, ns, "db", "still held by four, shown as 4/2", func(l *locksv1alpha1.DistributedLock) bool {
			return holdersAre("p1", "p2", "p3", "p4")(l) && l.Status.Holding == "4/2"
		})
		for pod, tok := range tokensOf(lock) {
			if before[pod] != tok {
				t.Errorf("%s's token changed from %d to %d when maxHolders was lowered", pod, before[pod], tok)
			}
		}
		// Two end: still two hold, which is the new limit: p5 waits.
		setPhase(ctx, t, pods[0], corev1.PodSucceeded)
		setPhase(ctx, t, pods[1], corev1.PodSucceeded)
		waitLock(ctx, t, ns, "db", "held by p3 and p4", func(l *locksv1alpha1.DistributedLock) bool {
			return holdersAre("p3", "p4")(l) && l.Status.WaitingCount == 1
		})
		if n := countEvents(ctx, t, ns, "Pod", "p5", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("p5 was granted a permit above the lowered limit")
		}
		setPhase(ctx, t, pods[2], corev1.PodSucceeded)
		waitLock(ctx, t, ns, "db", "p5 granted once fewer than 2 held", holdersAre("p4", "p5"))
		if n := bc.holds(t, lock.Status.Key); n != 2 {
			t.Errorf("the backend has %d holds; want 2", n)
		}
	})
}

func TestSwitchingBetweenMutexAndSemaphoreWaitsForTheOldHoldsToEnd(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "db", bc)
		pods := newPodsInOrder(ctx, t, ns, "db", "mutex-holder", "next-1", "next-2")
		waitLock(ctx, t, ns, "db", "held by mutex-holder", holdersAre("mutex-holder"))

		// A semaphore's permits are taken with another recipe: the mutex's
		// hold keeps them out until it ends, and then two are granted.
		setMaxHolders(ctx, t, ns, "db", 2)
		waitLock(ctx, t, ns, "db", "1/2 while the mutex hold lasts", func(l *locksv1alpha1.DistributedLock) bool {
			return holdersAre("mutex-holder")(l) && l.Status.Holding == "1/2"
		})
		if n := countEvents(ctx, t, ns, "Pod", "next-1", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("next-1 was granted a semaphore permit beside the mutex's hold")
		}
		setPhase(ctx, t, pods[0], corev1.PodSucceeded)
		waitLock(ctx, t, ns, "db", "both next pods hold", holdersAre("next-1", "next-2"))

		// And back: the mutex waits until both semaphore holds have ended.
		last := newPod(ctx, t, ns, "last", "db")
		setMaxHolders(ctx, t, ns, "db", 1)
		setPhase(ctx, t, pods[1], corev1.PodSucceeded)
		waitLock(ctx, t, ns, "db", "next-2 alone, last waits", func(l *locksv1alpha1.DistributedLock) bool {
			return holdersAre("next-2")(l) && l.Status.WaitingCount == 1
		})
		setPhase(ctx, t, pods[2], corev1.PodSucceeded)
		waitLock(ctx, t, ns, "db", "last holds the mutex", holdersAre("last"))
		setPhase(ctx, t, last, corev1.PodSucceeded)
	})
}

func TestAManagerRestartWhileASemaphoreIsFullKeepsItsHoldersAndGrantsNoMore(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		first := startController(t, ns)
		newLock(ctx, t, ns, "db", bc, withMaxHolders(2))
		pods := newPodsInOrder(ctx, t, ns, "db", "a", "b", "c")
		before := tokensOf(waitLock(ctx, t, ns, "db", "held by a and b", holdersAre("a", "b")))

		first.stop()
		startController(t, ns)
		// Past a whole lease: a hold the new manager failed to renew would
		// have expired, and a permit would have gone to c.
		time.Sleep(testLease + time.Second) // longer than the lease: the passage of time is under test
		lock := waitLock(ctx, t, ns, "db", "still held by a and b", holdersAre("a", "b"))
		for pod, tok := range tokensOf(lock) {
			if before[pod] != tok {
				t.Errorf("%s's hold changed across the restart: token %d, was %d", pod, tok, before[pod])
			}
		}
		if n := countEvents(ctx, t, ns, "Pod", "c", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("c was granted a permit while a and b held")
		}
		if n := bc.holds(t, lock.Status.Key); n != 2 {
			t.Errorf("the backend has %d holds; want 2", n)
		}
		setPhase(ctx, t, pods[0], corev1.PodSucceeded)
		waitLock(ctx, t, ns, "db", "a permit passed to c", holdersAre("b", "c"))
	})
}

// newPriorityClass creates a cluster-wide PriorityClass for the test.
func newPriorityClass(ctx context.Context, t *testing.T, name string, value int32) {
	t.Helper()
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value}
	if err := k8sClient.Create(ctx, pc); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating PriorityClass %s: %v", name, err)
	}
}

func TestPriorityOrderGrantsTheHighestPriorityFirstAndEqualsInArrivalOrder(t *testing.T) {
	ctx := testContext(t)
	newPriorityClass(ctx, t, "distlock-test-high", 1000)
	bc := backendCases()[0]
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	newLock(ctx, t, ns, "db", bc, func(l *locksv1alpha1.DistributedLock) { l.Spec.QueueOrder = locksv1alpha1.QueuePriority })
	holder := newPod(ctx, t, ns, "holder", "db")
	waitLock(ctx, t, ns, "db", "held by holder", holdersAre("holder"))
	high := func(p *corev1.Pod) { p.Spec.PriorityClassName = "distlock-test-high" }
	var waiting []*corev1.Pod
	for i, w := range []struct {
		name string
		opts []podOption
	}{{"low-oldest", nil}, {"high-older", []podOption{high}}, {"low-newer", nil}, {"high-newest", []podOption{high}}} {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // distinct creation timestamps are the input under test
		}
		waiting = append(waiting, newPod(ctx, t, ns, w.name, "db", w.opts...))
	}
	lock := waitLock(ctx, t, ns, "db", "four waiting", func(l *locksv1alpha1.DistributedLock) bool { return l.Status.WaitingCount == 4 })
	var order []string
	for _, w := range lock.Status.Waiting {
		order = append(order, w.Pod)
	}
	if want := []string{"high-older", "high-newest", "low-oldest", "low-newer"}; !slices.Equal(order, want) {
		t.Errorf("waiting = %v; want %v", order, want)
	}
	setPhase(ctx, t, holder, corev1.PodSucceeded)
	for _, next := range []string{"high-older", "high-newest", "low-oldest", "low-newer"} {
		waitLock(ctx, t, ns, "db", "granted to "+next, holdersAre(next))
		setPhase(ctx, t, waiting[slices.IndexFunc(waiting, func(p *corev1.Pod) bool { return p.Name == next })], corev1.PodSucceeded)
	}

	// Back to first come first served: the line is re-sorted.
	a := newPod(ctx, t, ns, "z-holder", "db")
	waitLock(ctx, t, ns, "db", "held by z-holder", holdersAre("z-holder"))
	newPod(ctx, t, ns, "low", "db")
	time.Sleep(1100 * time.Millisecond) // distinct creation timestamps are the input under test
	newPod(ctx, t, ns, "high", "db", high)
	waitLock(ctx, t, ns, "db", "high first by priority", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Waiting) == 2 && l.Status.Waiting[0].Pod == "high"
	})
	var cur locksv1alpha1.DistributedLock
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &cur); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Spec.QueueOrder = locksv1alpha1.QueueFIFO
	if err := k8sClient.Patch(ctx, &cur, patch); err != nil {
		t.Fatal(err)
	}
	waitLock(ctx, t, ns, "db", "low first by arrival", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Waiting) == 2 && l.Status.Waiting[0].Pod == "low"
	})
	setPhase(ctx, t, a, corev1.PodSucceeded)
	waitLock(ctx, t, ns, "db", "granted to low", holdersAre("low"))
}

func TestPodsAndAnOutsideProgramShareARedisSemaphore(t *testing.T) {
	ctx := testContext(t)
	bc := backendCases()[0]
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	newLock(ctx, t, ns, "db", bc, withMaxHolders(2))
	key := waitLock(ctx, t, ns, "db", "free", heldReason(locksv1alpha1.ReasonFree)).Status.Key

	// A program outside Kubernetes takes one of the two permits with the
	// documented recipe.
	c := newRedisClient(t, redisServer.Addr)
	member, err := c.Eval(ctx, redisbackend.OutsideSemaphoreAcquire, []string{key, key + ":fencing"}, "batch-host-7", 60000, 2).Text()
	if err != nil {
		t.Fatalf("the outside program's acquire: %v", err)
	}
	pods := newPodsInOrder(ctx, t, ns, "db", "first", "second")
	lock := waitLock(ctx, t, ns, "db", "first holds the permit left, second waits", func(l *locksv1alpha1.DistributedLock) bool {
		return holdersAre("first")(l) && l.Status.WaitingCount == 1
	})
	held := meta.FindStatusCondition(lock.Status.Conditions, locksv1alpha1.ConditionHeld)
	if want := "2 of 2 permits taken, 1 of them outside this controller"; held == nil || !strings.Contains(held.Message, want) {
		t.Errorf("Held condition %+v; want a message with %q", held, want)
	}
	if tok := tokensOf(lock)["first"]; tok <= tokenOf(member) {
		t.Errorf("first's token %d is not above the outside program's %d", tok, tokenOf(member))
	}
	if n := bc.holds(t, key); n != 2 {
		t.Errorf("the backend has %d holds; want 2", n)
	}

	// The outside program releases: the waiting pod gets its permit (Redis
	// sends no event: the controller polls).
	if err := c.Eval(ctx, redisbackend.OutsideSemaphoreRelease, []string{key}, member).Err(); err != nil {
		t.Fatalf("the outside program's release: %v", err)
	}
	waitLock(ctx, t, ns, "db", "both pods hold", holdersAre("first", "second"))

	// Now the pods hold both permits: the outside program gets none.
	if _, err := c.Eval(ctx, redisbackend.OutsideSemaphoreAcquire, []string{key, key + ":fencing"}, "batch-host-7", 60000, 2).Text(); !errors.Is(err, goredis.Nil) {
		t.Errorf("the outside program took a permit while two pods held the semaphore of 2 (err %v)", err)
	}
	setPhase(ctx, t, pods[0], corev1.PodSucceeded)
	setPhase(ctx, t, pods[1], corev1.PodSucceeded)
	waitLock(ctx, t, ns, "db", "free", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Holders) == 0 && heldReason(locksv1alpha1.ReasonFree)(l)
	})
}

// tokenOf reads the fencing token of a Redis semaphore member
// "<id>;fence=<token>".
func tokenOf(member string) int64 {
	i := strings.LastIndex(member, ";fence=")
	if i < 0 {
		return 0
	}
	token, _ := strconv.ParseInt(member[i+len(";fence="):], 10, 64)
	return token
}
