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

// Package metrics defines the Prometheus metrics an operator of distlock
// alerts on, registered with controller-runtime's registry so that the
// manager's metrics endpoint serves them. Labels are bounded: the backend
// ("redis", "zookeeper"), the backend operation, and small enumerations;
// never a pod or a lock name. docs/metrics.md lists them with example
// alerts.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

const namespace = "distlock"

// Label names.
const (
	labelBackend = "backend"
	labelOp      = "op"
)

// Release reasons (label "reason" of ReleasesTotal).
const (
	ReleaseFinished = "finished" // the holder pod finished or was deleted
	ReleaseForced   = "forced"   // after distlock.io/force-release
	ReleaseBroken   = "broken"   // distlock.io/break
	ReleaseOrphan   = "orphan"   // a hold of a pod that had ended, found in the backend
)

var (
	// WaitSeconds is how long a pod waited for a lock: from its creation to
	// its grant.
	WaitSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "lock_wait_seconds",
		Help:    "Time from a pod's creation to the grant of the lock it asks for.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 16), // 50ms .. ~27m
	}, []string{labelBackend})

	// HoldSeconds is how long a pod held a lock: from grant to release.
	HoldSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "lock_hold_seconds",
		Help:    "Time from the grant of a lock to its release.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 18), // 50ms .. ~1.8h
	}, []string{labelBackend})

	// GrantsTotal counts grants (a handoff is a release followed by a grant).
	GrantsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "grants_total",
		Help: "Locks granted to pods.",
	}, []string{labelBackend})

	// ReleasesTotal counts releases, by reason.
	ReleasesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "releases_total",
		Help: "Holds released, by reason: finished, forced, broken, orphan.",
	}, []string{labelBackend, "reason"})

	// HoldsLostTotal counts holds the backend lost while their pod ran.
	HoldsLostTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "holds_lost_total",
		Help: "Holds the backend no longer had while their pod still ran.",
	}, []string{labelBackend})

	// RenewalLagSeconds is how late renewals complete: from when the
	// renewal was due to when the backend confirmed it.
	RenewalLagSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "renewal_lag_seconds",
		Help:    "Time from when a hold's renewal was due to when the backend confirmed it.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms .. ~33s
	}, []string{labelBackend})

	// RenewalFailuresTotal counts renewals that failed without the hold
	// being known lost (the backend did not answer).
	RenewalFailuresTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "renewal_failures_total",
		Help: "Renewals that failed without the backend saying the hold is gone.",
	}, []string{labelBackend})

	// BackendCallSeconds is the latency of backend calls, by operation.
	BackendCallSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "backend_call_duration_seconds",
		Help:    "Latency of calls to a backend, by operation (acquire, renew, release, inspect, purge, watch).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms .. ~16s
	}, []string{labelBackend, labelOp})

	// BackendErrorsTotal counts failed backend calls, by operation and kind.
	BackendErrorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "backend_call_errors_total",
		Help: "Failed calls to a backend, by operation and kind (unreachable, unauthorized, other). " +
			"'Held by another holder' and 'not held' are outcomes, not errors.",
	}, []string{labelBackend, labelOp, "kind"})

	// EventsDroppedTotal counts Events not written because they were over
	// the manager's Event budget (--event-qps, --event-burst).
	EventsDroppedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "events_dropped_total",
		Help: "Events not written because they were over the Event budget (--event-qps, --event-burst), by type and reason.",
	}, []string{"type", "reason"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(
		WaitSeconds, HoldSeconds, GrantsTotal, ReleasesTotal, HoldsLostTotal,
		RenewalLagSeconds, RenewalFailuresTotal, BackendCallSeconds, BackendErrorsTotal,
		EventsDroppedTotal, locks,
	)
}

// ObserveSince records the seconds since start in h.
func ObserveSince(h prometheus.Observer, start time.Time) {
	h.Observe(time.Since(start).Seconds())
}
