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

package main

import "github.com/distlock/distlock/hack/bench/internal/summary"

// summary is the handful of numbers `make bench` puts in its one table.
func (r *result) summary() summary.Scale {
	o := r.opts
	s := summary.Scale{Locks: o.locks, Pods: o.pods, Backends: o.backends, HoldsLost: r.lostTotal(),
		WritesPerLockLease: r.idleWritesPerLockLease(), CeilingPerSecond: r.calibrationRate(),
		PeakRSSMiB: float64(r.peakRSS()) / mib}
	if r.t != nil {
		s.DrainPerSecond, _ = r.drainRate()
		s.WritesPerHandoff = r.writesPerHandoff()
		if lat := r.t.latencies(phaseProbe); len(lat) > 0 {
			s.ProbeP50Ms = float64(percentile(lat, .5).Microseconds()) / 1000
			s.ProbeP99Ms = float64(percentile(lat, .99).Microseconds()) / 1000
		}
	}
	return s
}

// writeSummary writes the summary to path as JSON.
func (r *result) writeSummary(path string) error { return summary.Write(path, r.summary()) }
