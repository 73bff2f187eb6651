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

// Command scale measures the distlock controller at scale, for real: one
// kube-apiserver and etcd (envtest), one redis-server and, on request, a
// 3-node ZooKeeper ensemble, all on loopback ports, and the real manager
// binary as a subprocess. It creates LOCKS DistributedLocks with PODS pods
// each, as fast as the API server takes them, then
//
//   - hold: keeps every lock held for a while and checks that no hold is
//     lost (watching every lock, and reading every lock's key in the backend
//     directly), measuring the manager's CPU, memory and API writes while
//     nothing happens; then hands one lock over again and again while all the
//     others are held, timing each handoff;
//   - drain: deletes every holder as soon as it holds, until every queue is
//     empty, measuring handoffs per second, handoff latency and API writes
//     per handoff.
//
// With -calibrate N it then pauses the manager and times N pairs of (pod
// DELETE, lock status PATCH) made by the driver alone: the least API work a
// handoff can cost, which bounds the handoffs per second on this API server.
//
// It prints a markdown table with the targets (PASS/FAIL) and a text
// report, and exits non-zero if a hold was lost or a phase did not finish.
// docs/scale.md has the results, what each number means, and the analysis.
//
//	make bench-scale                               # 100 locks x 10 pods
//	make bench-scale LOCKS=1000 PODS=10 BACKENDS=redis,zookeeper BENCH_SCALE_FLAGS=-calibrate=5000
//	go run ./hack/bench/scale -locks 20 -pods 5    # KUBEBUILDER_ASSETS from hack/kube-binaries.sh
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// options are the command's flags.
type options struct {
	locks       int
	pods        int
	lease       time.Duration
	backends    []string
	hold        time.Duration
	samples     int
	concurrency int
	timeout     time.Duration
	dir         string
	managerBin  string
	managerSrc  string
	logLevel    string
	label       string
	countWrites bool
	profileDir  string
	calibrate   int
	summary     string
}

func parseFlags() (options, error) {
	var o options
	var backends string
	flag.IntVar(&o.locks, "locks", 100, "DistributedLocks to create (the issue's full run is 1000)")
	flag.IntVar(&o.pods, "pods", 10, "pods queued on each lock")
	flag.DurationVar(&o.lease, "lease", 10*time.Second, "spec.leaseDuration of every lock (at least "+locksv1alpha1.MinLeaseDuration+")")
	flag.StringVar(&backends, "backends", "redis",
		"comma-separated backends the locks are spread over, round robin: redis, zookeeper (a 3-node ensemble)")
	flag.DurationVar(&o.hold, "hold", 0, "how long every lock is kept held, idle, before the single-lock handoffs (default 3 leases)")
	flag.IntVar(&o.samples, "samples", 50, "single-lock handoffs timed while all locks are held (the probe lock gets samples+1 pods)")
	flag.IntVar(&o.concurrency, "concurrency", 32, "API requests the driver has in flight at once when creating and deleting")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Minute, "bound on the whole run")
	flag.StringVar(&o.dir, "dir", "", "directory for the manager's binary, kubeconfig and log (default: a new temporary directory, kept)")
	flag.StringVar(&o.managerBin, "manager", "", "a manager binary to run instead of building one")
	flag.StringVar(&o.managerSrc, "manager-src", ".",
		"module directory to build ./cmd/manager from (e.g. an export of a commit: git archive HEAD | tar -x -C DIR)")
	flag.StringVar(&o.label, "label", "", "what the manager was built from, for the report (default: git's HEAD in -manager-src)")
	flag.BoolVar(&o.countWrites, "count-writes", true,
		"also watch pods and Events, to tell the manager's writes apart (Events, pod annotations); costs the API server a little")
	flag.StringVar(&o.profileDir, "profile-dir", "",
		"save CPU profiles of kube-apiserver (its /debug/pprof) taken during the idle hold and the drain, 20s each, here")
	flag.IntVar(&o.calibrate, "calibrate", 0,
		"after the drain, pause the manager and time this many pairs of (pod DELETE, lock status PATCH): the least API work a "+
			"handoff can cost, i.e. the API server's ceiling for handoffs on this machine (0: skip)")
	flag.StringVar(&o.summary, "summary", "", "also write the main numbers to this file as JSON (make bench reads it: hack/bench -scale)")
	flag.StringVar(&o.logLevel, "zap-log-level", "info", "the manager's --zap-log-level (debug logs every reconcile)")
	flag.Parse()

	if o.locks < 1 || o.pods < 2 {
		return o, errors.New("need -locks >= 1 and -pods >= 2 (a handoff needs a next pod)")
	}
	if o.samples < 1 || o.concurrency < 1 || o.calibrate < 0 {
		return o, errors.New("need -samples >= 1, -concurrency >= 1 and -calibrate >= 0")
	}
	minLease, _ := time.ParseDuration(locksv1alpha1.MinLeaseDuration)
	if o.lease < minLease {
		return o, fmt.Errorf("-lease %v is below the API's minimum %v", o.lease, minLease)
	}
	for _, b := range strings.Split(backends, ",") {
		switch b = strings.TrimSpace(b); b {
		case backendRedis, backendZooKeeper:
			o.backends = append(o.backends, b)
		case "":
		default:
			return o, fmt.Errorf("unknown backend %q (redis, zookeeper)", b)
		}
	}
	if len(o.backends) == 0 {
		return o, errors.New("-backends names no backend")
	}
	if o.hold == 0 {
		o.hold = 3 * o.lease
	}
	return o, nil
}

func main() {
	opts, err := parseFlags()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-scale: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	code := run(ctx, opts)
	cancel()
	stop()
	os.Exit(code)
}

// logf prints progress to stderr, with the time since start.
var started = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%7.1fs] "+format+"\n", append([]any{time.Since(started).Seconds()}, args...)...)
}

// run sets everything up, runs the phases and reports. It returns the exit
// code: 0 when every phase finished and no hold was lost.
func run(ctx context.Context, opts options) int {
	env, err := startEnvironment(ctx, opts)
	if env != nil {
		defer env.stop()
	}
	if err != nil {
		logf("setting up: %v", err)
		return 1
	}
	b := newBench(env, opts)
	res, err := b.run(ctx)
	if err != nil {
		logf("the run did not finish: %v", err)
	}
	res.print(os.Stdout)
	if opts.summary != "" {
		if err := res.writeSummary(opts.summary); err != nil {
			logf("%v", err)
			return 1
		}
	}
	switch {
	case res.lostTotal() > 0:
		logf("%d hold(s) lost", res.lostTotal())
		return 1
	case err != nil:
		return 1
	}
	return 0
}
