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

package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
)

// LockState is what the gauges count of one lock, as its last reconcile
// saw it.
type LockState struct {
	// Backend is "redis" or "zookeeper".
	Backend string
	// Held: a pod holds the lock.
	Held bool
	// Waiting is the number of pods in line.
	Waiting int
}

// lockGauges sums the state of every lock per backend when scraped: the
// held locks and the pods waiting. The lock names stay out of the labels.
type lockGauges struct {
	held    *prometheus.Desc
	waiting *prometheus.Desc

	mu    sync.Mutex
	state map[types.NamespacedName]LockState
}

var locks = &lockGauges{
	held: prometheus.NewDesc(namespace+"_held_locks", "Locks held by a pod, as this replica last saw them.",
		[]string{labelBackend}, nil),
	waiting: prometheus.NewDesc(namespace+"_waiting_pods", "Pods waiting for a lock, as this replica last saw them.",
		[]string{labelBackend}, nil),
	state: map[types.NamespacedName]LockState{},
}

// SetLock records the state of a lock.
func SetLock(lock types.NamespacedName, st LockState) {
	locks.mu.Lock()
	defer locks.mu.Unlock()
	locks.state[lock] = st
}

// ForgetLock drops a lock that no longer exists.
func ForgetLock(lock types.NamespacedName) {
	locks.mu.Lock()
	defer locks.mu.Unlock()
	delete(locks.state, lock)
}

// Describe implements prometheus.Collector.
func (g *lockGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.held
	ch <- g.waiting
}

// Collect implements prometheus.Collector.
func (g *lockGauges) Collect(ch chan<- prometheus.Metric) {
	held, waiting := map[string]int{}, map[string]int{}
	g.mu.Lock()
	for _, st := range g.state {
		held[st.Backend] += 0 // a backend with locks but none held reports 0
		if st.Held {
			held[st.Backend]++
		}
		waiting[st.Backend] += st.Waiting
	}
	g.mu.Unlock()
	for backend, n := range held {
		ch <- prometheus.MustNewConstMetric(g.held, prometheus.GaugeValue, float64(n), backend)
	}
	for backend, n := range waiting {
		ch <- prometheus.MustNewConstMetric(g.waiting, prometheus.GaugeValue, float64(n), backend)
	}
}
