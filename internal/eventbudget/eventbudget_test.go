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

package eventbudget

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
)

func TestABurstCostsAtMostTheBudgetAndWarningsHaveTheirOwn(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		qps                    float64
		burst                  int
		normals, warnings      int
		wantWritten            int
		wantDroppedNormal      float64
		wantDroppedWarning     float64
		annotatedEveryOtherOne bool
	}{
		{name: "under budget: everything", qps: 0.01, burst: 10, normals: 6, warnings: 4, wantWritten: 10},
		{name: "a burst of grants: the first burst, then nothing within the second",
			qps: 0.01, burst: 10, normals: 500, warnings: 0, wantWritten: 10, wantDroppedNormal: 490},
		{name: "a burst of grants does not crowd out warnings",
			qps: 0.01, burst: 10, normals: 500, warnings: 3, wantWritten: 13, wantDroppedNormal: 490},
		{name: "annotated Events share the budget",
			qps: 0.01, burst: 5, normals: 20, wantWritten: 5, wantDroppedNormal: 15, annotatedEveryOtherOne: true},
		{name: "qps 0: no limit", qps: 0, burst: 0, normals: 300, warnings: 300, wantWritten: 600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := events.NewFakeRecorder(1000)
			dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dropped"}, []string{"type", "reason"})
			r := New(fake, tc.qps, tc.burst, dropped)
			pod := &corev1.Pod{}
			for i := range tc.normals {
				if tc.annotatedEveryOtherOne && i%2 == 1 {
					r.AnnotatedEventf(pod, nil, map[string]string{"a": "b"}, corev1.EventTypeNormal, "Granted", "Grant", "to %d", i)
				} else {
					r.Eventf(pod, nil, corev1.EventTypeNormal, "Granted", "Grant", "to %d", i)
				}
			}
			for i := range tc.warnings {
				r.Eventf(pod, nil, corev1.EventTypeWarning, "Lost", "Lose", "hold %d", i)
			}
			if got := len(fake.Events); got != tc.wantWritten {
				t.Errorf("written %d Events, want %d", got, tc.wantWritten)
			}
			if got := testutil.ToFloat64(dropped.WithLabelValues("Normal", "Granted")); got != tc.wantDroppedNormal {
				t.Errorf("dropped Normal = %v, want %v", got, tc.wantDroppedNormal)
			}
			if got := testutil.ToFloat64(dropped.WithLabelValues("Warning", "Lost")); got != tc.wantDroppedWarning {
				t.Errorf("dropped Warning = %v, want %v", got, tc.wantDroppedWarning)
			}
		})
	}
}
