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
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// at is t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func enter(lock, holder string, token int64, ms int) Event {
	return Event{Kind: Enter, Lock: lock, Holder: holder, Token: token, At: at(ms)}
}
func exit(lock, holder string, ms int) Event {
	return Event{Kind: Exit, Lock: lock, Holder: holder, At: at(ms)}
}
func request(lock, holder string, ms int) Event {
	return Event{Kind: Request, Lock: lock, Holder: holder, At: at(ms)}
}
func grant(lock, holder string, token int64, ms int) Event {
	return Event{Kind: Grant, Lock: lock, Holder: holder, Token: token, At: at(ms)}
}
func heal(fault, lock string, ms int) Event {
	return Event{Kind: Heal, Lock: lock, Holder: fault, At: at(ms)}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   int
		events  []Event
		want    Report
		wantOK  bool
		healsOK bool
	}{
		{
			name: "a clean mutex history: handoffs, rising tokens, every waiter granted",
			events: []Event{
				request("L", "a", 0), request("L", "b", 1),
				grant("L", "a", 1, 2), enter("L", "a", 1, 3), exit("L", "a", 10),
				grant("L", "b", 2, 10), enter("L", "b", 2, 10), exit("L", "b", 20),
			},
			want:   Report{},
			wantOK: true,
		},
		{
			name: "two holders inside at once is an overlap",
			events: []Event{
				enter("L", "a", 1, 0), enter("L", "b", 2, 5), exit("L", "a", 10), exit("L", "b", 20),
			},
			want: Report{Overlaps: []Overlap{{Lock: "L", At: at(5), Holders: []string{"a", "b"}}}},
		},
		{
			name: "a holder that never exits overlaps everyone after it",
			events: []Event{
				enter("L", "a", 1, 0), enter("L", "b", 2, 50), exit("L", "b", 60),
			},
			want: Report{Overlaps: []Overlap{{Lock: "L", At: at(50), Holders: []string{"a", "b"}}}},
		},
		{
			name: "the same holders on two different locks do not overlap",
			events: []Event{
				enter("L", "a", 1, 0), enter("M", "b", 1, 5), exit("L", "a", 10), exit("M", "b", 20),
			},
			want:   Report{},
			wantOK: true,
		},
		{
			name: "a token that goes backwards is a regression",
			events: []Event{
				enter("L", "a", 5, 0), exit("L", "a", 10), enter("L", "b", 3, 20), exit("L", "b", 30),
			},
			want: Report{Regressions: []Regression{{Lock: "L", Holder: "b", Token: 3, PreviousHolder: "a", Previous: 5, At: at(20)}}},
		},
		{
			name: "a token used twice by different holders is a regression",
			events: []Event{
				enter("L", "a", 5, 0), exit("L", "a", 10), enter("L", "b", 5, 20), exit("L", "b", 30),
			},
			want: Report{Regressions: []Regression{{Lock: "L", Holder: "b", Token: 5, PreviousHolder: "a", Previous: 5, At: at(20)}}},
		},
		{
			name: "a holder entering again with its own token (a restarted container) is not",
			events: []Event{
				enter("L", "a", 5, 0), exit("L", "a", 10), enter("L", "a", 5, 20), exit("L", "a", 30),
			},
			want:   Report{},
			wantOK: true,
		},
		{
			name: "a waiter never granted is stuck",
			events: []Event{
				request("L", "a", 0), request("L", "b", 1), grant("L", "a", 1, 2), enter("L", "a", 1, 3), exit("L", "a", 10),
			},
			want: Report{Stuck: []Stuck{{Lock: "L", Holder: "b", AskedAt: at(1)}}},
		},
		{
			name: "a waiter whose pod was deleted while it waited is not stuck",
			events: []Event{
				request("L", "a", 0), request("L", "b", 1), enter("L", "a", 1, 3),
				{Kind: Cancel, Lock: "L", Holder: "b", At: at(5)}, exit("L", "a", 10),
			},
			want:   Report{},
			wantOK: true,
		},
		{
			name: "an outside program without a token overlaps like anyone, and breaks no token order",
			events: []Event{
				enter("L", "a", 5, 0), exit("L", "a", 10), enter("L", "outsider", 0, 20),
				enter("L", "b", 6, 25), exit("L", "outsider", 30), exit("L", "b", 40),
			},
			want: Report{Overlaps: []Overlap{{Lock: "L", At: at(25), Holders: []string{"b", "outsider"}}}},
		},
		{
			name:  "a semaphore of 2: two inside is fine, three is an overlap; out-of-order entry is fine",
			limit: 2,
			events: []Event{
				enter("S", "a", 2, 0), enter("S", "b", 1, 1), enter("S", "c", 3, 2),
				exit("S", "a", 10), exit("S", "b", 10), exit("S", "c", 10),
			},
			want: Report{Overlaps: []Overlap{{Lock: "S", At: at(2), Holders: []string{"a", "b", "c"}}}},
		},
		{
			name: "recovery: from each heal to the next grant of its lock; none after the last",
			events: []Event{
				heal("redis-kill", "L", 100), grant("M", "x", 1, 150), grant("L", "a", 1, 400),
				heal("api-outage", "", 500), grant("M", "y", 2, 520),
				heal("late", "L", 900),
			},
			want: Report{Recoveries: []Recovery{
				{Fault: "redis-kill", Lock: "L", HealedAt: at(100), Granted: true, After: 300 * time.Millisecond},
				{Fault: "api-outage", HealedAt: at(500), Granted: true, After: 20 * time.Millisecond},
				{Fault: "late", Lock: "L", HealedAt: at(900)},
			}},
			wantOK: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Recorded out of order, as several processes append: Check sorts.
			events := append([]Event{}, tc.events...)
			for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
				events[i], events[j] = events[j], events[i]
			}
			got := Check(events, Options{Limit: tc.limit})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
			if got.OK() != tc.wantOK {
				t.Errorf("OK() = %v, want %v; report:\n%s", got.OK(), tc.wantOK, got)
			}
		})
	}
}

func TestWorstRecovery(t *testing.T) {
	r := Report{Recoveries: []Recovery{
		{Granted: true, After: 300 * time.Millisecond}, {Granted: true, After: 2 * time.Second}, {Granted: false},
	}}
	if worst, all := r.WorstRecovery(); worst != 2*time.Second || all {
		t.Errorf("WorstRecovery = %v, %v; want 2s, false", worst, all)
	}
}
