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

import (
	"fmt"
	"strings"

	"github.com/distlock/distlock/hack/bench/internal/summary"
)

const (
	// notAvailable stands for a ratio that cannot be computed.
	notAvailable = "n/a"
	// controllerRows is the backend column of the scale rows.
	controllerRows = "controller"
)

// scaleRows turns a scale run's summary (hack/bench/scale -summary) into
// rows of the table. The drain is set against the API server's own ceiling
// measured in the same run (the calibration: the driver alone, manager
// paused); the other rows against the targets.
func scaleRows(path string) ([]row, error) {
	s, err := summary.Read(path)
	if err != nil {
		return nil, err
	}
	scenario := fmt.Sprintf("scale: %d locks × %d pods (%s), envtest", s.Locks, s.Pods, strings.Join(s.Backends, "+"))
	ratio := func(num, den float64) string {
		if num == 0 || den == 0 {
			return notAvailable
		}
		return fmt.Sprintf("%.2f×", num/den)
	}
	rows := []row{
		{backend: controllerRows, scenario: scenario, metric: "holds lost",
			ours: fmt.Sprint(s.HoldsLost), anchor: "target 0", ratio: map[bool]string{true: "met", false: "NOT MET"}[s.HoldsLost == 0]},
		{backend: controllerRows, scenario: scenario, metric: "draining every queue at once: handoffs/s",
			ours:   fmt.Sprintf("%.0f/s", s.DrainPerSecond),
			anchor: fmt.Sprintf("API server ceiling %.0f/s (pod DELETE + status PATCH, manager paused)", s.CeilingPerSecond),
			ratio:  ratio(s.DrainPerSecond, s.CeilingPerSecond)},
		{backend: controllerRows, scenario: scenario, metric: "one lock's handoff while all are held: p50 / p99",
			ours: fmt.Sprintf("%.1f ms / %.1f ms", s.ProbeP50Ms, s.ProbeP99Ms), anchor: fmt.Sprintf("target p99 ≤ %d ms", summary.TargetProbeP99Ms),
			ratio: ratio(summary.TargetProbeP99Ms, s.ProbeP99Ms)},
		{backend: controllerRows, scenario: scenario, metric: "API writes per held lock per lease (idle) / per handoff besides Events",
			ours:   fmt.Sprintf("%.2f / %.2f", s.WritesPerLockLease, s.WritesPerHandoff),
			anchor: fmt.Sprintf("target ≤ %d / ≤ %d", summary.TargetWritesPerLockLease, summary.TargetWritesPerHandoff)},
		{backend: controllerRows, scenario: scenario, metric: "manager peak RSS",
			ours: fmt.Sprintf("%.0f MiB", s.PeakRSSMiB), anchor: fmt.Sprintf("target ≤ %d MiB", summary.TargetRSSMiB),
			ratio: ratio(summary.TargetRSSMiB, s.PeakRSSMiB)},
	}
	return rows, nil
}
