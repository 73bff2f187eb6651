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
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

func TestWaitingPodsOrder(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	pod := func(name string, created int, mutate ...func(*corev1.Pod)) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Name: name, UID: types.UID("uid-" + name), CreationTimestamp: metav1.NewTime(base.Add(time.Duration(created) * time.Second)),
		}}
		for _, m := range mutate {
			m(&p)
		}
		return p
	}
	finished := func(phase corev1.PodPhase) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Status.Phase = phase } }
	deleting := func(p *corev1.Pod) { now := metav1.NewTime(base); p.DeletionTimestamp = &now }
	lost := func(p *corev1.Pod) { p.Annotations = map[string]string{locksv1alpha1.LostAnnotation: "expired"} }

	tests := map[string]struct {
		pods []corev1.Pod
		skip []types.UID
		want string
	}{
		"the oldest pod comes first": {
			pods: []corev1.Pod{pod("a", 3), pod("b", 1), pod("c", 2)},
			want: "b,c,a",
		},
		"pods created in the same second are ordered by name": {
			pods: []corev1.Pod{pod("z", 1), pod("m", 1), pod("a", 2)},
			want: "m,z,a",
		},
		"the holder is left out": {
			pods: []corev1.Pod{pod("a", 1), pod("b", 2)},
			skip: []types.UID{"uid-a"},
			want: "b",
		},
		"every holder of a semaphore is left out": {
			pods: []corev1.Pod{pod("a", 1), pod("b", 2), pod("c", 3), pod("d", 4)},
			skip: []types.UID{"uid-a", "uid-c"},
			want: "b,d",
		},
		"finished pods, pods being deleted and pods that lost a hold do not wait": {
			pods: []corev1.Pod{
				pod("done", 1, finished(corev1.PodSucceeded)), pod("failed", 2, finished(corev1.PodFailed)),
				pod("going", 3, deleting), pod("lost", 4, lost), pod("pending", 5), pod("running", 6, finished(corev1.PodRunning)),
			},
			want: "pending,running",
		},
		"nobody waits": {want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lc := &lockContext{name: types.NamespacedName{Namespace: "ns", Name: "L"}, line: newLine()}
			for i := range tc.pods {
				p := tc.pods[i].DeepCopy()
				p.Namespace, p.Labels = "ns", map[string]string{locksv1alpha1.LockLabel: "L"}
				lc.line.Set(p)
			}
			skip := map[types.UID]bool{}
			for _, uid := range tc.skip {
				skip[uid] = true
			}
			var got []string
			for p := range lc.waitingPods(skip) {
				got = append(got, p.Name)
			}
			if g := strings.Join(got, ","); g != tc.want {
				t.Errorf("waiting pods = %s; want %s", g, tc.want)
			}
		})
	}
}
