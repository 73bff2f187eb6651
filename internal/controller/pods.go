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
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// notReadyReason says why a pod in line cannot be granted the lock yet, or
// "" when it can. A pod is granted the lock only when it can use it at once:
// it is scheduled to a node, and its waiter init container runs (or, for a
// pod without a recognisable waiter, one of its init containers or its
// containers run). An unschedulable pod, or one whose waiter image cannot be
// pulled, never holds the lock, and the pods behind it are granted instead.
// A pod that holds another lock, or whose hold on this one was taken away,
// is never granted it.
func notReadyReason(lock *locksv1alpha1.DistributedLock, pod *corev1.Pod, revoked map[types.UID]bool) string {
	if other := pod.Annotations[locksv1alpha1.GrantedAnnotation]; other != "" && other != lock.Name {
		return fmt.Sprintf("pod %s holds lock %q; a pod holds one lock at a time", pod.Name, other)
	}
	if revoked[pod.UID] {
		return fmt.Sprintf("pod %s's hold on this lock was taken away", pod.Name)
	}
	if pod.Spec.NodeName == "" {
		return fmt.Sprintf("pod %s is not scheduled to a node yet", pod.Name)
	}
	if pod.Status.Phase == corev1.PodRunning {
		return ""
	}
	if c, ok := waiterContainer(pod); ok {
		if initContainerRunning(pod, c) {
			return ""
		}
		return fmt.Sprintf("pod %s's waiter (init container %s) is not running yet", pod.Name, c)
	}
	for _, s := range pod.Status.InitContainerStatuses {
		if s.State.Running != nil {
			return ""
		}
	}
	return fmt.Sprintf("pod %s is %s and none of its containers runs yet", pod.Name, pod.Status.Phase)
}

// waiterContainer finds the pod's waiter: an init container that is
// distlock's waiter by its environment (DISTLOCK_LOCK), its flags (--lock)
// or its command (/waiter).
func waiterContainer(pod *corev1.Pod) (string, bool) {
	for _, c := range pod.Spec.InitContainers {
		for _, env := range c.Env {
			if env.Name == locksv1alpha1.WaiterLockEnv {
				return c.Name, true
			}
		}
		for _, arg := range slices.Concat(c.Command, c.Args) {
			if arg == "--lock" || strings.HasPrefix(arg, "--lock=") || path.Base(arg) == "waiter" {
				return c.Name, true
			}
		}
	}
	return "", false
}

func initContainerRunning(pod *corev1.Pod, name string) bool {
	for _, s := range pod.Status.InitContainerStatuses {
		if s.Name == name && s.State.Running != nil {
			return true
		}
	}
	return false
}

func revokedUIDs(lock *locksv1alpha1.DistributedLock) map[types.UID]bool {
	m := make(map[types.UID]bool, len(lock.Status.Revoked))
	for _, rv := range lock.Status.Revoked {
		m[rv.PodUID] = true
	}
	return m
}

// nextInLine returns the first pod in line that can be granted the lock, or
// nil. Pods that hold another lock are told so, once.
func (r *DistributedLockReconciler) nextInLine(lc *lockContext) *corev1.Pod {
	skip := lc.holderUIDs()
	revoked := revokedUIDs(lc.lock)
	for pod := range lc.waitingPods(skip) {
		why := notReadyReason(lc.lock, pod, revoked)
		if why == "" {
			return pod
		}
		if other := pod.Annotations[locksv1alpha1.GrantedAnnotation]; other != "" && other != lc.lock.Name &&
			r.once.first(string(pod.UID)+"/"+lc.lock.Name) {
			r.eventf(lc.lock, pod, corev1.EventTypeWarning, locksv1alpha1.ReasonHoldsAnotherLock, "Wait", "%s", why)
		}
	}
	return nil
}

// updateWaiting records the queue in status: the first MaxWaitingListed pods
// and the total. Pods whose hold was revoked are not counted even when their
// lost annotation has not reached the cache yet.
func (r *DistributedLockReconciler) updateWaiting(lc *lockContext) {
	skip := lc.holderUIDs()
	count := lc.line.Len(lc.name)
	for uid := range skip {
		if lc.inLine(uid) {
			count--
		}
	}
	revoked := revokedUIDs(lc.lock)
	for uid := range revoked {
		if !skip[uid] && lc.inLine(uid) {
			count--
		}
	}
	lc.lock.Status.WaitingCount = int32(count)
	lc.lock.Status.Waiting = nil
	for pod := range lc.waitingPods(skip) {
		if len(lc.lock.Status.Waiting) == locksv1alpha1.MaxWaitingListed {
			break
		}
		if !revoked[pod.UID] {
			lc.lock.Status.Waiting = append(lc.lock.Status.Waiting, locksv1alpha1.WaitingPod{Pod: pod.Name, PodUID: pod.UID})
		}
	}
}

// annotateHolder marks the holder pod with the lock it holds and its fencing
// token. The annotation is information for the pod: a failure to write it is
// reported but changes nothing about the hold.
func (r *DistributedLockReconciler) annotateHolder(ctx context.Context, lc *lockContext, pod *corev1.Pod, token int64) {
	if pod == nil {
		return
	}
	want := strconv.FormatInt(token, 10)
	done := "annotated/" + string(pod.UID) + "/" + want
	if r.once.has(done) || (pod.Annotations[locksv1alpha1.GrantedAnnotation] == lc.lock.Name &&
		pod.Annotations[locksv1alpha1.FencingTokenAnnotation] == want) {
		// Written already (the cache may not show it yet): one write per grant.
		return
	}
	err := r.patchPodAnnotations(ctx, pod, map[string]*string{
		locksv1alpha1.GrantedAnnotation:      &lc.lock.Name,
		locksv1alpha1.FencingTokenAnnotation: &want,
	})
	if err == nil {
		r.once.first(done)
	}
	if err != nil && r.once.first("annotate/"+string(pod.UID)+"/"+want) {
		r.eventf(lc.lock, pod, corev1.EventTypeWarning, "AnnotationFailed", "Annotate",
			"Could not annotate holder pod %s with its grant (the waiter reads the grant from the DistributedLock, "+
				"so the hold is unaffected): %s", pod.Name, errMessage(err))
	}
}

// unannotateHolder removes the grant annotations from a pod that no longer
// holds the lock, if the pod still exists.
func (r *DistributedLockReconciler) unannotateHolder(ctx context.Context, lc *lockContext, pod *corev1.Pod) {
	if pod == nil || pod.Annotations[locksv1alpha1.GrantedAnnotation] != lc.lock.Name {
		return
	}
	err := r.patchPodAnnotations(ctx, pod, map[string]*string{
		locksv1alpha1.GrantedAnnotation:      nil,
		locksv1alpha1.FencingTokenAnnotation: nil,
	})
	logOnError(ctx, err, "removing the grant annotations of a pod that no longer holds the lock", "pod", pod.Name)
}

// markPodLost annotates a pod whose hold was lost or taken away.
func (r *DistributedLockReconciler) markPodLost(ctx context.Context, pod *corev1.Pod, why string) {
	if pod == nil {
		return
	}
	why = capMessage(why)
	err := r.patchPodAnnotations(ctx, pod, map[string]*string{locksv1alpha1.LostAnnotation: &why})
	logOnError(ctx, err, "annotating a pod whose hold was lost", "pod", pod.Name)
}

// patchPodAnnotations sets (or, for nil values, removes) annotations of pod
// with a merge patch that carries the pod's UID: the API server refuses it
// when the name now belongs to another pod.
func (r *DistributedLockReconciler) patchPodAnnotations(ctx context.Context, pod *corev1.Pod, set map[string]*string) error {
	pod = pod.DeepCopy() // Patch decodes the answer into it; it may be the cache's own object.
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID, "annotations": set}})
	if err != nil {
		return fmt.Errorf("encoding a patch: %w", err)
	}
	if err := r.Patch(ctx, pod, client.RawPatch(types.MergePatchType, body)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("patching pod %s: %w", pod.Name, err)
	}
	return nil
}

// deletePod deletes pod, only if the name still belongs to it.
func (r *DistributedLockReconciler) deletePod(ctx context.Context, pod *corev1.Pod) error {
	if pod == nil || !pod.DeletionTimestamp.IsZero() {
		return nil
	}
	uid := pod.UID
	if err := r.Delete(ctx, pod, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting pod %s: %w", pod.Name, err)
	}
	logf.FromContext(ctx).Info("deleted holder pod", "pod", pod.Name)
	return nil
}
