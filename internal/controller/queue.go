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
	"iter"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/podqueue"
)

// podFinished reports whether a pod will run no more containers: it reached
// Succeeded or Failed. A pod that is merely being deleted still runs until
// its containers stop, so it keeps a lock it holds until it is gone.
func podFinished(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// podWaits reports whether a pod that does not hold the lock is in line for
// it: it has not finished, is not being deleted, and has not lost a hold
// before (a pod whose hold was lost or force-released may still believe it
// holds the lock, so it is never granted it again).
func podWaits(pod *corev1.Pod) bool {
	_, lost := pod.Annotations[locksv1alpha1.LostAnnotation]
	return !podFinished(pod) && pod.DeletionTimestamp.IsZero() && !lost
}

// waitingPods returns the pods in line for the lock, in the lock's queue
// order (podqueue), leaving out the pods whose UIDs skip has (the holders).
// It reads the line kept from pod events: no listing, no sorting.
func (lc *lockContext) waitingPods(skip map[types.UID]bool) iter.Seq[*corev1.Pod] {
	return func(yield func(*corev1.Pod) bool) {
		lc.line.Ascend(lc.name, func(pod *corev1.Pod) bool {
			return skip[pod.UID] || yield(pod)
		})
	}
}

// inLine reports whether the pod with the given UID waits in the lock's line.
func (lc *lockContext) inLine(uid types.UID) bool {
	pod, ok := lc.line.Pod(lc.name, uid)
	return ok && podWaits(pod)
}

// newLine returns an empty index of the lines of pods that wait for locks.
func newLine() *podqueue.Index { return podqueue.New(locksv1alpha1.LockLabel, podWaits) }
