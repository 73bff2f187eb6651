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

package controller

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// scrape reads the manager's metrics endpoint and returns the value of
// every sample whose name and labels start with prefix, summed.
func scrape(t *testing.T, addr, prefix string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestTheMetricsEndpointServesTheMetricsOperatorsAlertOn(t *testing.T) {
	bc := backendCases()[0]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	addr := freeAddr(t)
	startManager(t, cfg, ns, func(o *ctrl.Options) {
		o.Metrics = metricsserver.Options{BindAddress: addr}
	})
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics endpoint on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The registry is shared by every manager of this test binary: compare
	// before and after.
	grants := `distlock_grants_total{backend="redis"}`
	released := `distlock_releases_total{backend="redis",reason="finished"}`
	holds := `distlock_lock_hold_seconds_count{backend="redis"}`
	waits := `distlock_lock_wait_seconds_count{backend="redis"}`
	acquires := `distlock_backend_call_duration_seconds_count{backend="redis",op="acquire"}`
	renewals := `distlock_renewal_lag_seconds_count{backend="redis"}`
	before := map[string]float64{}
	for _, m := range []string{grants, released, holds, waits, acquires, renewals} {
		before[m] = scrape(t, addr, m)
	}

	newLock(ctx, t, ns, "metered", bc)
	first := newPod(ctx, t, ns, "first", "metered")
	newPod(ctx, t, ns, "second", "metered")
	waitLock(ctx, t, ns, "metered", "held by first", holderIs("first"))
	waitMetric(t, addr, `distlock_waiting_pods{backend="redis"}`, func(v float64) bool { return v >= 1 })
	waitMetric(t, addr, `distlock_held_locks{backend="redis"}`, func(v float64) bool { return v >= 1 })
	// A renewal is due a third of a lease after the grant.
	waitMetricWithin(t, addr, renewals, testLease, func(v float64) bool { return v > before[renewals] })
	setPhase(ctx, t, first, corev1.PodSucceeded)
	waitLock(ctx, t, ns, "metered", "passed to second", holderIs("second"))

	for m, want := range map[string]float64{grants: 2, released: 1, holds: 1, waits: 2, acquires: 2} {
		waitMetric(t, addr, m, func(v float64) bool { return v-before[m] >= want })
	}
}

func waitMetric(t *testing.T, addr, name string, ok func(float64) bool) {
	t.Helper()
	waitMetricWithin(t, addr, name, waitTimeout, ok)
}

func waitMetricWithin(t *testing.T, addr, name string, within time.Duration, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v := scrape(t, addr, name)
		if ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s = %s after %v; not as expected", name, fmt.Sprint(v), within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
