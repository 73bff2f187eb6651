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
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const label = "distlock.io/lock"

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// pod makes a pod in namespace ns created sec seconds after t0, asking for
// lock (none when empty), in phase Running.
func pod(ns, name string, sec int, lock string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name),
		CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(sec) * time.Second)),
	}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if lock != "" {
		p.Labels = map[string]string{label: lock}
	}
	return p
}

func finished(p *corev1.Pod) *corev1.Pod {
	p = p.DeepCopy()
	p.Status.Phase = corev1.PodSucceeded
	return p
}

func relabel(p *corev1.Pod, lock string) *corev1.Pod {
	p = p.DeepCopy()
	p.Labels = map[string]string{label: lock}
	if lock == "" {
		p.Labels = nil
	}
	return p
}

func waits(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }

// op is one change applied to the Index: set a pod, or delete one by UID.
type op struct {
	set    *corev1.Pod
	delete types.UID
}

func line(x *Index, ns, lock string) []string {
	var names []string
	x.Ascend(types.NamespacedName{Namespace: ns, Name: lock}, func(p *corev1.Pod) bool {
		names = append(names, p.Name)
		return true
	})
	return names
}

func TestIndex(t *testing.T) {
	a, b, c := pod("ns", "a", 3, "L"), pod("ns", "b", 1, "L"), pod("ns", "c", 2, "L")
	tieZ, tieY := pod("ns", "z", 5, "L"), pod("ns", "y", 5, "L")
	for _, tc := range []struct {
		name string
		ops  []op
		want map[string][]string // "ns/lock" -> line
	}{
		{
			name: "oldest first, whatever the order of arrival",
			ops:  []op{{set: a}, {set: b}, {set: c}},
			want: map[string][]string{"ns/L": {"b", "c", "a"}},
		},
		{
			name: "same creation time: by name",
			ops:  []op{{set: tieZ}, {set: tieY}, {set: a}},
			want: map[string][]string{"ns/L": {"a", "y", "z"}},
		},
		{
			name: "a pod that finishes leaves the line but stays known",
			ops:  []op{{set: a}, {set: b}, {set: finished(b)}},
			want: map[string][]string{"ns/L": {"a"}},
		},
		{
			name: "an update keeps one entry per pod",
			ops:  []op{{set: a}, {set: a.DeepCopy()}, {set: a.DeepCopy()}},
			want: map[string][]string{"ns/L": {"a"}},
		},
		{
			name: "relabelled: moves to the other lock's line",
			ops:  []op{{set: a}, {set: b}, {set: relabel(b, "M")}},
			want: map[string][]string{"ns/L": {"a"}, "ns/M": {"b"}},
		},
		{
			name: "label removed: forgotten",
			ops:  []op{{set: a}, {set: b}, {set: relabel(a, "")}},
			want: map[string][]string{"ns/L": {"b"}},
		},
		{
			name: "deleted",
			ops:  []op{{set: a}, {set: b}, {set: c}, {delete: c.UID}, {delete: "unknown"}},
			want: map[string][]string{"ns/L": {"b", "a"}},
		},
		{
			name: "same lock name in two namespaces: two lines",
			ops:  []op{{set: a}, {set: pod("other", "b", 0, "L")}},
			want: map[string][]string{"ns/L": {"a"}, "other/L": {"b"}},
		},
		{
			name: "a pod without the label is ignored",
			ops:  []op{{set: pod("ns", "x", 0, "")}},
			want: map[string][]string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := New(label, waits)
			for _, o := range tc.ops {
				if o.set != nil {
					x.Set(o.set)
				} else {
					x.Delete(o.delete)
				}
			}
			got := map[string][]string{}
			for lock := range x.lines {
				got[lock.String()] = line(x, lock.Namespace, lock.Name)
				if n := x.Len(lock); n != len(got[lock.String()]) {
					t.Errorf("Len(%s) = %d, line has %d", lock, n, len(got[lock.String()]))
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodIsFoundOnlyUnderItsOwnLock(t *testing.T) {
	x := New(label, waits)
	a := pod("ns", "a", 0, "L")
	x.Set(finished(a))
	if p, ok := x.Pod(types.NamespacedName{Namespace: "ns", Name: "L"}, a.UID); !ok || p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("Pod(ns/L, a) = %v, %v; want the finished pod", p, ok)
	}
	for _, lock := range []types.NamespacedName{{Namespace: "ns", Name: "M"}, {Namespace: "other", Name: "L"}} {
		if _, ok := x.Pod(lock, a.UID); ok {
			t.Errorf("Pod(%s, a) found a pod that asks for ns/L", lock)
		}
	}
	x.Delete(a.UID)
	if _, ok := x.Pod(types.NamespacedName{Namespace: "ns", Name: "L"}, a.UID); ok {
		t.Error("Pod found a deleted pod")
	}
}

func TestAscendStopsWhenAsked(t *testing.T) {
	x := New(label, waits)
	for i := range 100 {
		x.Set(pod("ns", fmt.Sprintf("p%03d", i), 100-i, "L"))
	}
	var got []string
	x.Ascend(types.NamespacedName{Namespace: "ns", Name: "L"}, func(p *corev1.Pod) bool {
		got = append(got, p.Name)
		return len(got) < 3
	})
	if want := []string{"p099", "p098", "p097"}; !slices.Equal(got, want) {
		t.Errorf("first 3 = %v, want %v", got, want)
	}
}

// TestPodEventsAndReadsGoOnWhileALineIsWalked is the deadlock a reconcile
// once hit: while it walked a line (and read the line's length inside the
// walk), a pod event arrived. The event's Set must complete while the walk's
// callback runs, and the callback's own reads must not wait for it. With a
// read lock held across the walk, the Set waits for the walk and the read
// inside the walk waits for the Set: this test then times out instead.
func TestPodEventsAndReadsGoOnWhileALineIsWalked(t *testing.T) {
	x := New(label, waits)
	lock := types.NamespacedName{Namespace: "ns", Name: "L"}
	x.Set(pod("ns", "a", 1, "L"))
	x.Set(pod("ns", "b", 2, "L"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		var walked []string
		x.Ascend(lock, func(p *corev1.Pod) bool {
			walked = append(walked, p.Name)
			if p.Name != "a" {
				return true
			}
			set := make(chan struct{})
			go func() { x.Set(pod("ns", "c", 3, "L")); close(set) }()
			select {
			case <-set:
			case <-time.After(10 * time.Second):
				t.Errorf("a pod event's Set waited for a walk of the line")
				return false
			}
			if n := x.Len(lock); n != 3 {
				t.Errorf("Len inside the walk = %d, want 3 (the Set has completed)", n)
			}
			return true
		})
		// The walk sees the line as it was when it began.
		if want := []string{"a", "b"}; !slices.Equal(walked, want) {
			t.Errorf("walked %v, want %v", walked, want)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("walking a line while a pod event arrived deadlocked")
	}
	if got, want := line(x, "ns", "L"), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("line after the walk = %v, want %v", got, want)
	}
}

// BenchmarkArrivalsOnOneLock is the cost of one pod arriving in, and one
// leaving, a line that already holds b.N pods: it grows as log n, where
// listing and sorting the line on every event grew as n log n.
func BenchmarkArrivalsOnOneLock(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			x := New(label, waits)
			for i := range n {
				x.Set(pod("ns", fmt.Sprintf("p%06d", i), i, "L"))
			}
			extra := pod("ns", "extra", n/2, "L")
			for b.Loop() {
				x.Set(extra)
				x.Delete(extra.UID)
			}
		})
	}
}
