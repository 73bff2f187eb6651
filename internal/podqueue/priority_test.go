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

package podqueue

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func withPriority(p *corev1.Pod, prio int32) *corev1.Pod {
	p.Spec.Priority = &prio
	return p
}

func TestPriorityOrder(t *testing.T) {
	tests := map[string]struct {
		pods       []*corev1.Pod
		byPriority bool
		want       []string
	}{
		"first come first served ignores priority": {
			pods: []*corev1.Pod{withPriority(pod("ns", "old-low", 1, "L"), 1), withPriority(pod("ns", "new-high", 2, "L"), 1000)},
			want: []string{"old-low", "new-high"},
		},
		"the highest priority first": {
			pods:       []*corev1.Pod{withPriority(pod("ns", "old-low", 1, "L"), 1), withPriority(pod("ns", "new-high", 2, "L"), 1000)},
			byPriority: true,
			want:       []string{"new-high", "old-low"},
		},
		"equal priorities: the oldest first, so none starves": {
			pods: []*corev1.Pod{
				withPriority(pod("ns", "c", 3, "L"), 5), withPriority(pod("ns", "a", 1, "L"), 5),
				withPriority(pod("ns", "b", 2, "L"), 5), pod("ns", "unset", 0, "L"),
			},
			byPriority: true,
			want:       []string{"a", "b", "c", "unset"},
		},
		"a pod without priority counts as 0, below positive and above negative": {
			pods: []*corev1.Pod{
				withPriority(pod("ns", "negative", 1, "L"), -10), pod("ns", "unset", 2, "L"), withPriority(pod("ns", "positive", 3, "L"), 10),
			},
			byPriority: true,
			want:       []string{"positive", "unset", "negative"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			x := New(label, waits)
			x.SetOrder(types.NamespacedName{Namespace: "ns", Name: "L"}, tc.byPriority)
			for _, p := range tc.pods {
				x.Set(p)
			}
			if diff := cmp.Diff(tc.want, line(x, "ns", "L")); diff != "" {
				t.Errorf("line (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChangingTheOrderResortsTheLine(t *testing.T) {
	x := New(label, waits)
	lock := types.NamespacedName{Namespace: "ns", Name: "L"}
	x.Set(withPriority(pod("ns", "old-low", 1, "L"), 1))
	x.Set(withPriority(pod("ns", "new-high", 2, "L"), 100))
	x.Set(pod("ns", "other-lock", 0, "M"))
	steps := []struct {
		byPriority bool
		want       []string
	}{
		{false, []string{"old-low", "new-high"}},
		{true, []string{"new-high", "old-low"}},
		{true, []string{"new-high", "old-low"}},
		{false, []string{"old-low", "new-high"}},
	}
	for i, s := range steps {
		x.SetOrder(lock, s.byPriority)
		if diff := cmp.Diff(s.want, line(x, "ns", "L")); diff != "" {
			t.Errorf("step %d (byPriority %v): line (-want +got):\n%s", i, s.byPriority, diff)
		}
	}
	x.SetOrder(lock, true)
	x.Delete("uid-ns-new-high")
	x.Set(withPriority(pod("ns", "newest-mid", 3, "L"), 50))
	if diff := cmp.Diff([]string{"newest-mid", "old-low"}, line(x, "ns", "L")); diff != "" {
		t.Errorf("after events on a line ordered by priority (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"other-lock"}, line(x, "ns", "M")); diff != "" {
		t.Errorf("another lock's line (-want +got):\n%s", diff)
	}
}
