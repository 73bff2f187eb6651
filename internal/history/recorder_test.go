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
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// Many writers, each with its own open file as separate processes would
// have, append to one history: every line arrives whole and none is lost.
func TestRecordersSharingAFileLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	const writers, each = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			r, err := Open(path)
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = r.Close() }()
			for i := range each {
				if err := r.Record(Event{Kind: Enter, Lock: "L", Holder: fmt.Sprintf("w%d", w), Token: int64(i + 1)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	events, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != writers*each {
		t.Fatalf("read %d events, want %d", len(events), writers*each)
	}
	per := map[string]int{}
	for _, e := range events {
		if e.At.IsZero() || e.Kind != Enter {
			t.Fatalf("event %+v: want an enter stamped with the time", e)
		}
		per[e.Holder]++
	}
	for w := range writers {
		if n := per[fmt.Sprintf("w%d", w)]; n != each {
			t.Errorf("writer w%d: %d events read, want %d", w, n, each)
		}
	}
}
