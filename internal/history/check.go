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
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Options say what the locks of a history promise.
type Options struct {
	// Limit is how many holders a lock allows at once: 1 (a mutex) when 0.
	Limit int
}

// Report is what Check found.
type Report struct {
	// Overlaps are the moments a lock had more live holders than allowed.
	Overlaps []Overlap
	// Regressions are tokens at or below an earlier token of the same lock.
	Regressions []Regression
	// Stuck are the waiters that asked and were never granted.
	Stuck []Stuck
	// Recoveries are, for each healed fault, the time to the next grant.
	Recoveries []Recovery
}

// Overlap is a moment when Holders were all inside their critical section
// on Lock.
type Overlap struct {
	Lock    string
	At      time.Time
	Holders []string
}

// Regression is a holder that entered with Token although Previous (held
// by PreviousHolder) had been used already on the same lock.
type Regression struct {
	Lock, Holder, PreviousHolder string
	Token, Previous              int64
	At                           time.Time
}

// Stuck is a waiter never granted the lock it asked for.
type Stuck struct {
	Lock, Holder string
	AskedAt      time.Time
}

// Recovery is the time from a fault's heal to the next grant (of the
// fault's lock, when it names one). Granted is false when no grant
// followed.
type Recovery struct {
	Fault    string
	Lock     string
	HealedAt time.Time
	Granted  bool
	After    time.Duration
}

// OK reports whether the history kept every promise: no overlap, no
// regression, no stuck waiter. Recoveries are measurements, not verdicts.
func (r Report) OK() bool {
	return len(r.Overlaps) == 0 && len(r.Regressions) == 0 && len(r.Stuck) == 0
}

// WorstRecovery is the longest time from a heal to the next grant, and
// whether every healed fault was followed by a grant.
func (r Report) WorstRecovery() (time.Duration, bool) {
	var worst time.Duration
	all := true
	for _, rc := range r.Recoveries {
		all = all && rc.Granted
		worst = max(worst, rc.After)
	}
	return worst, all
}

// String lists the violations, one a line.
func (r Report) String() string {
	var b strings.Builder
	for _, o := range r.Overlaps {
		fmt.Fprintf(&b, "overlap: lock %s held by %s at once at %s\n", o.Lock, strings.Join(o.Holders, ", "), o.At.Format(time.RFC3339Nano))
	}
	for _, g := range r.Regressions {
		fmt.Fprintf(&b, "token regression: lock %s: %s entered with token %d after %s had %d\n",
			g.Lock, g.Holder, g.Token, g.PreviousHolder, g.Previous)
	}
	for _, s := range r.Stuck {
		fmt.Fprintf(&b, "stuck: %s asked for lock %s at %s and was never granted it\n", s.Holder, s.Lock, s.AskedAt.Format(time.RFC3339Nano))
	}
	return b.String()
}

// Check checks a history (in any order; it sorts by time, file order
// breaking ties).
func Check(events []Event, opts Options) Report {
	limit := max(opts.Limit, 1)
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b Event) int { return a.At.Compare(b.At) })
	return Report{
		Overlaps:    overlaps(events, limit),
		Regressions: regressions(events, limit),
		Stuck:       stuck(events),
		Recoveries:  recoveries(events),
	}
}

// overlaps sweeps each lock's critical sections in time order. An exit at
// the same instant as an enter counts first (a handoff); a holder that never
// exits is inside until the end.
func overlaps(events []Event, limit int) []Overlap {
	live := map[string]map[string]bool{} // lock -> holders inside
	var found []Overlap
	order := func(e Event) int {
		if e.Kind == Exit {
			return 0
		}
		return 1
	}
	sections := slices.DeleteFunc(slices.Clone(events), func(e Event) bool { return e.Kind != Enter && e.Kind != Exit })
	slices.SortStableFunc(sections, func(a, b Event) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(order(a), order(b)))
	})
	for _, e := range sections {
		inside := live[e.Lock]
		if inside == nil {
			inside = map[string]bool{}
			live[e.Lock] = inside
		}
		if e.Kind == Exit {
			delete(inside, e.Holder)
			continue
		}
		inside[e.Holder] = true
		if len(inside) > limit {
			holders := make([]string, 0, len(inside))
			for h := range inside {
				holders = append(holders, h)
			}
			slices.Sort(holders)
			found = append(found, Overlap{Lock: e.Lock, At: e.At, Holders: holders})
		}
	}
	return found
}

// regressions checks the tokens holders entered with. For a mutex each new
// holder's token must exceed every earlier one on the lock; with a limit
// above 1, holders may enter out of grant order, so only a token used twice
// (by different holders) is a regression. A holder entering again with its
// own token (a restarted container) is not.
func regressions(events []Event, limit int) []Regression {
	type used struct {
		holder string
		token  int64
	}
	highest := map[string]used{}
	seen := map[string]map[int64]string{}
	var found []Regression
	for _, e := range events {
		if e.Kind != Enter || e.Token == 0 {
			continue
		}
		if seen[e.Lock] == nil {
			seen[e.Lock] = map[int64]string{}
		}
		prev, ok := highest[e.Lock]
		switch {
		case limit == 1 && ok && e.Token <= prev.token && (e.Token != prev.token || e.Holder != prev.holder):
			found = append(found, Regression{Lock: e.Lock, Holder: e.Holder, Token: e.Token,
				PreviousHolder: prev.holder, Previous: prev.token, At: e.At})
		case limit > 1 && seen[e.Lock][e.Token] != "" && seen[e.Lock][e.Token] != e.Holder:
			found = append(found, Regression{Lock: e.Lock, Holder: e.Holder, Token: e.Token,
				PreviousHolder: seen[e.Lock][e.Token], Previous: e.Token, At: e.At})
		}
		seen[e.Lock][e.Token] = e.Holder
		if !ok || e.Token > prev.token {
			highest[e.Lock] = used{holder: e.Holder, token: e.Token}
		}
	}
	return found
}

// stuck finds requests with no later grant, enter or cancel of the same
// holder on the same lock.
func stuck(events []Event) []Stuck {
	type key struct{ lock, holder string }
	asked := map[key]time.Time{}
	var order []key
	for _, e := range events {
		k := key{e.Lock, e.Holder}
		switch e.Kind {
		case Request:
			if _, ok := asked[k]; !ok {
				order = append(order, k)
				asked[k] = e.At
			}
		case Grant, Enter, Cancel:
			delete(asked, k)
		}
	}
	var found []Stuck
	for _, k := range order {
		if at, ok := asked[k]; ok {
			found = append(found, Stuck{Lock: k.lock, Holder: k.holder, AskedAt: at})
		}
	}
	return found
}

// recoveries measures, for each heal, the time to the first grant (or, when
// grants were not recorded, enter) after it, of the fault's lock when it
// names one.
func recoveries(events []Event) []Recovery {
	var found []Recovery
	for i, e := range events {
		if e.Kind != Heal {
			continue
		}
		rc := Recovery{Fault: e.Holder, Lock: e.Lock, HealedAt: e.At}
		for _, next := range events[i+1:] {
			if (next.Kind == Grant || next.Kind == Enter) && (e.Lock == "" || next.Lock == e.Lock) {
				rc.Granted, rc.After = true, next.At.Sub(e.At)
				break
			}
		}
		found = append(found, rc)
	}
	return found
}
