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

// Package eventbudget bounds the Events a controller writes, so that a burst
// of work (a thousand queues draining at once) costs the API server a
// bounded number of Event writes per second on top of the writes the work
// itself needs. It wraps an EventRecorder with two token buckets, one for
// Normal Events and one for Warnings, so a flood of grants never crowds out
// a warning. An Event over budget is not written; it is counted in
// distlock_events_dropped_total. Status (conditions, holder, queue) always
// shows the current state: Events are the history, and in a burst the
// history keeps its first Events and then a sample.
//
// This is what the kubelet does with its eventRecordQPS and eventBurst
// settings. The events.k8s.io recorder underneath merges repeats of the
// same Event into a series, but every grant names another pod and token,
// so without a budget each would be a new object.
package eventbudget

import (
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// Defaults for New: a burst of 100 Events of each type, then 10 a second.
const (
	DefaultQPS   = 10
	DefaultBurst = 100
)

// Recorder is a recorder.EventRecorder that drops Events over budget.
type Recorder struct {
	next            recorder.EventRecorder
	normal, warning *rate.Limiter
	dropped         *prometheus.CounterVec
}

var _ recorder.EventRecorder = (*Recorder)(nil)

// New returns a Recorder that passes at most burst Events of each type at
// once and qps a second on average to next, and counts the others in
// dropped (labels "type" and "reason"; nil counts nothing). qps <= 0 means
// no limit.
func New(next recorder.EventRecorder, qps float64, burst int, dropped *prometheus.CounterVec) *Recorder {
	limit := rate.Limit(qps)
	if qps <= 0 {
		limit = rate.Inf
	}
	return &Recorder{
		next:    next,
		normal:  rate.NewLimiter(limit, burst),
		warning: rate.NewLimiter(limit, burst),
		dropped: dropped,
	}
}

// allow takes a token for an Event of eventType, or counts it dropped.
func (r *Recorder) allow(eventType, reason string) bool {
	limiter := r.normal
	if eventType != "Normal" {
		limiter = r.warning
	}
	if limiter.Allow() {
		return true
	}
	if r.dropped != nil {
		r.dropped.WithLabelValues(eventType, reason).Inc()
	}
	return false
}

// Eventf records an Event if the budget allows.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if r.allow(eventtype, reason) {
		r.next.Eventf(regarding, related, eventtype, reason, action, note, args...)
	}
}

// AnnotatedEventf records an annotated Event if the budget allows.
func (r *Recorder) AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string,
	eventtype, reason, action, note string, args ...any) {
	if r.allow(eventtype, reason) {
		r.next.AnnotatedEventf(regarding, related, annotations, eventtype, reason, action, note, args...)
	}
}
