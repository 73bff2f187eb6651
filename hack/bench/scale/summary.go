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
	s := summary.Scale{Locks: o.locks, Pods: o.pods, Backends: o.backends, HoldsLost: r.lostTotal()}
	if r.t != nil {
		if lat := r.t.latencies(phaseDrain); len(lat) > 0 {
			s.DrainPerSecond = float64(len(lat)) / r.t.lastSample(phaseDrain).Sub(r.drainFrom.at).Seconds()
			if w := (window{r.drainFrom, r.drainTo}); w.ok() && o.countWrites {
				s.WritesPerHandoff = (w.writes() - w.eventWrites()) / float64(len(lat))
			}
		}
		if lat := r.t.latencies(phaseProbe); len(lat) > 0 {
			s.ProbeP50Ms = float64(percentile(lat, .5).Microseconds()) / 1000
			s.ProbeP99Ms = float64(percentile(lat, .99).Microseconds()) / 1000
		}
	}
	if w := (window{r.idleFrom, r.idleTo}); w.ok() {
		s.WritesPerLockLease = w.writes() / (float64(o.locks+1) * w.dur().Seconds() / o.lease.Seconds())
	}
	if w := r.calibration; w.ok() {
		s.CeilingPerSecond = float64(r.calibrated) / w.dur().Seconds()
	}
	if r.env != nil && r.env.manager != nil {
		_, peak := memOf(r.env.managerPID())
		s.PeakRSSMiB = float64(peak) / mib
	}
	return s
}

// writeSummary writes the summary to path as JSON.
func (r *result) writeSummary(path string) error { return summary.Write(path, r.summary()) }
