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
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distlock/distlock/internal/history"
)

// row is one cell's line of the table.
type row struct {
	scenario, backend      string
	handoffs, faults       int
	overlaps, regressions  int
	stuck                  int
	recovery               time.Duration
	allRecovered           bool
	handoffP50, handoffP99 time.Duration
	elapsed                time.Duration
	notes                  []string
	failed                 bool
}

// table collects the rows of every cell.
type table struct {
	// commit names what the manager was built from.
	commit string

	mu   sync.Mutex
	rows []row
}

// sourceCommit names the commit of the tree the manager is built from, and
// says so when the tree differs from it. Read when the run starts: the
// tree may move on while it runs.
func sourceCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown commit"
	}
	commit := "commit " + strings.TrimSpace(string(out))
	if exec.Command("git", "diff-index", "--quiet", "HEAD", "--", "../..").Run() != nil {
		commit += " with uncommitted changes"
	}
	return commit
}

func (tb *table) add(r row) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.rows = append(tb.rows, r)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// print writes the table as Markdown, with a line saying how it was made.
func (tb *table) print(w io.Writer, prof profile) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n`make test-faults FAULTS_PROFILE=%s` at %s, %s:\n\n", prof.name, tb.commit, time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintln(w, "| scenario | backend | handoffs | faults | overlaps | token regressions | stuck waiters | worst recovery "+
		"(heal → next grant) | handoff p50 / p99 | cell time | notes |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	var handoffs, overlaps, regressions, stuck int
	for _, r := range tb.rows {
		recovery := ms(r.recovery)
		if r.faults == 0 {
			recovery = "-"
		} else if !r.allRecovered {
			recovery += " (a heal with no grant after it)"
		}
		notes := strings.Join(r.notes, "; ")
		if r.failed {
			notes = strings.TrimPrefix(notes+"; FAILED", "; ")
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %d | %d | %s | %s / %s | %.0f s | %s |\n", r.scenario, r.backend, r.handoffs, r.faults,
			r.overlaps, r.regressions, r.stuck, recovery, ms(r.handoffP50), ms(r.handoffP99), r.elapsed.Seconds(), notes)
		handoffs += r.handoffs
		overlaps += r.overlaps
		regressions += r.regressions
		stuck += r.stuck
	}
	fmt.Fprintf(w, "\n%d cells, %d handoffs: %d overlaps, %d token regressions, %d stuck waiters.\n",
		len(tb.rows), handoffs, overlaps, regressions, stuck)
}

// write writes the table to path.
func (tb *table) write(path string, prof profile) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	tb.print(f, prof)
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	return nil
}

// handoff is one lock passing from a holder's exit to the next holder's
// entry.
type handoff struct {
	lock  string
	enter time.Time
	took  time.Duration
}

// handoffs lists the handoffs of a history: for each entry, the time since
// the previous holder of the lock left.
func handoffs(events []history.Event) []handoff {
	sorted := slices.Clone(events)
	slices.SortStableFunc(sorted, func(a, b history.Event) int { return a.At.Compare(b.At) })
	lastExit := map[string]time.Time{}
	var found []handoff
	for _, e := range sorted {
		switch e.Kind {
		case history.Exit:
			lastExit[e.Lock] = e.At
		case history.Enter:
			if at, ok := lastExit[e.Lock]; ok {
				found = append(found, handoff{lock: e.Lock, enter: e.At, took: e.At.Sub(at)})
				delete(lastExit, e.Lock)
			}
		}
	}
	return found
}

// quantiles is the p50 and p99 of the handoffs' times.
func quantiles(hs []handoff) (p50, p99 time.Duration) {
	if len(hs) == 0 {
		return 0, 0
	}
	took := make([]time.Duration, 0, len(hs))
	for _, h := range hs {
		took = append(took, h.took)
	}
	slices.Sort(took)
	pick := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
	return pick(0.5), pick(0.99)
}

// handoffLatency is the p50 and p99 of the time from a holder's exit to the
// next holder's entry on the same lock, over the handoffs of a history.
func handoffLatency(events []history.Event) (p50, p99 time.Duration) {
	return quantiles(handoffs(events))
}
