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

package faults

import (
	"fmt"
	"os"
	"time"
)

// profile says how much each cell does: CI's profile runs every scenario
// once, quickly; the full profile keeps injecting the fault until each cell
// has made at least a thousand handoffs.
type profile struct {
	name string
	// handoffs is the least number of grants a cell makes.
	handoffs int
	// cycles is the least number of times a cell injects and heals its
	// fault.
	cycles int
	// locks per cell, and pods kept asking for each.
	locks, line int
	// cellTimeout bounds one cell, drain included.
	cellTimeout time.Duration
}

var profiles = map[string]profile{
	"ci":   {name: "ci", handoffs: 30, cycles: 1, locks: 2, line: 3, cellTimeout: 4 * time.Minute},
	"full": {name: "full", handoffs: 1000, cycles: 3, locks: 3, line: 3, cellTimeout: 15 * time.Minute},
}

// profileFromEnv reads FAULTS_PROFILE (ci when unset).
func profileFromEnv() (profile, error) {
	name := os.Getenv("FAULTS_PROFILE")
	if name == "" {
		name = "ci"
	}
	p, ok := profiles[name]
	if !ok {
		return profile{}, fmt.Errorf("FAULTS_PROFILE=%q: want ci or full", name)
	}
	return p, nil
}
