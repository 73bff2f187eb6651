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

package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Recorder appends Events to a file opened with O_APPEND, one JSON line per
// write, so that any number of processes on one machine can share the file
// without a lock and without the controller: the kernel appends each write
// whole.
type Recorder struct {
	f   *os.File
	now func() time.Time
}

// Open opens (creating it if needed) the history file at path for
// appending.
func Open(path string) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the history %s: %w", path, err)
	}
	return &Recorder{f: f, now: time.Now}, nil
}

// Record appends e, stamped now when its At is zero.
func (r *Recorder) Record(e Event) error {
	if e.At.IsZero() {
		e.At = r.now()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding a history event: %w", err)
	}
	if _, err := r.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("appending to the history %s: %w", r.f.Name(), err)
	}
	return nil
}

// Close closes the file.
func (r *Recorder) Close() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("closing the history: %w", err)
	}
	return nil
}

// Read returns the Events of the history file at path, in file order.
func Read(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the history: %w", err)
	}
	defer func() { _ = f.Close() }()
	var events []Event
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("history %s line %d: %w", path, n, err)
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the history %s: %w", path, err)
	}
	return events, nil
}
