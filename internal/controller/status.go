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
	"errors"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backendpool"
)

// Bounds on text that reaches status and Events. Values taken from outside
// (an outside holder's Redis value, an error from a server, an operator's
// annotation) are cut, so that a hostile or merely large value can never
// make a status patch too large.
const (
	// maxValueLength bounds one outside value quoted in a message.
	maxValueLength = 200
	// maxMessageLength bounds a condition message (the API allows 32768).
	maxMessageLength = 2048
)

// capValue quotes an outside value for a message, cut to maxValueLength
// bytes.
func capValue(s string) string {
	if len(s) <= maxValueLength {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:maxValueLength]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// capMessage cuts a message to maxMessageLength bytes.
func capMessage(s string) string {
	if len(s) <= maxMessageLength {
		return s
	}
	return s[:maxMessageLength-len("…")] + "…"
}

// errMessage renders err for a message, cut to maxValueLength*2 bytes.
func errMessage(err error) string {
	if err == nil {
		return "no error reported"
	}
	s := err.Error()
	if len(s) > 2*maxValueLength {
		return s[:2*maxValueLength] + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return s
}

// describeHolder says who holds a lock in the backend, for messages.
func describeHolder(st backend.State) string {
	if !st.Held {
		return "nobody now"
	}
	if st.Token > 0 {
		return fmt.Sprintf("%s (fencing token %d)", capValue(st.Holder), st.Token)
	}
	return capValue(st.Holder)
}

func lostMessage(lock *locksv1alpha1.DistributedLock, rec *locksv1alpha1.LockHolder, who string) string {
	return fmt.Sprintf("The backend lost pod %s's hold (fencing token %d) while the pod still runs; it is held by %s. "+
		"The lock is granted to no one else until the pod ends; to end the pod and pass the lock on: "+
		"kubectl annotate distributedlock %s %s=<reason>", rec.Pod, rec.FencingToken, who, lock.Name,
		locksv1alpha1.ForceReleaseAnnotation)
}

func (r *DistributedLockReconciler) setCondition(
	lock *locksv1alpha1.DistributedLock, typ string, status metav1.ConditionStatus, reason, msg string,
) {
	meta.SetStatusCondition(&lock.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: capMessage(msg), ObservedGeneration: lock.Generation,
	})
}

func (r *DistributedLockReconciler) setHeld(lock *locksv1alpha1.DistributedLock, rec *locksv1alpha1.LockHolder) {
	r.setCondition(lock, locksv1alpha1.ConditionHeld, metav1.ConditionTrue, locksv1alpha1.ReasonGranted,
		fmt.Sprintf("Pod %s holds the lock (fencing token %d)", rec.Pod, rec.FencingToken))
}

// setNotReady sets Ready=False for this reconcile, with a Warning Event on
// the lock (and pod) when the reason is new.
func (r *DistributedLockReconciler) setNotReady(lc *lockContext, pod *corev1.Pod, reason, msg string) {
	if prev := meta.FindStatusCondition(lc.orig.Status.Conditions, locksv1alpha1.ConditionReady); prev == nil || prev.Reason != reason {
		r.eventf(lc.lock, pod, corev1.EventTypeWarning, reason, "Reconcile", "%s", capMessage(msg))
	}
	r.setCondition(lc.lock, locksv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	lc.notReady = true
}

// setReady sets Ready=True unless this reconcile found a reason not to.
func (r *DistributedLockReconciler) setReady(lc *lockContext) {
	if lc.notReady {
		return
	}
	r.setCondition(lc.lock, locksv1alpha1.ConditionReady, metav1.ConditionTrue, locksv1alpha1.ReasonConnected,
		"The backend answers and the lock's holder is known")
}

// setBackendCondition reports whether a connection to the backend could be
// made for this reconcile. A hold the keeper keeps is renewed over its own
// connection either way.
func (r *DistributedLockReconciler) setBackendCondition(lc *lockContext) {
	if lc.connErr == nil {
		r.setCondition(lc.lock, locksv1alpha1.ConditionBackendReachable, metav1.ConditionTrue, locksv1alpha1.ReasonConnected,
			fmt.Sprintf("%s %v answered", lc.lock.Spec.Backend.Name(), lc.lock.Spec.Backend.Servers()))
		return
	}
	reason := backendReason(lc.connErr)
	msg := fmt.Sprintf("%s; nothing is granted until this is fixed (a hold already granted is still renewed "+
		"over the connection it was taken with)", errMessage(lc.connErr))
	r.setCondition(lc.lock, locksv1alpha1.ConditionBackendReachable, metav1.ConditionFalse, reason, msg)
	r.setNotReady(lc, nil, reason, msg)
}

// backendReason is the condition reason for an error of connecting to or
// calling a backend.
func backendReason(err error) string {
	switch {
	case errors.Is(err, errKeyNotAllowed):
		return locksv1alpha1.ReasonKeyNotAllowed
	case errors.Is(err, errBackendNotAllowed):
		return locksv1alpha1.ReasonBackendNotAllowed
	case errors.Is(err, errCredentialsNotAllowed):
		return locksv1alpha1.ReasonCredentialsNotAllowed
	case errors.Is(err, errCredentials):
		return locksv1alpha1.ReasonCredentialsInvalid
	case errors.Is(err, backend.ErrUnauthorized):
		return locksv1alpha1.ReasonUnauthorized
	default:
		return locksv1alpha1.ReasonUnreachable
	}
}

// retryAfter is how soon to try a failed backend call again: when the pool
// will dial again after a remembered failure, else after def.
func retryAfter(err error, def time.Duration, now time.Time) time.Duration {
	if dialErr, ok := errors.AsType[*backendpool.DialError](err); ok {
		if d := dialErr.RetryAt.Sub(now); d > 0 {
			return d + 10*time.Millisecond
		}
	}
	return def
}

// statusEqual reports whether two statuses show the same thing.
func statusEqual(a, b locksv1alpha1.DistributedLockStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// eventf records an Event on the lock and, when pod is not nil, the same
// Event on the pod.
func (r *DistributedLockReconciler) eventf(
	lock *locksv1alpha1.DistributedLock, pod *corev1.Pod, eventType, reason, action, format string, args ...any,
) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(lock, nil, eventType, reason, action, format, args...)
	if pod != nil {
		r.Recorder.Eventf(pod, lock, eventType, reason, action, format, args...)
	}
}
