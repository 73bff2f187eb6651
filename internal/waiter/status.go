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
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// verdict is what one observed state of the lock means for the waiting pod.
type verdict struct {
	// holder is this pod's entry in status.holders, if any.
	holder *locksv1alpha1.LockHolder
	// revoked is this pod's entry in status.revoked, if any: its hold was
	// taken away and it will never be granted the lock again.
	revoked *locksv1alpha1.RevokedPod
	// position describes where the pod stands in the queue, e.g.
	// "position 3 of 5" (meaningful when holder is nil).
	position string
	// heldBy describes the current holder, e.g. "held by pod report-abc".
	heldBy string
	// backend is "redis" or "zookeeper".
	backend string
}

// judge reads the lock's status from the point of view of the pod with uid.
func judge(lock *locksv1alpha1.DistributedLock, uid types.UID) verdict {
	var v verdict
	for i := range lock.Status.Revoked {
		if lock.Status.Revoked[i].PodUID == uid {
			v.revoked = &lock.Status.Revoked[i]
			return v
		}
	}
	for i := range lock.Status.Holders {
		if lock.Status.Holders[i].PodUID == uid {
			v.holder = &lock.Status.Holders[i]
			return v
		}
	}
	v.backend = backendName(lock)
	v.position = position(lock.Status, uid)
	switch {
	case lock.Spec.Holders() > 1:
		v.heldBy = permits(lock)
	case len(lock.Status.Holders) == 0:
		v.heldBy = "not held by any pod"
	case lock.Status.Holders[0].Lost:
		v.heldBy = fmt.Sprintf("held by pod %s (hold lost)", lock.Status.Holders[0].Pod)
	default:
		v.heldBy = "held by pod " + lock.Status.Holders[0].Pod
	}
	return v
}

// permits describes a semaphore's holders and free permits, e.g. "2 of 3
// permits held (pods a, b), 1 free".
func permits(lock *locksv1alpha1.DistributedLock) string {
	limit, holders := lock.Spec.Holders(), lock.Status.Holders
	if len(holders) == 0 {
		return fmt.Sprintf("0 of %d permits held, %d free", limit, limit)
	}
	pods := make([]string, 0, len(holders))
	for _, h := range holders {
		if h.Lost {
			pods = append(pods, h.Pod+" (hold lost)")
		} else {
			pods = append(pods, h.Pod)
		}
	}
	return fmt.Sprintf("%d of %d permits held (pods %s), %d free", len(holders), limit, strings.Join(pods, ", "),
		max(limit-len(holders), 0))
}

// position says where the pod with uid stands in status.waiting, which lists
// only the first MaxWaitingListed of status.waitingCount waiters.
func position(st locksv1alpha1.DistributedLockStatus, uid types.UID) string {
	total := max(int(st.WaitingCount), len(st.Waiting))
	for i, w := range st.Waiting {
		if w.PodUID == uid {
			return fmt.Sprintf("position %d of %d", i+1, total)
		}
	}
	if total > len(st.Waiting) {
		return fmt.Sprintf("position >%d of %d", len(st.Waiting), total)
	}
	return fmt.Sprintf("not in the queue yet (%d waiting)", total)
}

// backendName is the lock's backend kind as the controller reports it, or as
// the spec names it before the controller has written status.
func backendName(lock *locksv1alpha1.DistributedLock) string {
	switch {
	case lock.Status.Backend != "":
		return lock.Status.Backend
	case lock.Spec.Backend.Name() != "":
		return lock.Spec.Backend.Name()
	default:
		return "unknown backend"
	}
}
