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

// Command demo runs inside the local cluster's network namespace (see
// hack/demo.sh, `make demo`): it installs distlock with config/default, starts
// Redis and ZooKeeper on the node address, creates a DistributedLock and a Job
// gated by it for each backend, and shows the pods taking turns with
// `kubectl get distributedlocks -A -w` until every Job is complete.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
	"github.com/distlock/distlock/test/e2e/framework"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

// demoLock is one backend's lock and the Job gated by it.
type demoLock struct {
	backend string
	ns      string
	spec    locksv1alpha1.BackendSpec
}

func run(ctx context.Context) error {
	root, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("finding the repository: %w", err)
	}
	s, err := framework.SettingsFromEnv(root)
	if err != nil {
		return err
	}
	c, err := framework.NewClient()
	if err != nil {
		return err
	}

	step("installing distlock with config/default (image %s)", s.Image)
	if err := s.Deploy(ctx); err != nil {
		return err
	}

	step("starting redis-server and ZooKeeper on the node address %s (inside the cluster's network namespace)", s.NodeIP)
	redis, err := testservers.StartRedis(ctx, testservers.WithRedisHost(s.NodeIP))
	if err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	defer func() { _ = redis.Stop() }()
	zk, err := testservers.StartZooKeeper(ctx, testservers.WithZooKeeperHost(s.NodeIP))
	if err != nil {
		return fmt.Errorf("starting ZooKeeper: %w", err)
	}
	defer func() { _ = zk.Stop() }()

	locks := []demoLock{
		{"redis", "demo-redis", locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: redis.Addr}}},
		{"zookeeper", "demo-zookeeper", locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: []string{zk.Addr}}}},
	}
	for _, l := range locks {
		step("namespace %s: DistributedLock nightly-report (%s at %s) and Job nightly-report (3 pods, gated by the waiter)",
			l.ns, l.backend, strings.Join(l.spec.Servers(), ","))
		if err := createDemo(ctx, c, s, l); err != nil {
			return err
		}
	}

	step("kubectl get distributedlocks -A -w   (one line per change, until every Job is complete)")
	watchCtx, stopWatch := context.WithCancel(ctx)
	watch := exec.CommandContext(watchCtx, s.Kubectl, "get", "distributedlocks", "-A", "-w")
	watch.Stdout, watch.Stderr = os.Stdout, os.Stderr
	if err := watch.Start(); err != nil {
		stopWatch()
		return fmt.Errorf("starting kubectl get -w: %w", err)
	}
	err = waitForJobs(ctx, c, s, locks)
	stopWatch()
	_ = watch.Wait()
	if err != nil {
		return err
	}

	step("every Job is complete. What the workers recorded in their critical sections (bin/e2e/records):")
	for _, l := range locks {
		data, err := os.ReadFile(filepath.Join(s.RecordDir, l.ns, "record.log"))
		if err != nil {
			return fmt.Errorf("reading the record: %w", err)
		}
		fmt.Printf("--- %s\n", l.ns)
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			fmt.Println(readable(line))
		}
	}
	step("kubectl get distributedlocks -A (final state)")
	out, err := framework.Run(ctx, nil, s.Kubectl, "get", "distributedlocks", "-A")
	fmt.Print(out)
	if err != nil {
		return err
	}

	if hold, _ := time.ParseDuration(os.Getenv("DEMO_HOLD")); hold > 0 {
		step("holding for %s (Ctrl-C ends it). In another terminal:\n"+
			"    hack/local-cluster.sh kubectl get distributedlocks -A\n"+
			"    hack/local-cluster.sh kubectl get events.events.k8s.io -n demo-redis\n"+
			"    hack/local-cluster.sh kubectl logs -n demo-redis job/nightly-report -c wait-for-lock", hold)
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
	}
	step("done: hack/demo.sh now tears the cluster down (if it was interrupted: hack/local-cluster.sh down)")
	return nil
}

// readable turns a record line "start <unix nanoseconds> <pod> <token>" into
// "13:25:12.492 start nightly-report-545fx (fencing token 1)".
func readable(line string) string {
	f := strings.Fields(line)
	if len(f) != 4 {
		return line
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return line
	}
	return fmt.Sprintf("%s  %-5s  %s  (fencing token %s)", time.Unix(0, ns).Format("15:04:05.000"), f[0], f[2], f[3])
}

func createDemo(ctx context.Context, c client.Client, s framework.Settings, l demoLock) error {
	if err := framework.PrepareNamespace(ctx, c, l.ns); err != nil {
		return err
	}
	recordDir := filepath.Join(s.RecordDir, l.ns)
	if err := os.MkdirAll(recordDir, 0o777); err != nil {
		return fmt.Errorf("creating %s: %w", recordDir, err)
	}
	_ = os.Remove(filepath.Join(recordDir, "record.log"))
	lock := &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: l.ns, Name: "nightly-report"},
		Spec:       locksv1alpha1.DistributedLockSpec{Backend: l.spec},
	}
	if err := c.Create(ctx, lock); err != nil {
		return fmt.Errorf("creating the DistributedLock: %w", err)
	}
	job := s.GatedJob(l.ns, "nightly-report", lock.Name, recordDir, 3, 3, 4*time.Second)
	if err := c.Create(ctx, job); err != nil {
		return fmt.Errorf("creating the Job: %w", err)
	}
	return nil
}

// holdersRunWhileOthersWait reports whether every lock's holder is running
// its main container while other pods wait for the lock.
func holdersRunWhileOthersWait(ctx context.Context, c client.Client, locks []demoLock) bool {
	for _, l := range locks {
		var lock locksv1alpha1.DistributedLock
		if err := c.Get(ctx, client.ObjectKey{Namespace: l.ns, Name: "nightly-report"}, &lock); err != nil ||
			len(lock.Status.Holders) == 0 || lock.Status.WaitingCount == 0 {
			return false
		}
		var pod corev1.Pod
		if err := c.Get(ctx, client.ObjectKey{Namespace: l.ns, Name: lock.Status.Holders[0].Pod}, &pod); err != nil ||
			pod.Status.Phase != corev1.PodRunning {
			return false
		}
	}
	return true
}

// waitForJobs waits until every demo Job is complete, showing the pods once
// while one holds the lock and the others wait in their init container.
func waitForJobs(ctx context.Context, c client.Client, s framework.Settings, locks []demoLock) error {
	deadline := time.Now().Add(10 * time.Minute)
	shownPods := false // a snapshot of the pods while one holds and others wait
	for {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		done := 0
		for _, l := range locks {
			ok, err := framework.JobDone(ctx, c, l.ns, "nightly-report")
			if err != nil {
				return err
			}
			if ok {
				done++
			}
		}
		if done == len(locks) {
			return nil
		}
		if !shownPods && holdersRunWhileOthersWait(ctx, c, locks) {
			shownPods = true
			out, err := framework.Run(ctx, nil, s.Kubectl, "get", "pods", "-A", "-l", locksv1alpha1.LockLabel)
			fmt.Printf("\n--- meanwhile, kubectl get pods -A -l %s:\n%s---\n", locksv1alpha1.LockLabel, out)
			if err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			return errors.New("the Jobs did not complete within 10 minutes")
		}
		time.Sleep(500 * time.Millisecond)
	}
}
