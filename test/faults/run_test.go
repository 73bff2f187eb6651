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
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distlock/distlock/internal/history"
)

// scenario is one row group of the table: a fault, injected and healed by
// inject, on each of its backends.
type scenario struct {
	name     string
	spec     cellSpec
	backends []string
	// holdFor, when set, says how long each holder stays inside (the
	// driver's default is 5-40 ms).
	holdFor func(ce *cell) func(lock string) time.Duration
	// setup, when set, runs once the cell is up, before the driver starts.
	setup func(ctx context.Context, ce *cell) error
	// inject injects the fault once, heals it, and records both
	// (ce.fault, ce.heal).
	inject func(ctx context.Context, ce *cell) error
	// check, when set, checks more of the history than every cell does.
	check func(t *testing.T, ce *cell, events []history.Event)
	// selfTest marks the scenario that breaks the lock on purpose, to show
	// that the harness sees it: it must find every kind of violation, and
	// it is not a row of the table.
	selfTest bool
}

var bothBackends = []string{redisBackend, zkBackend}

// run runs the scenario on each of its backends.
func (sc scenario) run(t *testing.T) {
	backends := sc.backends
	if backends == nil {
		backends = bothBackends
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { sc.runCell(t, b) })
	}
}

// warmUp is how many handoffs a cell makes before its first fault.
const warmUp = 5

// progressTimeout bounds the wait for the handoffs after each heal.
const progressTimeout = 3 * time.Minute

func (sc scenario) runCell(t *testing.T, backend string) {
	spec := sc.spec
	spec.backend = backend
	ce := newCell(t, sc.name, spec)
	prof := ce.s.profile
	ctx, cancel := context.WithTimeout(context.Background(), prof.cellTimeout)
	defer cancel()
	if sc.setup != nil {
		if err := sc.setup(ctx, ce); err != nil {
			t.Fatalf("setting up: %v", err)
		}
	}
	driverCtx, stopDriver := context.WithCancel(ctx)
	defer stopDriver()
	d := &driver{name: "a", ns: ce.ns, c: ce.c, cfg: ce.cfg, rec: ce.rec, locks: append(ce.lockNames(), ce.extraLocks...),
		line: prof.line, errorf: t.Errorf}
	if sc.holdFor != nil {
		d.holdFor = sc.holdFor(ce)
	}
	ce.driver = d
	started := time.Now()
	if err := d.start(driverCtx); err != nil {
		t.Fatal(err)
	}
	err := ce.waitHandoffs(ctx, warmUp)
	perCycle := max((prof.handoffs-warmUp)/prof.cycles, 10)
	for cycles := 0; err == nil && (cycles < prof.cycles || int(d.handoffs.Load()) < prof.handoffs); cycles++ {
		if cycles >= 10*prof.cycles {
			break // bounded, whatever the handoff rate
		}
		if err = sc.inject(ctx, ce); err != nil {
			err = fmt.Errorf("injecting the fault: %w", err)
			break
		}
		err = ce.waitHandoffs(ctx, int(d.handoffs.Load())+perCycle)
	}
	if err != nil {
		t.Errorf("%v", err)
	}
	for _, stop := range ce.stoppers {
		stop()
	}
	drainCtx, drained := context.WithTimeout(ctx, progressTimeout)
	for _, dr := range append([]*driver{d}, ce.others...) {
		if err := dr.drain(drainCtx); err != nil {
			t.Errorf("driver %s: %v", dr.name, err)
		}
	}
	drained()
	if len(ce.others) > 0 {
		grants := []string{fmt.Sprintf("cluster %s: %d", d.name, d.handoffs.Load())}
		for _, o := range ce.others {
			grants = append(grants, fmt.Sprintf("cluster %s: %d", o.name, o.handoffs.Load()))
		}
		ce.note("grants to pods: %s", strings.Join(grants, ", "))
	}
	elapsed := time.Since(started)
	stopDriver()
	d.wait()
	ce.finish(t, sc, backend, elapsed)
}

// waitHandoffs waits until the cell's driver has seen n grants in all.
func (ce *cell) waitHandoffs(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, progressTimeout)
	defer cancel()
	for int(ce.driver.handoffs.Load()) < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d handoffs: %w", ce.driver.handoffs.Load(), n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// finish checks the cell's history and adds its row to the table.
func (ce *cell) finish(t *testing.T, sc scenario, backend string, elapsed time.Duration) {
	if err := ce.rec.Close(); err != nil {
		t.Error(err)
	}
	events, err := history.Read(ce.historyPath)
	if err != nil {
		t.Fatal(err)
	}
	report := history.Check(events, history.Options{Limit: ce.spec.maxHolders})
	if sc.selfTest {
		t.Logf("the self-test's history, as the checker sees it: %d overlaps, %d token regressions, %d stuck waiters",
			len(report.Overlaps), len(report.Regressions), len(report.Stuck))
		if len(report.Overlaps) == 0 || len(report.Regressions) == 0 || len(report.Stuck) == 0 {
			t.Errorf("the checker missed a violation made on purpose: %d overlaps, %d regressions, %d stuck; want each above 0",
				len(report.Overlaps), len(report.Regressions), len(report.Stuck))
		}
		return
	}
	if sc.check != nil {
		sc.check(t, ce, events)
	}
	if n := ce.spec.maxHolders; n > 1 {
		most := mostInside(events)
		ce.note("at most %d holders inside at once (maxHolders %d)", most, n)
		if most < n {
			t.Errorf("never %d holders inside at once: the semaphore of %d was not exercised", n, n)
		}
	}
	r := row{scenario: sc.name, backend: backend, handoffs: count(events, history.Enter), faults: count(events, history.Fault),
		overlaps: len(report.Overlaps), regressions: len(report.Regressions), stuck: len(report.Stuck),
		elapsed: elapsed, notes: ce.notes, failed: t.Failed()}
	r.recovery, r.allRecovered = report.WorstRecovery()
	r.handoffP50, r.handoffP99 = handoffLatency(events)
	ce.s.results.add(r)
	t.Logf("%s on %s: %d handoffs, %d faults, worst recovery %v, handoff p50 %v p99 %v, history %s",
		sc.name, backend, r.handoffs, r.faults, r.recovery, r.handoffP50, r.handoffP99, ce.historyPath)
	if !report.OK() {
		t.Errorf("the history breaks the lock's promises:\n%s", report)
	}
	if !r.allRecovered {
		t.Errorf("a healed fault was never followed by a grant: %+v", report.Recoveries)
	}
}

// mostInside is the largest number of holders inside one lock's critical
// section at once (an exit at the same instant as an enter counts first).
// The checker reports more than the limit as overlaps; this shows that a
// semaphore's limit was reached.
func mostInside(events []history.Event) int {
	sections := slices.DeleteFunc(slices.Clone(events), func(e history.Event) bool {
		return e.Kind != history.Enter && e.Kind != history.Exit
	})
	exitsFirst := func(e history.Event) int {
		if e.Kind == history.Exit {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(sections, func(a, b history.Event) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(exitsFirst(a), exitsFirst(b)))
	})
	inside, most := map[string]map[string]bool{}, 0
	for _, e := range sections {
		if inside[e.Lock] == nil {
			inside[e.Lock] = map[string]bool{}
		}
		if e.Kind == history.Exit {
			delete(inside[e.Lock], e.Holder)
			continue
		}
		inside[e.Lock][e.Holder] = true
		most = max(most, len(inside[e.Lock]))
	}
	return most
}

func count(events []history.Event, kind history.Kind) int {
	n := 0
	for _, e := range events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}
