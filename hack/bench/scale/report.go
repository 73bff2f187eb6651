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
	"io"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/distlock/distlock/hack/bench/internal/summary"
)

// The targets (issue 8, "Scale without loss" and "Cost budget").
const (
	targetHandoffsPerSecond   = summary.TargetHandoffsPerSecond
	targetWritesPerHandoff    = summary.TargetWritesPerHandoff
	targetProbeP99            = summary.TargetProbeP99Ms * time.Millisecond
	targetRSS                 = summary.TargetRSSMiB << 20
	targetWritesPerLockLease  = summary.TargetWritesPerLockLease
	controllerName            = "distributedlock"
	restRequests              = "rest_client_requests_total"
	backendCalls              = "distlock_backend_call_duration_seconds"
	reconcileTotal            = "controller_runtime_reconcile_total"
	reconcileTime             = "controller_runtime_reconcile_time_seconds"
	queueTime                 = "workqueue_queue_duration_seconds"
	renewalLag                = "distlock_renewal_lag_seconds"
	holdsLost                 = "distlock_holds_lost_total"
	writeMethods              = "POST PUT PATCH DELETE"
	methodLabel               = "method"
	notMeasured               = "not measured"
	pass, fail                = "PASS", "FAIL"
	self                      = "this command"
	mib                       = 1 << 20
	percentileRowValueFormat  = "%s / %s / %s (max %s, n=%d)"
	twoPercentileValueFormat  = "%s / %s (max %s, n=%d, %d over %v)"
	perHandoffBreakdownFormat = "%.2f lock status, %.2f lock other, %.2f pod annotations, %.2f Events, %.2f unaccounted"
)

// result is everything a run measured.
type result struct {
	opts      options
	env       *environment
	t         *tracker
	checker   *backendChecker
	loadStart string

	start, idleFrom, idleTo, probeTo, drainFrom, drainTo snapshot
	created, allHeld, drained                            time.Duration

	calibration window
	calibrated  int
}

func newResult(opts options, env *environment) *result {
	return &result{opts: opts, env: env, loadStart: loadAverage()}
}

// window is what happened between two snapshots.
type window struct{ from, to snapshot }

func (w window) ok() bool            { return !w.from.at.IsZero() && !w.to.at.IsZero() }
func (w window) dur() time.Duration  { return w.to.at.Sub(w.from.at) }
func (w window) managerCPU() float64 { return (w.to.cpu - w.from.cpu).Seconds() }
func (w window) metric(name string, match labelMatch) float64 {
	return w.from.m.delta(w.to.m, name, match)
}

// writes are the manager's API requests that write (any response code).
func (w window) writes() float64 {
	return w.metric(restRequests, withLabel(methodLabel, strings.Fields(writeMethods)...))
}

func (w window) reads() float64 { return w.metric(restRequests, withLabel(methodLabel, "GET")) }

func (w window) eventWrites() float64 {
	return float64(w.to.c.eventCreates - w.from.c.eventCreates + w.to.c.eventUpdates - w.from.c.eventUpdates)
}

func (w window) breakdown(per float64) string {
	status := float64(w.to.c.lockStatusWrites - w.from.c.lockStatusWrites)
	other := float64(w.to.c.lockOtherWrites - w.from.c.lockOtherWrites)
	pods := float64(w.to.c.podAnnotations - w.from.c.podAnnotations)
	events := w.eventWrites()
	rest := w.writes() - status - other - pods - events
	return fmt.Sprintf(perHandoffBreakdownFormat, status/per, other/per, pods/per, events/per, rest/per)
}

func (r *result) lostTotal() int {
	if r.t == nil {
		return 0
	}
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	return len(r.t.losses)
}

// row is one line of the table.
type row struct{ measure, value, target, verdict string }

func verdict(ok bool) string {
	if ok {
		return pass
	}
	return fail
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// percentile of sorted latencies (nearest rank).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func (r *result) rows() []row {
	o := r.opts
	rows := []row{
		{"locks × pods", fmt.Sprintf("%d × %d, and lock %q with %d pods for the single-lock handoffs (%d pods)",
			o.locks, o.pods, probeLock, o.samples+1, o.locks*o.pods+o.samples+1), "1000 × 10", ""},
		{"backend(s), lease", fmt.Sprintf("%s (round robin), leaseDuration %v", strings.Join(o.backends, " + "), o.lease), "", ""},
	}
	if r.created > 0 {
		pods := o.locks*o.pods + o.samples + 1
		rows = append(rows, row{"creation (locks, then pods created and reported Running)",
			fmt.Sprintf("%s (%.0f pods/s)", secs(r.created), float64(pods)/r.created.Seconds()), "", ""})
	}
	if r.allHeld > 0 {
		rows = append(rows, row{"time until every lock is held (from the first create)", secs(r.allHeld), "", ""})
	}
	if r.t != nil {
		for _, p := range []struct{ name, phase string }{
			{"holds lost: creation", phaseCreate}, {"holds lost: hold (idle)", phaseHold},
			{"holds lost: hold (single-lock handoffs)", phaseProbe}, {"holds lost: drain", phaseDrain},
		} {
			n := len(r.t.lossesIn(p.phase))
			rows = append(rows, row{p.name, fmt.Sprint(n), "0", verdict(n == 0)})
		}
	}
	rows = append(rows, r.drainRows()...)
	rows = append(rows, r.probeRows()...)
	if w := (window{r.idleFrom, r.idleTo}); w.ok() {
		perLock := r.idleWritesPerLockLease()
		rows = append(rows,
			row{"API writes per held lock per lease period (idle, all writes)", fmt.Sprintf("%.2f", perLock),
				fmt.Sprintf("≤ %d", targetWritesPerLockLease), verdict(perLock <= targetWritesPerLockLease)},
			row{"manager CPU per minute, idle with every lock held", fmt.Sprintf("%.1f s", w.managerCPU()/w.dur().Minutes()), "", ""})
	}
	if w := r.calibration; w.ok() {
		rate := r.calibrationRate()
		rows = append(rows, row{"calibration: pod DELETE + lock status PATCH pairs/s, manager paused (the API server's ceiling)",
			fmt.Sprintf("%.0f (kube-apiserver %.1f ms + etcd %.1f ms CPU per pair)", rate,
				1000*(w.to.server["kube-apiserver"]-w.from.server["kube-apiserver"]).Seconds()/float64(r.calibrated),
				1000*(w.to.server["etcd"]-w.from.server["etcd"]).Seconds()/float64(r.calibrated)),
			fmt.Sprintf("≥ %d to allow the handoff target", targetHandoffsPerSecond), ""})
	}
	if peak := r.peakRSS(); r.env != nil && r.env.manager != nil {
		rows = append(rows, row{"manager peak RSS (VmHWM)", fmt.Sprintf("%.0f MiB", float64(peak)/mib),
			fmt.Sprintf("≤ %d MiB", targetRSS/mib), verdict(peak > 0 && peak <= targetRSS)})
	}
	return rows
}

func (r *result) drainRows() []row {
	if r.t == nil {
		return nil
	}
	lat := r.t.latencies(phaseDrain)
	if len(lat) == 0 {
		return []row{{"drain: handoffs/s", notMeasured, fmt.Sprintf("≥ %d", targetHandoffsPerSecond), fail}}
	}
	rate, span := r.drainRate()
	rows := []row{
		{"drain: handoffs/s (handoffs ÷ first delete to last handoff)", fmt.Sprintf("%.0f (%d in %s)", rate, len(lat), secs(span)),
			fmt.Sprintf("≥ %d", targetHandoffsPerSecond), verdict(rate >= targetHandoffsPerSecond)},
		{"drain: handoff p50 / p90 / p99 (holder deleted → next holder seen)", fmt.Sprintf(percentileRowValueFormat,
			ms(percentile(lat, .5)), ms(percentile(lat, .9)), ms(percentile(lat, .99)), ms(lat[len(lat)-1]), len(lat)), "", ""},
		{"drain: total time until every queue is empty", secs(r.drained), "", ""},
	}
	if w := (window{r.drainFrom, r.drainTo}); w.ok() {
		n := float64(len(lat))
		target := fmt.Sprintf("≤ %d", targetWritesPerHandoff)
		if r.opts.countWrites {
			besides := r.writesPerHandoff()
			rows = append(rows, row{"API writes per handoff besides Events", fmt.Sprintf("%.2f", besides),
				target, verdict(besides <= targetWritesPerHandoff)})
		} else {
			rows = append(rows, row{"API writes per handoff besides Events", "not told apart (-count-writes=false)", target, ""})
		}
		rows = append(rows,
			row{"API writes per handoff, all (Events included)", fmt.Sprintf("%.2f", w.writes()/n), "", ""},
			row{"uncached API reads (GET) per handoff", fmt.Sprintf("%.2f", w.reads()/n), "", ""})
	}
	return rows
}

func (r *result) probeRows() []row {
	if r.t == nil {
		return nil
	}
	lat := r.t.latencies(phaseProbe)
	target := fmt.Sprintf("p99 ≤ %v", targetProbeP99)
	if len(lat) == 0 {
		return []row{{"single-lock handoff p50 / p99 while every other lock is held", notMeasured, target, fail}}
	}
	p99 := percentile(lat, .99)
	over := 0
	for _, d := range lat {
		if d > targetProbeP99 {
			over++
		}
	}
	return []row{{"single-lock handoff p50 / p99 while every other lock is held",
		fmt.Sprintf(twoPercentileValueFormat, ms(percentile(lat, .5)), ms(p99), ms(lat[len(lat)-1]), len(lat), over, targetProbeP99),
		target, verdict(p99 <= targetProbeP99)}}
}

// drainRate is the drain's handoffs per second and the span they took
// (first delete to last handoff), or 0.
func (r *result) drainRate() (float64, time.Duration) {
	n := len(r.t.latencies(phaseDrain))
	if n == 0 {
		return 0, 0
	}
	span := r.t.lastSample(phaseDrain).Sub(r.drainFrom.at)
	return float64(n) / span.Seconds(), span
}

// writesPerHandoff are the manager's API writes besides Events per drain
// handoff, or 0 when not measured.
func (r *result) writesPerHandoff() float64 {
	n := len(r.t.latencies(phaseDrain))
	if w := (window{r.drainFrom, r.drainTo}); w.ok() && r.opts.countWrites && n > 0 {
		return (w.writes() - w.eventWrites()) / float64(n)
	}
	return 0
}

// idleWritesPerLockLease are the manager's writes per held lock per lease
// period during the idle hold, or 0 when not measured.
func (r *result) idleWritesPerLockLease() float64 {
	w := window{r.idleFrom, r.idleTo}
	if !w.ok() {
		return 0
	}
	return w.writes() / (float64(r.opts.locks+1) * w.dur().Seconds() / r.opts.lease.Seconds())
}

// calibrationRate is the calibration's pairs per second, or 0.
func (r *result) calibrationRate() float64 {
	if w := r.calibration; w.ok() {
		return float64(r.calibrated) / w.dur().Seconds()
	}
	return 0
}

// peakRSS is the manager's peak RSS in bytes, or 0.
func (r *result) peakRSS() int64 {
	if r.env == nil || r.env.manager == nil {
		return 0
	}
	_, peak := memOf(r.env.managerPID())
	return peak
}

// print writes the table and the report.
func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "\n## distlock at scale: %d locks × %d pods, %s, lease %v\n\n",
		r.opts.locks, r.opts.pods, strings.Join(r.opts.backends, "+"), r.opts.lease)
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s; manager built from %s; load average at start %s, at end %s.\n\n",
		runtime.NumCPU(), cpuModel(), runtime.Version(), r.commit(), r.loadStart, loadAverage())
	fmt.Fprintf(w, "| measure | value | target | result |\n")
	fmt.Fprintf(w, "|---|---|---|---|\n")
	for _, row := range r.rows() {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", row.measure, row.value, row.target, row.verdict)
	}
	fmt.Fprintf(w, "\n")
	r.printDetails(w)
}

func (r *result) commit() string {
	switch {
	case r.opts.label != "":
		return r.opts.label
	case r.env == nil || r.env.commit == "":
		return r.opts.managerSrc
	}
	return r.env.commit
}

func (r *result) printDetails(w io.Writer) {
	fmt.Fprintf(w, "Details:\n")
	windows := []struct {
		name string
		w    window
		per  float64
		unit string
	}{
		{"creation until every lock held", window{r.start, r.idleFrom}, 0, ""},
		{"hold, idle", window{r.idleFrom, r.idleTo}, float64(r.opts.locks+1) * r.idleTo.at.Sub(r.idleFrom.at).Seconds() /
			r.opts.lease.Seconds(), "held lock per lease period"},
		{"hold, single-lock handoffs", window{r.idleTo, r.probeTo}, float64(len(r.latencies(phaseProbe))), "handoff"},
		{"drain", window{r.drainFrom, r.drainTo}, float64(len(r.latencies(phaseDrain))), "handoff"},
	}
	for _, win := range windows {
		if !win.w.ok() {
			continue
		}
		r.printWindow(w, win.name, win.w, win.per, win.unit)
	}
	if r.env != nil && r.env.manager != nil {
		rss, peak := memOf(r.env.managerPID())
		fmt.Fprintf(w, "- memory: manager RSS %.0f MiB now, peak %.0f MiB", float64(rss)/mib, float64(peak)/mib)
		names := make([]string, 0, len(r.env.serverPID))
		for name := range r.env.serverPID {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			_, p := memOf(r.env.serverPID[name])
			fmt.Fprintf(w, "; %s peak %.0f MiB", name, float64(p)/mib)
		}
		fmt.Fprintf(w, "\n")
	}
	if w2 := (window{r.start, r.lastSnapshot()}); w2.ok() {
		fmt.Fprintf(w, "- holds the manager itself counted lost (distlock_holds_lost_total): %.0f\n", w2.metric(holdsLost, nil))
	}
	if r.t != nil {
		fmt.Fprintf(w, "- locks whose Held condition was not True while they had a holder (after creation): %d\n", r.t.notTrueCount())
		r.printEvents(w)
		r.printLosses(w)
	}
	if r.checker != nil {
		fmt.Fprintf(w, "- direct backend checks (every lease/3, creation and hold): %s\n", r.checker.summary())
	}
	if r.env != nil {
		fmt.Fprintf(w, "- manager log: %s\n", r.env.logPath)
	}
}

func (r *result) latencies(phase string) []time.Duration {
	if r.t == nil {
		return nil
	}
	return r.t.latencies(phase)
}

func (r *result) lastSnapshot() snapshot {
	for _, s := range []snapshot{r.drainTo, r.drainFrom, r.probeTo, r.idleTo, r.idleFrom} {
		if !s.at.IsZero() {
			return s
		}
	}
	return snapshot{}
}

func (r *result) printWindow(w io.Writer, name string, win window, per float64, unit string) {
	d := win.dur()
	fmt.Fprintf(w, "- %s (%s): manager CPU %.1f s (%.0f%% of one core)", name, secs(d), win.managerCPU(),
		100*win.managerCPU()/d.Seconds())
	for _, srv := range []string{"kube-apiserver", "etcd", self} {
		if _, ok := win.to.server[srv]; ok {
			fmt.Fprintf(w, ", %s %.1f s", srv, (win.to.server[srv] - win.from.server[srv]).Seconds())
		}
	}
	fmt.Fprintf(w, "; manager API requests: %s\n", requestsByMethod(win))
	switch {
	case per > 0 && r.opts.countWrites:
		fmt.Fprintf(w, "  - per %s: %.2f writes (%s), %.2f GETs\n", unit, win.writes()/per, win.breakdown(per), win.reads()/per)
	case per > 0:
		fmt.Fprintf(w, "  - per %s: %.2f writes, %.2f GETs\n", unit, win.writes()/per, win.reads()/per)
	}
	rec := func(res string) float64 {
		return win.metric(reconcileTotal, func(l map[string]string) bool {
			return l["controller"] == controllerName && (res == "" || l["result"] == res)
		})
	}
	ctl := withLabel("controller", controllerName)
	queue := withLabel("name", controllerName)
	fmt.Fprintf(w, "  - reconciles: %.0f (%.0f requeue_after, %.0f error); reconcile time mean %s, p99 %s; "+
		"work-queue wait p50 %s, p99 %s; queue depth at end %.0f\n",
		rec(""), rec("requeue_after"), rec("error"),
		fmean(win.from.m.mean(win.to.m, reconcileTime, ctl)), fsec(win.from.m.quantile(win.to.m, reconcileTime, ctl, .99)),
		fsec(win.from.m.quantile(win.to.m, queueTime, queue, .5)), fsec(win.from.m.quantile(win.to.m, queueTime, queue, .99)),
		win.to.m.sum("workqueue_depth", queue))
	ops := labelValues(win, backendCalls+"_count", "backend", "op")
	calls := make([]string, 0, len(ops))
	for _, k := range ops {
		b, op, _ := strings.Cut(k, " ")
		match := func(l map[string]string) bool { return l["backend"] == b && l["op"] == op }
		calls = append(calls, fmt.Sprintf("%s %s %.0f (p99 %s)", b, op, win.metric(backendCalls+"_count", match),
			fsec(win.from.m.quantile(win.to.m, backendCalls, match, .99))))
	}
	fmt.Fprintf(w, "  - backend calls: %s; renewal lag p50 %s, p99 %s; goroutines at end %.0f\n", strings.Join(calls, ", "),
		fsec(win.from.m.quantile(win.to.m, renewalLag, nil, .5)), fsec(win.from.m.quantile(win.to.m, renewalLag, nil, .99)),
		win.to.m.sum("go_goroutines", nil))
}

// labelValues lists the values of labels (joined by a space) of the series
// of name that grew in win, sorted.
func labelValues(win window, name string, labels ...string) []string {
	seen := map[string]bool{}
	for key, s := range win.to.m {
		if s.name != name || s.value <= win.from.m[key].value {
			continue
		}
		vals := make([]string, len(labels))
		for i, l := range labels {
			vals[i] = s.labels[l]
		}
		seen[strings.Join(vals, " ")] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// requestsByMethod lists the manager's API requests in win by method and
// response code.
func requestsByMethod(win window) string {
	counts := map[string]float64{}
	for key, s := range win.to.m {
		if s.name != restRequests {
			continue
		}
		if n := s.value - win.from.m[key].value; n > 0 {
			counts[s.labels[methodLabel]+" "+s.labels["code"]] += n
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %.0f", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

// fmean prints a mean in seconds.
func fmean(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return ms(time.Duration(s * float64(time.Second)))
}

// fsec prints a bucket bound from quantile.
func fsec(s float64) string {
	switch {
	case math.IsNaN(s):
		return "-"
	case math.IsInf(s, 1):
		return "> last bucket"
	case s >= 1:
		return fmt.Sprintf("≤ %.3g s", s)
	}
	return fmt.Sprintf("≤ %.3g ms", s*1000)
}

func (r *result) printEvents(w io.Writer) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	keys := make([]string, 0, len(r.t.reasons))
	for k := range r.t.reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.t.reasons[k]))
	}
	if r.opts.countWrites {
		fmt.Fprintf(w, "- Events created: %d, updated (series): %d; created by object and reason: %s\n",
			r.t.count.eventCreates, r.t.count.eventUpdates, strings.Join(parts, ", "))
	}
	if len(r.t.errs) > 0 {
		fmt.Fprintf(w, "- watch errors: %s\n", strings.Join(r.t.errs, "; "))
	}
	if r.t.dropped > 0 {
		fmt.Fprintf(w, "- new holders the drain driver missed (channel full): %d\n", r.t.dropped)
	}
}

func (r *result) printLosses(w io.Writer) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	if len(r.t.losses) == 0 {
		fmt.Fprintf(w, "- lost holds: none\n")
		return
	}
	fmt.Fprintf(w, "- lost holds: %d; the first:\n", len(r.t.losses))
	for i, l := range r.t.losses {
		if i == 20 {
			break
		}
		fmt.Fprintf(w, "  - %s at %s: lock %s token %d, %s: %s\n", l.phase, secs(l.at), l.lock, l.token, l.how, l.detail)
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
