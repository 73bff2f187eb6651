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

// Package summary is the file through which the scale run (hack/bench/scale
// -summary) hands its main numbers to `make bench`'s table (hack/bench
// -scale).
package summary

import (
	"encoding/json"
	"fmt"
	"os"
)

// The targets of issue 8 ("Scale without loss", "Cost budget") that the
// scale run is judged against.
const (
	TargetHandoffsPerSecond  = 350
	TargetWritesPerHandoff   = 2
	TargetProbeP99Ms         = 50
	TargetRSSMiB             = 256
	TargetWritesPerLockLease = 1
)

// Scale is what a scale run measured. Zero means not measured.
type Scale struct {
	Locks    int      `json:"locks"`
	Pods     int      `json:"pods"`
	Backends []string `json:"backends"`
	// HoldsLost counts every hold lost in any phase.
	HoldsLost int `json:"holdsLost"`
	// DrainPerSecond is the drain's handoffs per second; CeilingPerSecond
	// the calibration's pairs per second (the API server's ceiling, with the
	// manager paused).
	DrainPerSecond   float64 `json:"drainPerSecond"`
	CeilingPerSecond float64 `json:"ceilingPerSecond"`
	// ProbeP50Ms and ProbeP99Ms are the single-lock handoff latencies while
	// every other lock is held.
	ProbeP50Ms float64 `json:"probeP50Ms"`
	ProbeP99Ms float64 `json:"probeP99Ms"`
	// WritesPerHandoff are the manager's API writes per drain handoff
	// besides Events; WritesPerLockLease its writes per held lock per lease
	// period while idle.
	WritesPerHandoff   float64 `json:"writesPerHandoff"`
	WritesPerLockLease float64 `json:"writesPerLockLease"`
	PeakRSSMiB         float64 `json:"peakRSSMiB"`
}

// Write writes s to path as JSON.
func Write(path string, s Scale) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the scale summary: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the scale summary: %w", err)
	}
	return nil
}

// Read reads a Scale that Write wrote.
func Read(path string) (Scale, error) {
	var s Scale
	data, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("reading the scale summary: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("decoding the scale summary %s: %w", path, err)
	}
	return s, nil
}
