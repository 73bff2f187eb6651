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
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/outsiders"
)

// promptGrant bounds how soon after an outside program releases a lock a
// waiting pod must be granted it: ZooKeeper tells the controller through a
// watch, so this is milliseconds, not a poll interval.
const promptGrant = time.Second

// watchGrant starts watching the lock and returns a function that waits
// until pod holds it and says how long that took from the call.
func watchGrant(ctx context.Context, t *testing.T, ns, lock string) func(pod string) time.Duration {
	t.Helper()
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: k8sClient.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &locksv1alpha1.DistributedLockList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return func(pod string) time.Duration {
		start := time.Now()
		deadline := time.After(waitTimeout)
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok || ev.Type == watch.Error {
					t.Fatalf("the watch ended waiting for %s to hold %s", pod, lock)
				}
				if l, ok := ev.Object.(*locksv1alpha1.DistributedLock); ok && l.Name == lock && holderIs(pod)(l) {
					return time.Since(start)
				}
			case <-deadline:
				t.Fatalf("%s was not granted %s within %v", pod, lock, waitTimeout)
			}
		}
	}
}

func TestAPlainEphemeralNodeAtTheLockPathIsHeldElsewhereAndFollowedPromptly(t *testing.T) {
	bc := backendCases()[1]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	key := "/distlock/" + ns + "/plain"
	plain := outsiders.NewPlainEphemeral(newZKConn(t), key)
	if ok, err := plain.TryLock(); err != nil || !ok {
		t.Fatalf("the plain program taking the lock: %v, %v", ok, err)
	}
	newLock(ctx, t, ns, "plain", bc)
	pod := newPod(ctx, t, ns, "pod", "plain")
	lock := waitLock(ctx, t, ns, "plain", "held elsewhere", heldReason(locksv1alpha1.ReasonHeldElsewhere))
	if c := meta.FindStatusCondition(lock.Status.Conditions, locksv1alpha1.ConditionHeld); !strings.Contains(c.Message, "ephemeral node "+key) {
		t.Errorf("Held message %q does not name the ephemeral node %s", c.Message, key)
	}

	granted := watchGrant(ctx, t, ns, "plain")
	if err := plain.Unlock(); err != nil {
		t.Fatal(err)
	}
	took := granted("pod")
	t.Logf("granted %v after the plain program deleted its node", took)
	if took > promptGrant {
		t.Errorf("granted %v after the plain program released; want within %v", took, promptGrant)
	}

	// The other way round: once the pod is done, the plain program can
	// create its node at once (no empty lock node left for the server's
	// reaper to remove a minute later).
	setPhase(ctx, t, pod, corev1.PodSucceeded)
	waitLock(ctx, t, ns, "plain", "free", heldReason(locksv1alpha1.ReasonFree))
	deadline := time.Now().Add(promptGrant)
	for {
		ok, err := plain.TryLock()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plain program could not create its node %v after the pod released the lock", promptGrant)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPodsAndACuratorStyleProgramTakeTurns(t *testing.T) {
	bc := backendCases()[1]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	key := "/distlock/" + ns + "/turns"
	outside := zk.NewLock(newZKConn(t), key, zk.WorldACL(zk.PermAll))
	if err := outside.Lock(); err != nil {
		t.Fatal(err)
	}
	newLock(ctx, t, ns, "turns", bc)
	pod := newPod(ctx, t, ns, "pod", "turns")
	waitLock(ctx, t, ns, "turns", "held elsewhere", heldReason(locksv1alpha1.ReasonHeldElsewhere))
	// The pod's place in ZooKeeper's queue is taken (a waiting node).
	waitZKChildren(t, key, 2)

	// The outside program releases and at once asks again: the pod, which
	// was in line first, gets the lock; the program waits behind it.
	granted := watchGrant(ctx, t, ns, "turns")
	if err := outside.Unlock(); err != nil {
		t.Fatal(err)
	}
	again := make(chan error, 1)
	go func() { again <- outside.Lock() }()
	took := granted("pod")
	t.Logf("granted %v after the outside program released", took)
	if took > promptGrant {
		t.Errorf("granted %v after the outside program released; want within %v", took, promptGrant)
	}
	select {
	case err := <-again:
		t.Fatalf("the outside program took the lock again while the pod was in line before it (err %v)", err)
	case <-time.After(time.Second): // a window in which exclusion must hold
	}
	setPhase(ctx, t, pod, corev1.PodSucceeded)
	select {
	case err := <-again:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("the outside program did not get its turn after the pod")
	}
	if err := outside.Unlock(); err != nil {
		t.Fatal(err)
	}
}

// waitZKChildren waits until key has n children.
func waitZKChildren(t *testing.T, key string, n int) {
	t.Helper()
	conn := newZKConn(t)
	deadline := time.Now().Add(waitTimeout)
	for {
		children, _, err := conn.Children(key)
		if err == nil && len(children) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has children %v (err %v); want %d", key, children, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKazooProgramsAndPodsExcludeEachOtherOnAKazooNamedLock(t *testing.T) {
	bc := backendCases()[1]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	key := "/distlock/" + ns + "/py"
	conn := newZKConn(t)
	kazoo := outsiders.NewKazooLock(conn, key)
	if ok, err := kazoo.Acquire(ctx, false); err != nil || !ok {
		t.Fatalf("kazoo taking the lock: %v, %v", ok, err)
	}
	newLock(ctx, t, ns, "py", bc, func(l *locksv1alpha1.DistributedLock) {
		l.Spec.Backend.ZooKeeper.NodeNames = "Kazoo"
	})
	pod := newPod(ctx, t, ns, "pod", "py")
	waitLock(ctx, t, ns, "py", "held elsewhere while kazoo holds", heldReason(locksv1alpha1.ReasonHeldElsewhere))
	granted := watchGrant(ctx, t, ns, "py")
	if err := kazoo.Release(); err != nil {
		t.Fatal(err)
	}
	granted("pod")

	// kazoo, with its default contender pattern, sees the pod's node.
	second := outsiders.NewKazooLock(conn, key)
	if ok, err := second.Acquire(ctx, false); err != nil || ok {
		t.Fatalf("kazoo took the lock while the pod held it (ok=%v, err=%v)", ok, err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := second.Acquire(ctx, true)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("kazoo's blocking acquire returned while the pod held the lock (err %v)", err)
	case <-time.After(time.Second): // a window in which exclusion must hold
	}
	setPhase(ctx, t, pod, corev1.PodSucceeded)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("kazoo did not get the lock after the pod")
	}
}
