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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
)

// createPod creates pod as given (no node, no phase set unless the test
// sets them).
func createPod(ctx context.Context, t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if pod.Spec.TerminationGracePeriodSeconds == nil {
		pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
	}
	if len(pod.Spec.Containers) == 0 {
		pod.Spec.Containers = []corev1.Container{{Name: "work", Image: "busybox"}}
	}
	if err := k8sClient.Create(ctx, pod); err != nil {
		t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
	return pod
}

// gatedPod is a pod whose init container is distlock's waiter, as the
// README's gated Job has: scheduled, but Pending until the waiter exits.
func gatedPod(ns, name, lock string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{locksv1alpha1.LockLabel: lock}},
		Spec: corev1.PodSpec{
			NodeName: testNode,
			InitContainers: []corev1.Container{{Name: "wait-for-lock", Image: "distlock",
				Env: []corev1.EnvVar{{Name: locksv1alpha1.WaiterLockEnv, Value: lock}}}},
		},
	}
}

func TestAPodThatCannotStartIsNeverGrantedAndThePodsBehindItAre(t *testing.T) {
	bc := backendCases()[0]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	newLock(ctx, t, ns, "gate", bc)

	// The oldest pod cannot be scheduled; a gated pod's waiter cannot start
	// (its image cannot be pulled, say).
	createPod(ctx, t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unschedulable",
		Labels: map[string]string{locksv1alpha1.LockLabel: "gate"}}})
	time.Sleep(1100 * time.Millisecond) // distinct creation timestamps decide the order under test
	gated := createPod(ctx, t, gatedPod(ns, "gated", "gate"))
	time.Sleep(1100 * time.Millisecond)
	ready := newPod(ctx, t, ns, "ready", "gate")

	lock := waitLock(ctx, t, ns, "gate", "granted to the pod that can use it", holderIs("ready"))
	if lock.Status.WaitingCount != 2 {
		t.Errorf("waitingCount = %d; want the two pods that cannot start yet still in line", lock.Status.WaitingCount)
	}
	setPhase(ctx, t, ready, corev1.PodSucceeded)
	lock = waitLock(ctx, t, ns, "gate", "free while nobody in line can use it", heldReason(locksv1alpha1.ReasonFree))
	if c := meta.FindStatusCondition(lock.Status.Conditions, locksv1alpha1.ConditionHeld); !strings.Contains(c.Message, "not scheduled") {
		t.Errorf("Held message %q does not say why nobody is granted", c.Message)
	}

	// The gated pod's waiter starts: it is granted the lock.
	running := client.RawPatch(types.MergePatchType, []byte(`{"status":{"initContainerStatuses":[
		{"name":"wait-for-lock","image":"distlock","imageID":"","ready":false,"restartCount":0,"state":{"running":{"startedAt":"2026-01-01T00:00:00Z"}}}]}}`))
	if err := k8sClient.Status().Patch(ctx, gated, running); err != nil {
		t.Fatal(err)
	}
	waitLock(ctx, t, ns, "gate", "granted to the gated pod once its waiter runs", holderIs("gated"))
	if n := countEvents(ctx, t, ns, "Pod", "unschedulable", locksv1alpha1.ReasonGranted); n != 0 {
		t.Errorf("the unschedulable pod was granted the lock")
	}
}

func TestAPodHoldsOneLockAtATime(t *testing.T) {
	bc := backendCases()[0]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	newLock(ctx, t, ns, "first", bc)
	newLock(ctx, t, ns, "second", bc)
	pod := newPod(ctx, t, ns, "greedy", "first")
	waitLock(ctx, t, ns, "first", "held by greedy", holderIs("greedy"))

	// Relabelled to ask for the second lock while it holds the first.
	relabel := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"distlock.io/lock":"second"}}}`))
	if err := k8sClient.Patch(ctx, pod, relabel); err != nil {
		t.Fatal(err)
	}
	note := waitEvent(ctx, t, ns, "Pod", "greedy", locksv1alpha1.ReasonHoldsAnotherLock)
	if !strings.Contains(note, `"first"`) {
		t.Errorf("event %q does not name the lock the pod holds", note)
	}
	newPod(ctx, t, ns, "patient", "second")
	waitLock(ctx, t, ns, "second", "granted to the next pod, not to the holder of the first lock", holderIs("patient"))
	waitLock(ctx, t, ns, "first", "still held by greedy (it still runs)", holderIs("greedy"))
	got := getPod(ctx, t, pod)
	if got.Annotations[locksv1alpha1.GrantedAnnotation] != "first" {
		t.Errorf("annotations = %v; want granted=first, unchanged", got.Annotations)
	}
	setPhase(ctx, t, pod, corev1.PodSucceeded)
	waitLock(ctx, t, ns, "first", "released", heldReason(locksv1alpha1.ReasonFree))
}

func TestGrantAnnotationsAreRemovedWhenTheHoldEnds(t *testing.T) {
	bc := backendCases()[0]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	newLock(ctx, t, ns, "tidy", bc)
	pod := newPod(ctx, t, ns, "done", "tidy")
	waitLock(ctx, t, ns, "tidy", "held", holderIs("done"))
	waitPod(ctx, t, pod, "annotated", func(p *corev1.Pod) bool { return p.Annotations[locksv1alpha1.GrantedAnnotation] == "tidy" })
	setPhase(ctx, t, pod, corev1.PodSucceeded)
	waitPod(ctx, t, pod, "no longer annotated as holding the lock", func(p *corev1.Pod) bool {
		_, granted := p.Annotations[locksv1alpha1.GrantedAnnotation]
		_, token := p.Annotations[locksv1alpha1.FencingTokenAnnotation]
		return !granted && !token
	})
}

func TestTwoLocksSharingAKeyNeverAdoptEachOthersHolder(t *testing.T) {
	bc := backendCases()[0]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns, withCustomKeys())
	key := func(l *locksv1alpha1.DistributedLock) { l.Spec.Key = ns + "/shared" }
	newLock(ctx, t, ns, "one", bc, key)
	newLock(ctx, t, ns, "two", bc, key)
	newPod(ctx, t, ns, "for-one", "one")
	waitLock(ctx, t, ns, "one", "held by for-one", holderIs("for-one"))
	newPod(ctx, t, ns, "for-two", "two")
	lock := waitLock(ctx, t, ns, "two", "held elsewhere (by the other lock's pod)", heldReason(locksv1alpha1.ReasonHeldElsewhere))
	if len(lock.Status.Holders) != 0 {
		t.Fatalf("lock two records holders %+v; it must not adopt the other lock's pod", lock.Status.Holders)
	}
	if n := countEvents(ctx, t, ns, "DistributedLock", "two", locksv1alpha1.ReasonAdopted); n != 0 {
		t.Fatalf("lock two adopted the other lock's holder")
	}
}

func TestPodPatchesAndDeletesNeverTouchAPodThatReusedTheName(t *testing.T) {
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	r := &DistributedLockReconciler{Client: k8sClient}
	old := newPod(ctx, t, ns, "reused", "none")
	deletePod(ctx, t, old)
	newer := newPod(ctx, t, ns, "reused", "none")

	granted := "x"
	if err := r.patchPodAnnotations(ctx, old, map[string]*string{locksv1alpha1.GrantedAnnotation: &granted}); err == nil {
		t.Errorf("patching the old pod's name succeeded; want it refused (the name is another pod's now)")
	}
	if _, ok := getPod(ctx, t, newer).Annotations[locksv1alpha1.GrantedAnnotation]; ok {
		t.Errorf("the new pod with the old name was annotated")
	}
	if err := r.deletePod(ctx, old); err == nil {
		t.Errorf("deleting the old pod's name succeeded; want it refused")
	}
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(newer), &corev1.Pod{}); apierrors.IsNotFound(err) {
		t.Errorf("the new pod with the old name was deleted")
	}
}

func TestABackendOutsideTheAllowedAddressesIsNeverContacted(t *testing.T) {
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	listener := testservers.NewBlackhole(t)
	startController(t, ns, func(r *DistributedLockReconciler) {
		r.AllowedBackendAddresses = []string{"redis.infra.svc:6379", "*.redis.infra.svc:6379"}
	})
	newLock(ctx, t, ns, "probe", backendCase{spec: func() locksv1alpha1.BackendSpec {
		return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: listener.Addr}}
	}})
	newPod(ctx, t, ns, "pod", "probe")
	lock := waitLock(ctx, t, ns, "probe", "refused", conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonBackendNotAllowed))
	if c := meta.FindStatusCondition(lock.Status.Conditions, locksv1alpha1.ConditionReady); !strings.Contains(c.Message, "redis.infra.svc:6379") {
		t.Errorf("message %q does not list the allowed addresses", c.Message)
	}
	time.Sleep(time.Second) // a window in which no connection may be made
	if n := listener.Accepted(); n != 0 {
		t.Errorf("the manager connected %d times to an address it may not use", n)
	}
}
