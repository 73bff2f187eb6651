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
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// --- The manager's Prometheus metrics ---------------------------------------

// metricSample is one series of a Prometheus text exposition.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

// metricSet is a scrape: every series by its text ("name{labels}").
type metricSet map[string]metricSample

// scrape reads the metrics endpoint at url.
func scrape(ctx context.Context, url string) (metricSet, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", url, resp.Status)
	}
	return parseExposition(resp.Body)
}

// parseExposition parses the Prometheus text format (no timestamps, as
// client_golang writes it).
func parseExposition(r io.Reader) (metricSet, error) {
	set := metricSet{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		if cut < 0 {
			continue
		}
		key := line[:cut]
		v, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			continue
		}
		name, labels := parseSeries(key)
		set[key] = metricSample{name: name, labels: labels, value: v}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	return set, nil
}

// parseSeries splits `name{a="x",b="y"}` into the name and the labels.
func parseSeries(s string) (string, map[string]string) {
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return s, nil
	}
	labels := map[string]string{}
	body := strings.TrimSuffix(s[open+1:], "}")
	for body != "" {
		eq := strings.IndexByte(body, '=')
		if eq < 0 || eq+1 >= len(body) || body[eq+1] != '"' {
			break
		}
		key := strings.TrimSpace(body[:eq])
		var val strings.Builder
		i := eq + 2
		for ; i < len(body) && body[i] != '"'; i++ {
			if body[i] == '\\' && i+1 < len(body) {
				i++
			}
			val.WriteByte(body[i])
		}
		labels[key] = val.String()
		body = strings.TrimPrefix(body[min(i+1, len(body)):], ",")
	}
	return s[:open], labels
}

// labelMatch selects series by their labels; nil selects all.
type labelMatch func(map[string]string) bool

func withLabel(key string, values ...string) labelMatch {
	return func(l map[string]string) bool {
		for _, v := range values {
			if l[key] == v {
				return true
			}
		}
		return false
	}
}

// sum adds up every series of name that match selects.
func (m metricSet) sum(name string, match labelMatch) float64 {
	total := 0.0
	for _, s := range m {
		if s.name == name && (match == nil || match(s.labels)) {
			total += s.value
		}
	}
	return total
}

// delta is how much name (summed over the series match selects) grew from
// m to later.
func (m metricSet) delta(later metricSet, name string, match labelMatch) float64 {
	return later.sum(name, match) - m.sum(name, match)
}

// quantile bounds the q-quantile of the observations histogram name
// received between m and later: it returns the upper bound of the bucket
// that holds it (the bucket boundaries are all a histogram knows; +Inf when
// the quantile is beyond the last finite bucket, NaN without observations).
func (m metricSet) quantile(later metricSet, name string, match labelMatch, q float64) float64 {
	type bucket struct{ le, count float64 }
	byLE := map[float64]float64{}
	for key, s := range later {
		if s.name != name+"_bucket" || (match != nil && !match(s.labels)) {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			continue
		}
		byLE[le] += s.value - m[key].value
	}
	buckets := make([]bucket, 0, len(byLE))
	for le, c := range byLE {
		buckets = append(buckets, bucket{le, c})
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].le < buckets[j].le })
	if len(buckets) == 0 || buckets[len(buckets)-1].count == 0 {
		return math.NaN()
	}
	rank := q * buckets[len(buckets)-1].count
	for _, b := range buckets {
		if b.count >= rank {
			return b.le
		}
	}
	return math.Inf(1)
}

// mean is the mean observation of histogram name between m and later.
func (m metricSet) mean(later metricSet, name string, match labelMatch) float64 {
	n := m.delta(later, name+"_count", match)
	if n == 0 {
		return math.NaN()
	}
	return m.delta(later, name+"_sum", match) / n
}

// --- Processes ----------------------------------------------------------------

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStat reads a process's parent, name and CPU time (user + system).
func procStat(pid int) (ppid int, comm string, cpu time.Duration, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", 0, fmt.Errorf("reading /proc/%d/stat: %w", pid, err)
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return 0, "", 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	comm = s[open+1 : closing]
	// Fields after the name: state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime ...
	f := strings.Fields(s[closing+1:])
	if len(f) < 13 {
		return 0, "", 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	ppid, _ = strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return ppid, comm, time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// cpuOf is a process's CPU time so far, or 0 when it cannot be read.
func cpuOf(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	_, _, cpu, err := procStat(pid)
	if err != nil {
		return 0
	}
	return cpu
}

// memOf reads a process's resident set (VmRSS) and its peak (VmHWM), in
// bytes.
func memOf(pid int) (rss, peak int64) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = kb * 1024
		case "VmHWM":
			peak = kb * 1024
		}
	}
	return rss, peak
}

// childProcesses finds the servers this command started (kube-apiserver,
// etcd, redis-server, the ZooKeeper JVMs), by name; several of one name are
// numbered ("java", "java#2", ...).
func childProcesses() map[string]int {
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	found := map[string]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, comm, _, err := procStat(pid)
		if err != nil || ppid != self {
			continue
		}
		name := comm
		for n := 2; found[name] != 0; n++ {
			name = fmt.Sprintf("%s#%d", comm, n)
		}
		found[name] = pid
	}
	return found
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// --- kube-apiserver profiles --------------------------------------------------

// profileAPIServer saves a CPU profile of kube-apiserver (its
// /debug/pprof/profile, served to cluster administrators) taken over d to
// path, in the background. The returned function waits until it is saved.
func profileAPIServer(ctx context.Context, cfg *rest.Config, d time.Duration, path string) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := saveProfile(ctx, cfg, d, path); err != nil {
			logf("profiling kube-apiserver: %v", err)
			return
		}
		logf("saved a %v CPU profile of kube-apiserver to %s", d, path)
	}()
	return func() { <-done }
}

func saveProfile(ctx context.Context, cfg *rest.Config, d time.Duration, path string) error {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("building an HTTP client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(cfg.Host, "/"), int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("requesting %s: %w", url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("requesting %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("requesting %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
