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

// Command bench compares distlock's lock backends with the lock libraries
// people would otherwise use, in one run against the same real servers
// (redis-server and ZooKeeper, started on loopback ports by
// internal/testservers), and prints one markdown table: each row distlock,
// the anchor and their ratio. With -handoff it adds the rows of the
// handoff benchmark (internal/controller BenchmarkHandoff, raw `go test
// -bench` output), beside client-go leader election on a Lease.
//
// Every measurement runs each library for -duration, -reps times, the
// libraries taking turns within each repetition (in a rotating order), after
// a warm-up. A row shows the medians over the repetitions and the median and
// range of the ratios of the same repetition, so that a load change on the
// machine affects both sides of a ratio alike. Run it with `make bench`,
// which provides the servers and the handoff rows (hack/bench.sh).
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distlock/distlock/internal/backend/bench"
	"github.com/distlock/distlock/internal/testservers"
)

func main() {
	duration := flag.Duration("duration", envDuration("BENCH_DURATION", 3*time.Second), "how long each measurement runs ($BENCH_DURATION)")
	reps := flag.Int("reps", envInt("BENCH_REPS", 3), "repetitions of each measurement ($BENCH_REPS)")
	warmup := flag.Duration("warmup", time.Second, "warm-up of each library before each case")
	clients := flag.String("clients", "1,8,64", "comma-separated numbers of concurrent clients")
	countCycles := flag.Int("count", 1000, "cycles over which requests per cycle are counted")
	handoff := flag.String("handoff", "", "file with the raw `go test -bench BenchmarkHandoff` output to add as rows")
	scale := flag.String("scale", "", "file with a scale run's summary (hack/bench/scale -summary) to add as rows")
	only := flag.String("only", "", "run only this backend: redis, zookeeper, or none (the -handoff rows alone)")
	details := flag.Bool("details", true, "print the requests per cycle by type and the CPU time per attempt to stderr")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if !slices.Contains([]string{"", "redis", "zookeeper", "none"}, *only) {
		fail(fmt.Errorf("-only: %q is not redis, zookeeper or none", *only))
	}
	b := &bencher{duration: *duration, reps: *reps, warmup: *warmup}
	for _, f := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-clients: %q is not a positive number", f))
		}
		b.clients = append(b.clients, n)
	}
	if *handoff != "" {
		rows, err := handoffRows(*handoff)
		if err != nil {
			fail(err)
		}
		b.rows = append(b.rows, rows...)
	}
	if *scale != "" {
		rows, err := scaleRows(*scale)
		if err != nil {
			fail(err)
		}
		b.rows = append(b.rows, rows...)
	}
	if *only == "" || *only == "redis" {
		if err := b.redis(ctx, *countCycles); err != nil {
			fail(err)
		}
	}
	if *only == "" || *only == "zookeeper" {
		if err := b.zooKeeper(ctx, *countCycles); err != nil {
			fail(err)
		}
	}
	printTable(os.Stdout, b.rows)
	if *details {
		fmt.Fprintln(os.Stderr)
		printDetails(os.Stderr, b)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// row is one line of the table.
type row struct {
	backend, scenario, metric string
	ours, anchor, ratio       string
	requests                  string
}

// bencher runs the measurements and collects the rows.
type bencher struct {
	duration, warmup time.Duration
	reps             int
	clients          []int
	rows             []row
	// counts and cpu are the lines of the two tables of details.
	counts, cpu []string
	// countRun, when set, counts the requests of a contended run of a
	// library (ZooKeeper).
	countRun func(bench.Library, bench.Case) (bench.Counts, error)
}

// connected is a library with its open connection.
type connected struct {
	bench.Library
	conn bench.Conn
}

func connectAll(ctx context.Context, libs []bench.Library, addr string) ([]connected, func(), error) {
	var out []connected
	closeAll := func() {
		for _, c := range out {
			_ = c.conn.Close()
		}
	}
	for _, lib := range libs {
		conn, err := lib.Connect(ctx, addr)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s: %w", lib.Name, err)
		}
		out = append(out, connected{lib, conn})
	}
	return out, closeAll, nil
}

// measure runs every library on one case, reps times in a rotating order
// after a warm-up, and returns each library's results by repetition.
func (b *bencher) measure(ctx context.Context, libs []connected, c bench.Case, name string) ([][]bench.Result, error) {
	warm := c
	warm.Duration, warm.Latency = b.warmup, false
	for _, lib := range libs {
		if _, err := bench.Run(ctx, lib.conn, warm, keyFor(name, lib.Name, "warmup")); err != nil {
			return nil, fmt.Errorf("%s, %s (warm-up): %w", name, lib.Name, err)
		}
	}
	results := make([][]bench.Result, len(libs))
	for rep := range b.reps {
		for k := range libs {
			i := (k + rep) % len(libs)
			r, err := bench.Run(ctx, libs[i].conn, c, keyFor(name, libs[i].Name, strconv.Itoa(rep)))
			if err != nil {
				return nil, fmt.Errorf("%s, %s: %w", name, libs[i].Name, err)
			}
			fmt.Fprintf(os.Stderr, "  %-28s %-18s rep %d: %8.0f held/s %9.0f attempts/s  p50 %v\n",
				name, libs[i].Name, rep+1, r.HeldPerSecond(), r.AttemptsPerSecond(), r.Percentile(0.5))
			results[i] = append(results[i], r)
		}
	}
	return results, nil
}

// keyFor names a fresh key for one run, so that no run finds what another
// left behind.
func keyFor(scenario, lib, rep string) string {
	return strings.NewReplacer(" ", "-", ",", "", "/", "-", "(", "", ")", "").
		Replace(fmt.Sprintf("%s-%s-%s-%d", scenario, lib, rep, time.Now().UnixNano()))
}

func (b *bencher) redis(ctx context.Context, countCycles int) error {
	fmt.Fprintln(os.Stderr, "starting redis-server...")
	srv, err := testservers.StartRedis(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Stop() }()

	libs, closeAll, err := connectAll(ctx, bench.RedisLibraries, srv.Addr)
	if err != nil {
		return err
	}
	defer closeAll()
	count := func(lib bench.Library, s bench.Setting) (bench.Counts, error) {
		return bench.CountRedis(ctx, srv.Addr, lib, countCycles, s)
	}
	return b.backend(ctx, "Redis", srv.Pid(), libs, count, bench.LockFree, bench.HeldElsewhere)
}

func (b *bencher) zooKeeper(ctx context.Context, countCycles int) error {
	fmt.Fprintln(os.Stderr, "starting ZooKeeper...")
	srv, err := testservers.StartZooKeeper(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Stop() }()
	if err := bench.PrepareZooKeeper(ctx, srv.Addr); err != nil {
		return err
	}
	libs, closeAll, err := connectAll(ctx, bench.ZooKeeperLibraries, srv.Addr)
	if err != nil {
		return err
	}
	defer closeAll()
	count := func(lib bench.Library, s bench.Setting) (bench.Counts, error) {
		return bench.CountZooKeeper(ctx, srv.Addr, lib, countCycles, s)
	}
	b.countRun = func(lib bench.Library, c bench.Case) (bench.Counts, error) {
		c.Duration, c.Latency, c.ServerPid = b.warmup, false, 0
		return bench.CountZooKeeperRun(ctx, srv.Addr, lib, c)
	}
	defer func() { b.countRun = nil }()
	return b.backend(ctx, "ZooKeeper", srv.Pid(), libs, count, bench.LockFree, bench.LockNodeKept, bench.HeldElsewhere)
}

// backend measures distlock against every anchor in libs at each number
// of clients and adds the rows. libs[0] is distlock trying once; a distlock
// library that waits in line is compared with the anchors that wait too.
//
// Before, it counts the requests per cycle of each library in each of
// settings (HeldElsewhere for libraries that try once only).
func (b *bencher) backend(ctx context.Context, name string, serverPid int, libs []connected,
	count func(bench.Library, bench.Setting) (bench.Counts, error), settings ...bench.Setting) error {
	counts := map[bench.Setting]map[string]bench.Counts{}
	for _, s := range settings {
		counts[s] = map[string]bench.Counts{}
		for _, lib := range libs {
			// A waiting variant of distlock sends what distlock does
			// when nobody else is there; a waiting library never fails.
			if lib.Ours && lib.Waits || s == bench.HeldElsewhere && lib.Waits || s == bench.LockNodeKept && !lib.Ours {
				continue
			}
			c, err := count(lib.Library, s)
			if err != nil {
				return fmt.Errorf("counting %s (%v): %w", lib.Name, s, err)
			}
			counts[s][lib.Name] = c
			d := fmt.Sprintf("| %s | %s | %s | %.3g | %s |", name, lib.Name, s, c.PerCycle(), bench.Describe(c.Sent, c.Cycles))
			if len(c.Scripted) > 0 {
				d += fmt.Sprintf(" %.3g: %s |", c.ScriptedPerCycle(), bench.Describe(c.Scripted, c.Cycles))
			} else {
				d += " |"
			}
			b.counts = append(b.counts, d)
		}
	}
	free, failed := counts[bench.LockFree], counts[bench.HeldElsewhere]
	perCycle := func(m map[string]bench.Counts, lib string) string {
		if c, ok := m[lib]; ok {
			return fmt.Sprintf("%.3g", c.PerCycle())
		}
		return "-"
	}

	ours := libs[0]
	for _, n := range b.clients {
		scenario := "1 client"
		if n > 1 {
			scenario = fmt.Sprintf("%d clients, one key", n)
		}
		// A single client never waits, so a waiting variant of distlock
		// adds nothing there.
		set := slices.DeleteFunc(slices.Clone(libs), func(l connected) bool { return n == 1 && l.Ours && l.Waits })
		fmt.Fprintf(os.Stderr, "%s, %s:\n", name, scenario)
		c := bench.Case{Clients: n, SharedKey: n > 1, Duration: b.duration, Latency: n == 1, ServerPid: serverPid}
		results, err := b.measure(ctx, set, c, name+" "+scenario)
		if err != nil {
			return err
		}
		for i, lib := range set {
			client, server := bench.Median(each(results[i], cpuTime(0))), bench.Median(each(results[i], cpuTime(1)))
			b.cpu = append(b.cpu, fmt.Sprintf("| %s | %s | %s | %s | %s | %.0f | %.0f |", name, scenario, lib.Name,
				rate(results[i], held), rate(results[i], attempts), client, server))
		}
		for i, anchor := range set {
			if anchor.Ours {
				continue
			}
			o, a := results[0], results[i]
			if n == 1 {
				b.rows = append(b.rows,
					row{backend: name, scenario: scenario, metric: "acquire+release/s",
						ours: rate(o, held), anchor: anchor.Name + " " + rate(a, held), ratio: ratio(o, a, held),
						requests: perCycle(free, ours.Name) + "; " + perCycle(free, anchor.Name)},
					row{backend: name, scenario: scenario, metric: "latency p50 / p99",
						ours: latency(o), anchor: anchor.Name + " " + latency(a), ratio: latencyRatio(o, a)})
				continue
			}
			tries := scenario + ", " + ours.Name + " tries once"
			waits := ""
			if anchor.Waits {
				tries += " while " + anchor.Name + " waits in line"
				waits = " (= acquisitions)"
			}
			b.rows = append(b.rows,
				row{backend: name, scenario: tries, metric: "acquisitions/s",
					ours: rate(o, held), anchor: anchor.Name + " " + rate(a, held), ratio: ratio(o, a, held)},
				row{backend: name, scenario: tries, metric: "attempts/s",
					ours: rate(o, attempts), anchor: anchor.Name + " " + rate(a, attempts) + waits, ratio: ratio(o, a, attempts),
					requests: "failed attempt: " + perCycle(failed, ours.Name) + "; " + perCycle(failed, anchor.Name)})
			if !anchor.Waits {
				continue
			}
			for j, variant := range set {
				if !variant.Ours || !variant.Waits {
					continue
				}
				requests := ""
				if b.countRun != nil {
					v, err := b.countRun(variant.Library, c)
					if err != nil {
						return err
					}
					w, err := b.countRun(anchor.Library, c)
					if err != nil {
						return err
					}
					requests = fmt.Sprintf("per acquisition: %.3g; %.3g", v.PerCycle(), w.PerCycle())
					for _, x := range []struct {
						lib    string
						counts bench.Counts
					}{{variant.Name, v}, {anchor.Name, w}} {
						b.counts = append(b.counts, fmt.Sprintf("| %s | %s | %s, waiting in line | %.3g per acquisition | %s | |",
							name, x.lib, scenario, x.counts.PerCycle(), bench.Describe(x.counts.Sent, x.counts.Cycles)))
					}
				}
				b.rows = append(b.rows, row{backend: name, scenario: scenario + ", both wait in line", metric: "acquisitions/s",
					ours: variant.Name + " " + rate(results[j], held), anchor: anchor.Name + " " + rate(a, held),
					ratio: ratio(results[j], a, held), requests: requests})
			}
		}
	}
	return nil
}

// cpuTime returns the client's (which 0) or the server's (1) CPU time per
// attempt in microseconds.
func cpuTime(which int) func(bench.Result) float64 {
	return func(r bench.Result) float64 {
		c, s := r.CPUPerAttempt()
		return float64([]time.Duration{c, s}[which]) / float64(time.Microsecond)
	}
}

func held(r bench.Result) float64     { return r.HeldPerSecond() }
func attempts(r bench.Result) float64 { return r.AttemptsPerSecond() }

// rate is the median of metric over the repetitions, per second.
func rate(rs []bench.Result, metric func(bench.Result) float64) string {
	return commas(bench.Median(each(rs, metric))) + "/s"
}

// ratio is ours/anchor of metric, repetition by repetition: the median and
// the range.
func ratio(ours, anchor []bench.Result, metric func(bench.Result) float64) string {
	rs := make([]float64, 0, len(ours))
	for i := range min(len(ours), len(anchor)) {
		if a := metric(anchor[i]); a > 0 {
			rs = append(rs, metric(ours[i])/a)
		}
	}
	return ratioRange(rs)
}

func ratioRange(rs []float64) string {
	if len(rs) == 0 {
		return notAvailable
	}
	s := fmt.Sprintf("%.2f×", bench.Median(rs))
	if len(rs) > 1 {
		s += fmt.Sprintf(" (%.2f–%.2f)", slices.Min(rs), slices.Max(rs))
	}
	return s
}

// latency is the median p50 and p99 over the repetitions.
func latency(rs []bench.Result) string {
	p := func(q float64) time.Duration {
		return time.Duration(bench.Median(each(rs, func(r bench.Result) float64 { return float64(r.Percentile(q)) })))
	}
	return fmt.Sprintf("%s / %s", micros(p(0.5)), micros(p(0.99)))
}

// latencyRatio is anchor/ours of the p50 and p99 latencies (above 1:
// distlock is faster), repetition by repetition.
func latencyRatio(ours, anchor []bench.Result) string {
	var p50, p99 []float64
	for i := range min(len(ours), len(anchor)) {
		if o50, o99 := ours[i].Percentile(0.5), ours[i].Percentile(0.99); o50 > 0 && o99 > 0 {
			p50 = append(p50, float64(anchor[i].Percentile(0.5))/float64(o50))
			p99 = append(p99, float64(anchor[i].Percentile(0.99))/float64(o99))
		}
	}
	return fmt.Sprintf("p50 %s; p99 %.2f×", ratioRange(p50), bench.Median(p99))
}

func each(rs []bench.Result, metric func(bench.Result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = metric(r)
	}
	return out
}

func micros(d time.Duration) string {
	if d >= time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

// commas formats x rounded, with thousands separators.
func commas(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// handoffRows reads BenchmarkHandoff results (p50-ms, p90-ms, p99-ms when
// reported, max-ms) and compares each distlock case with the Lease case.
func handoffRows(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type result struct {
		n       string
		metrics map[string]string
	}
	results := map[string]result{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || !strings.HasPrefix(fields[0], "BenchmarkHandoff/") {
			continue
		}
		name := strings.TrimPrefix(fields[0], "BenchmarkHandoff/")
		if i := strings.LastIndex(name, "-"); i > 0 && strings.Trim(name[i+1:], "0123456789") == "" {
			name = name[:i] // the GOMAXPROCS suffix
		}
		r := result{n: fields[1], metrics: map[string]string{}}
		for i := 2; i+1 < len(fields); i += 2 {
			r.metrics[fields[i+1]] = fields[i]
		}
		results[name] = r
		order = append(order, name)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	lease, ok := results["lease-leaderelection"]
	if !ok {
		return nil, errors.New("handoff results: no lease-leaderelection case")
	}
	units := []string{"p50-ms", "p90-ms", "p99-ms", "max-ms"}
	describe := func(r result) (string, string) {
		var names, values []string
		for _, u := range units {
			if v, ok := r.metrics[u]; ok {
				names, values = append(names, strings.TrimSuffix(u, "-ms")), append(values, v)
			}
		}
		return strings.Join(names, " / "), fmt.Sprintf("%s ms (%s handoffs)", strings.Join(values, " / "), r.n)
	}
	var rows []row
	for _, name := range order {
		if !strings.HasPrefix(name, "distlock-") {
			continue
		}
		r := results[name]
		metric, ours := describe(r)
		_, anchor := describe(lease)
		backend := cmp.Or(map[string]string{"distlock-redis": "Redis", "distlock-zookeeper": "ZooKeeper"}[name], name)
		o, _ := strconv.ParseFloat(r.metrics["p50-ms"], 64)
		a, _ := strconv.ParseFloat(lease.metrics["p50-ms"], 64)
		rt := notAvailable
		if o > 0 {
			rt = fmt.Sprintf("p50 %.0f×", a/o)
		}
		rows = append(rows, row{backend: backend, scenario: "handoff to the next pod (envtest)", metric: "latency " + metric,
			ours: ours, anchor: "Lease leader election " + anchor, ratio: rt})
	}
	return rows, nil
}

func printTable(w io.Writer, rows []row) {
	_, _ = fmt.Fprintln(w, "| backend | case | metric | distlock | anchor | ratio (>1: distlock better) |"+
		" requests per cycle (distlock; anchor) |")
	_, _ = fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.backend, r.scenario, r.metric, r.ours, r.anchor, r.ratio, r.requests)
	}
}

// printDetails prints the request counts and the CPU times as two tables.
func printDetails(w io.Writer, b *bencher) {
	_, _ = fmt.Fprintln(w, "| backend | library | setting | requests per cycle | by type | commands run by scripts |")
	_, _ = fmt.Fprintln(w, "|---|---|---|---:|---|---|")
	for _, l := range b.counts {
		_, _ = fmt.Fprintln(w, l)
	}
	_, _ = fmt.Fprintln(w)
	_, _ = fmt.Fprintln(w, "| backend | case | library | acquisitions | attempts | client CPU µs/attempt | server CPU µs/attempt |")
	_, _ = fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|")
	for _, l := range b.cpu {
		_, _ = fmt.Fprintln(w, l)
	}
}
