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

// Package e2e runs distlock on a real single-node cluster (kubelet,
// containerd, real init containers) brought up by hack/local-cluster.sh, and
// checks from an independent record that Jobs gated by the waiter never ran
// their critical sections at the same time.
//
// Run it with `make test-e2e`, which builds the images, brings the cluster
// up inside its own network namespace, runs this package there and tears
// everything down.
package e2e

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
	"github.com/distlock/distlock/test/e2e/framework"
)

type suite struct {
	framework.Settings
	c client.Client
}

func newSuite(t *testing.T) *suite {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	settings, err := framework.SettingsFromEnv(root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := framework.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	return &suite{Settings: settings, c: c}
}

func (s *suite) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := framework.Run(context.Background(), nil, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type backendCase struct {
	name string
	spec func() locksv1alpha1.BackendSpec
}

func TestJobsGatedByALockTakeTurns(t *testing.T) {
	s := newSuite(t)
	if err := s.Deploy(context.Background()); err != nil {
		t.Fatalf("deploying distlock with config/default: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	redis := testservers.NewRedis(t, testservers.WithRedisHost(s.NodeIP))
	zk := testservers.NewZooKeeper(t, testservers.WithZooKeeperHost(s.NodeIP))
	cases := []backendCase{
		{"redis", func() locksv1alpha1.BackendSpec {
			return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: redis.Addr}}
		}},
		{"zookeeper", func() locksv1alpha1.BackendSpec {
			return locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: []string{zk.Addr}}}
		}},
	}
	for _, bc := range cases {
		t.Run(bc.name, func(t *testing.T) { s.jobsTakeTurns(ctx, t, bc) })
	}
	for _, bc := range cases {
		t.Run("semaphore of 2 on "+bc.name, func(t *testing.T) { s.jobThroughASemaphore(ctx, t, bc) })
	}
}

// jobThroughASemaphore runs a Job of 6 pods through a semaphore of 2: the
// workers' own record must show at most 2 at work at once, 2 at once at
// some point, a token of its own for each, and every pod done.
func (s *suite) jobThroughASemaphore(ctx context.Context, t *testing.T, bc backendCase) {
	ns := "e2e-semaphore-" + bc.name
	s.namespace(ctx, t, ns)
	s.mustCreate(ctx, t, &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "export"},
		Spec: locksv1alpha1.DistributedLockSpec{
			Backend:       bc.spec(),
			LeaseDuration: &metav1.Duration{Duration: 10 * time.Second},
			MaxHolders:    2,
		},
	})
	recordDir := s.recordDir(t, "semaphore-"+bc.name)
	const pods = 6
	s.mustCreate(ctx, t, s.GatedJob(ns, "export", "export", recordDir, pods, pods, 4*time.Second))

	lock := s.waitLock(ctx, t, ns, "export", "2/2 with pods waiting", func(l *locksv1alpha1.DistributedLock) bool {
		return l.Status.Holding == "2/2" && l.Status.WaitingCount >= 1
	})
	s.waitRecord(ctx, t, recordDir, "start", lock.Status.Holders[1].Pod)
	t.Logf("kubectl get distributedlocks -n %s -o wide:\n%s", ns, s.run(t, s.Kubectl, "get", "distributedlocks", "-n", ns, "-o", "wide"))
	waiter := lock.Status.Waiting[0].Pod
	t.Logf("kubectl logs %s -c wait-for-lock:\n%s", waiter, s.run(t, s.Kubectl, "logs", "-n", ns, waiter, "-c", "wait-for-lock"))

	s.waitJobComplete(ctx, t, ns, "export")
	s.waitLock(ctx, t, ns, "export", "free after the Job completed", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Holders) == 0 && l.Status.WaitingCount == 0 && l.Status.Holding == "0/2"
	})
	sections := readRecord(t, filepath.Join(recordDir, "record.log"))
	if len(sections) != pods {
		t.Errorf("%d critical sections recorded; want %d (one per pod)", len(sections), pods)
	}
	most := mostAtOnce(sections)
	if most > 2 {
		t.Errorf("%d pods worked at once through a semaphore of 2", most)
	}
	if most < 2 {
		t.Errorf("never 2 pods at work at once: the semaphore let them through one at a time")
	}
	seen := map[int64]string{}
	for _, sec := range sections {
		if other, dup := seen[sec.token]; dup {
			t.Errorf("pods %s and %s share fencing token %d", other, sec.pod, sec.token)
		}
		seen[sec.token] = sec.pod
	}
	t.Logf("%d critical sections, at most %d at once; fencing tokens: %v", len(sections), most, tokens(sections))
}

// mostAtOnce is the largest number of critical sections open at one time
// (an end at the same instant as a start counts first).
func mostAtOnce(sections []section) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, s := range sections {
		edges = append(edges, edge{s.start, 1}, edge{s.end, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].delta < edges[j].delta
	})
	open, most := 0, 0
	for _, e := range edges {
		open += e.delta
		most = max(most, open)
	}
	return most
}

func (s *suite) jobsTakeTurns(ctx context.Context, t *testing.T, bc backendCase) {
	ns := "e2e-" + bc.name
	s.namespace(ctx, t, ns)
	s.mustCreate(ctx, t, &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report"},
		Spec: locksv1alpha1.DistributedLockSpec{
			Backend:       bc.spec(),
			LeaseDuration: &metav1.Duration{Duration: 10 * time.Second},
		},
	})
	recordDir := s.recordDir(t, bc.name)

	jobs := map[string]int32{"nightly": 4, "adhoc": 2}
	for name, completions := range jobs {
		s.mustCreate(ctx, t, s.GatedJob(ns, name, "report", recordDir, 2, completions, 3*time.Second))
	}

	// While one pod holds the lock the others wait in Init: show it.
	lock := s.waitLock(ctx, t, ns, "report", "held with pods waiting", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Holders) == 1 && l.Status.WaitingCount >= 2
	})
	// Show it once the holder is inside its critical section.
	s.waitRecord(ctx, t, recordDir, "start", lock.Status.Holders[0].Pod)
	t.Logf("kubectl get distributedlocks -n %s:\n%s", ns, s.run(t, s.Kubectl, "get", "distributedlocks", "-n", ns, "-o", "wide"))
	t.Logf("kubectl get pods -n %s:\n%s", ns, s.run(t, s.Kubectl, "get", "pods", "-n", ns, "-o", "wide"))
	pods := s.run(t, s.Kubectl, "get", "pods", "-n", ns)
	if !strings.Contains(pods, "Init:0/1") {
		t.Errorf("no pod waits in its init container while %s holds the lock:\n%s", lock.Status.Holders[0].Pod, pods)
	}

	// A waiting pod is deleted: the others carry on.
	waiter := lock.Status.Waiting[len(lock.Status.Waiting)-1].Pod
	s.deletePod(ctx, t, ns, waiter)
	// The holder is deleted in its critical section: the lock passes on once
	// it has stopped.
	holder := s.waitLock(ctx, t, ns, "report", "held by a fresh holder", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Holders) == 1 && l.Status.Holders[0].Pod != lock.Status.Holders[0].Pod
	}).Status.Holders[0].Pod
	s.waitRecord(ctx, t, recordDir, "start", holder)
	s.deletePod(ctx, t, ns, holder)

	for name := range jobs {
		s.waitJobComplete(ctx, t, ns, name)
	}
	s.waitLock(ctx, t, ns, "report", "free after every Job completed", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Holders) == 0 && l.Status.WaitingCount == 0
	})

	sections := readRecord(t, filepath.Join(recordDir, "record.log"))
	checkNoOverlap(t, sections)
	var total int32
	for _, c := range jobs {
		total += c
	}
	if int32(len(sections)) < total {
		t.Errorf("%d critical sections recorded; want at least %d (one per completion)", len(sections), total)
	}
	t.Logf("%d critical sections, none overlapping; fencing tokens in order: %v", len(sections), tokens(sections))
}

// namespace makes ns ready for the test's pods and deletes it when the test
// ends.
func (s *suite) namespace(ctx context.Context, t *testing.T, ns string) {
	t.Helper()
	if err := framework.PrepareNamespace(ctx, s.c, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
}

// recordDir returns an empty directory, name under the suite's record
// directory, for the workers' record of their critical sections.
func (s *suite) recordDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(s.RecordDir, name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(dir, "record.log"))
	return dir
}

func (s *suite) mustCreate(ctx context.Context, t *testing.T, obj client.Object) {
	t.Helper()
	if err := s.c.Create(ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func (s *suite) waitLock(ctx context.Context, t *testing.T, ns, name, what string, cond func(*locksv1alpha1.DistributedLock) bool) *locksv1alpha1.DistributedLock {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var lock locksv1alpha1.DistributedLock
		err := s.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &lock)
		if err == nil && cond(&lock) {
			return &lock
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock %s/%s not %s within 3m (err %v); status %+v\npods:\n%s", ns, name, what, err, lock.Status,
				s.run(t, s.Kubectl, "get", "pods", "-n", ns, "-o", "wide"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *suite) deletePod(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := s.c.Delete(ctx, pod); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting pod %s: %v", name, err)
	}
	t.Logf("deleted pod %s", name)
}

func (s *suite) waitJobComplete(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(8 * time.Minute)
	for {
		done, err := framework.JobDone(ctx, s.c, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not complete after 8m\npods:\n%s", name, s.run(t, s.Kubectl, "get", "pods", "-n", ns, "-o", "wide"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitRecord waits until the record has a line of kind what for pod.
func (s *suite) waitRecord(ctx context.Context, t *testing.T, dir, what, pod string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for ctx.Err() == nil {
		data, _ := os.ReadFile(filepath.Join(dir, "record.log"))
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 4 && f[0] == what && f[2] == pod {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q record for pod %s within 3m; record:\n%s", what, pod, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// section is one critical section as the worker recorded it.
type section struct {
	pod        string
	token      int64
	start, end time.Time
}

func readRecord(t *testing.T, path string) []section {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening the record: %v", err)
	}
	defer f.Close()
	open := map[string]*section{}
	var done []section
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 {
			t.Fatalf("malformed record line %q", sc.Text())
		}
		ns, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			t.Fatalf("malformed time in %q", sc.Text())
		}
		token, err := strconv.ParseInt(fields[3], 10, 64)
		if err != nil {
			t.Fatalf("malformed fencing token in %q", sc.Text())
		}
		at, pod := time.Unix(0, ns), fields[2]
		switch fields[0] {
		case "start":
			open[pod] = &section{pod: pod, token: token, start: at}
		case "end":
			sec, ok := open[pod]
			if !ok {
				t.Fatalf("end without start for pod %s", pod)
			}
			sec.end = at
			done = append(done, *sec)
			delete(open, pod)
		}
	}
	for pod := range open {
		t.Errorf("pod %s started a critical section and never ended it", pod)
	}
	sort.Slice(done, func(i, j int) bool { return done[i].start.Before(done[j].start) })
	return done
}

// checkNoOverlap fails the test if any two critical sections overlapped or
// if fencing tokens did not increase from one section to the next.
func checkNoOverlap(t *testing.T, sections []section) {
	t.Helper()
	for i := 1; i < len(sections); i++ {
		prev, cur := sections[i-1], sections[i]
		if cur.start.Before(prev.end) {
			t.Errorf("critical sections overlap: %s [%s, %s] and %s [%s, %s]",
				prev.pod, prev.start.Format(time.StampMicro), prev.end.Format(time.StampMicro),
				cur.pod, cur.start.Format(time.StampMicro), cur.end.Format(time.StampMicro))
		}
		if cur.token <= prev.token {
			t.Errorf("fencing token of %s (%d) is not above that of %s before it (%d)", cur.pod, cur.token, prev.pod, prev.token)
		}
	}
}

func tokens(sections []section) []int64 {
	out := make([]int64, len(sections))
	for i, s := range sections {
		out[i] = s.token
	}
	return out
}
