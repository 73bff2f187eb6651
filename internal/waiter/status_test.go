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
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

func TestJudge(t *testing.T) {
	const self types.UID = "uid-me"
	others := func(n int) []locksv1alpha1.WaitingPod {
		w := make([]locksv1alpha1.WaitingPod, 0, n)
		for i := range n {
			w = append(w, locksv1alpha1.WaitingPod{Pod: fmt.Sprintf("p-%d", i), PodUID: types.UID(fmt.Sprintf("uid-%d", i))})
		}
		return w
	}
	meWaiting := locksv1alpha1.WaitingPod{Pod: "me", PodUID: self}
	heldBy := func(pod string, lost bool) []locksv1alpha1.LockHolder {
		return []locksv1alpha1.LockHolder{{Pod: pod, PodUID: types.UID("uid-" + pod), FencingToken: 3, Lost: lost}}
	}
	redis := locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: "r:6379"}}
	zookeeper := locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: []string{"z:2181"}}}

	two := func(pods ...string) []locksv1alpha1.LockHolder {
		var h []locksv1alpha1.LockHolder
		for _, p := range pods {
			h = append(h, heldBy(p, false)...)
		}
		return h
	}
	tests := map[string]struct {
		spec       locksv1alpha1.BackendSpec
		maxHolders int32
		status     locksv1alpha1.DistributedLockStatus
		// want is the waiting line's tail, or "granted"/"lost" for this
		// pod's holder entry.
		want string
	}{
		"the third of five listed waiters": {
			spec:   redis,
			status: locksv1alpha1.DistributedLockStatus{Backend: "redis", Holders: heldBy("abc", false), Waiting: slices.Insert(others(4), 2, meWaiting), WaitingCount: 5},
			want:   "redis: position 3 of 5, held by pod abc",
		},
		"a waiter beyond the ten listed": {
			spec:   redis,
			status: locksv1alpha1.DistributedLockStatus{Backend: "redis", Holders: heldBy("abc", false), Waiting: others(10), WaitingCount: 25},
			want:   "redis: position >10 of 25, held by pod abc",
		},
		"the tenth listed waiter of many": {
			spec:   redis,
			status: locksv1alpha1.DistributedLockStatus{Backend: "redis", Holders: heldBy("abc", false), Waiting: slices.Insert(others(9), 9, meWaiting), WaitingCount: 12},
			want:   "redis: position 10 of 12, held by pod abc",
		},
		"a pod the controller has not queued yet": {
			spec:   zookeeper,
			status: locksv1alpha1.DistributedLockStatus{Backend: "zookeeper", Holders: heldBy("abc", false), Waiting: others(2), WaitingCount: 2},
			want:   "zookeeper: not in the queue yet (2 waiting), held by pod abc",
		},
		"a lock the controller has not written status for names the backend of its spec": {
			spec: zookeeper,
			want: "zookeeper: not in the queue yet (0 waiting), not held by any pod",
		},
		"a waitingCount behind the list counts the list": {
			spec:   redis,
			status: locksv1alpha1.DistributedLockStatus{Backend: "redis", Waiting: []locksv1alpha1.WaitingPod{meWaiting}},
			want:   "redis: position 1 of 1, not held by any pod",
		},
		"a holder whose hold was lost is shown as such": {
			spec:   redis,
			status: locksv1alpha1.DistributedLockStatus{Backend: "redis", Holders: heldBy("abc", true), Waiting: []locksv1alpha1.WaitingPod{meWaiting}, WaitingCount: 1},
			want:   "redis: position 1 of 1, held by pod abc (hold lost)",
		},
		"this pod as the holder is a grant, wherever it is listed": {
			spec: redis,
			status: locksv1alpha1.DistributedLockStatus{
				Backend: "redis", Holders: append(heldBy("abc", false), locksv1alpha1.LockHolder{Pod: "me", PodUID: self}),
			},
			want: "granted",
		},
		"this pod as a lost holder is a loss": {
			spec:   redis,
			status: locksv1alpha1.DistributedLockStatus{Backend: "redis", Holders: []locksv1alpha1.LockHolder{{Pod: "me", PodUID: self, Lost: true}}},
			want:   "lost",
		},
		"a semaphore shows its holders and free permits": {
			spec:       redis,
			maxHolders: 3,
			status:     locksv1alpha1.DistributedLockStatus{Backend: "redis", Holders: two("a", "b"), Waiting: []locksv1alpha1.WaitingPod{meWaiting}, WaitingCount: 1},
			want:       "redis: position 1 of 1, 2 of 3 permits held (pods a, b), 1 free",
		},
		"a full semaphore": {
			spec:       zookeeper,
			maxHolders: 2,
			status:     locksv1alpha1.DistributedLockStatus{Backend: "zookeeper", Holders: two("a", "b"), Waiting: []locksv1alpha1.WaitingPod{meWaiting}, WaitingCount: 1},
			want:       "zookeeper: position 1 of 1, 2 of 2 permits held (pods a, b), 0 free",
		},
		"a semaphore whose maxHolders was lowered below its holders has none free": {
			spec:       redis,
			maxHolders: 2,
			status: locksv1alpha1.DistributedLockStatus{Backend: "redis", Holders: append(two("a", "b"), heldBy("c", true)...),
				Waiting: []locksv1alpha1.WaitingPod{meWaiting}, WaitingCount: 1},
			want: "redis: position 1 of 1, 3 of 2 permits held (pods a, b, c (hold lost)), 0 free",
		},
		"an empty semaphore": {
			spec:       redis,
			maxHolders: 4,
			status:     locksv1alpha1.DistributedLockStatus{Backend: "redis"},
			want:       "redis: not in the queue yet (0 waiting), 0 of 4 permits held, 4 free",
		},
		"a holder with this pod's name but another UID is another pod": {
			spec:   redis,
			status: locksv1alpha1.DistributedLockStatus{Backend: "redis", Holders: []locksv1alpha1.LockHolder{{Pod: "me", PodUID: "uid-old"}}},
			want:   "redis: not in the queue yet (0 waiting), held by pod me",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lock := &locksv1alpha1.DistributedLock{Spec: locksv1alpha1.DistributedLockSpec{Backend: tc.spec, MaxHolders: tc.maxHolders},
				Status: tc.status}
			v := judge(lock, self)
			var got string
			switch {
			case v.holder != nil && v.holder.Lost:
				got = "lost"
			case v.holder != nil:
				got = "granted"
			default:
				got = v.backend + ": " + v.position + ", " + v.heldBy
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
