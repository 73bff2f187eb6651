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

// Command demo brings up a local control plane (kube-apiserver and etcd, as
// envtest runs them), a Redis server and a ZooKeeper server on loopback ports,
// installs the distlock CRD, runs the distlock manager against them and shows
// the DistributedLocks it serves. It stops everything it started on exit.
//
// Run it with `make demo`, which provides the binaries first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	_ "github.com/distlock/distlock/internal/backend/redis"
	_ "github.com/distlock/distlock/internal/backend/zookeeper"
	"github.com/distlock/distlock/internal/backendpool"
	"github.com/distlock/distlock/internal/controller"
	"github.com/distlock/distlock/internal/testservers"
)

func main() {
	hold := flag.Duration("hold", 0, "keep everything running this long after the demo (0: stop at once; Ctrl-C stops early)")
	workDir := flag.String("dir", filepath.Join("bin", "demo"), "directory for the demo's kubeconfig")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *workDir, *hold); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

func run(ctx context.Context, workDir string, hold time.Duration) error {
	// The manager's own log goes to bin/demo/manager.log; the terminal shows
	// the story.
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", workDir, err)
	}
	logFile, err := os.Create(filepath.Join(workDir, "manager.log"))
	if err != nil {
		return fmt.Errorf("creating the manager log: %w", err)
	}
	defer logFile.Close()
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(locksv1alpha1.AddToScheme(scheme))

	step("starting kube-apiserver and etcd from %s", os.Getenv("KUBEBUILDER_ASSETS"))
	env, cfg, err := testservers.StartControlPlane(filepath.Join("config", "crd", "bases"))
	if err != nil {
		return err
	}
	defer func() {
		step("stopping kube-apiserver and etcd")
		_ = env.Stop()
	}()

	admin, err := env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating the demo user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing a kubeconfig: %w", err)
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", workDir, err)
	}
	kubeconfigPath, err := filepath.Abs(filepath.Join(workDir, "kubeconfig"))
	if err != nil {
		return fmt.Errorf("resolving the kubeconfig path: %w", err)
	}
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", kubeconfigPath, err)
	}

	step("starting redis-server and ZooKeeper on loopback ports")
	redis, err := testservers.StartRedis(ctx)
	if err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	defer func() { _ = redis.Stop() }()
	zk, err := testservers.StartZooKeeper(ctx)
	if err != nil {
		return fmt.Errorf("starting ZooKeeper: %w", err)
	}
	defer func() { _ = zk.Stop() }()
	step("redis-server on %s, ZooKeeper on %s", redis.Addr, zk.Addr)

	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	const ns = "distlock-demo"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	locks := []*locksv1alpha1.DistributedLock{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly-report-redis"},
			Spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{
				Redis: &locksv1alpha1.RedisBackend{Address: redis.Addr},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly-report-zookeeper"},
			Spec: locksv1alpha1.DistributedLockSpec{Backend: locksv1alpha1.BackendSpec{
				ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: []string{zk.Addr}},
			}},
		},
	}
	for _, lock := range locks {
		step("creating DistributedLock %s/%s", lock.Namespace, lock.Name)
		if err := c.Create(ctx, lock); err != nil {
			return fmt.Errorf("creating DistributedLock %s: %w", lock.Name, err)
		}
	}

	step("starting the distlock manager")
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  controller.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	backends := &backendpool.Pool{}
	defer backends.Close()
	if err := (&controller.DistributedLockReconciler{
		Client:    mgr.GetClient(),
		Scheme:    scheme,
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("distlock"),
		Backends:  backends,
		ClusterID: "demo",
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the controller: %w", err)
	}
	mgrCtx, stopManager := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	defer func() {
		stopManager()
		if err := <-mgrDone; err != nil {
			fmt.Fprintf(os.Stderr, "demo: the manager stopped with an error: %v\n", err)
		}
	}()
	syncCtx, cancelSync := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		return errors.New("the manager's cache did not sync within 30s")
	}

	kubectl := func(args ...string) error {
		bin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfigPath, "-n", ns}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("running kubectl %v: %w", args, err)
		}
		return nil
	}

	if err := takeTurns(ctx, c, ns, locks, kubectl); err != nil {
		return err
	}

	if hold > 0 {
		step("holding for %s; meanwhile try:\n    %s --kubeconfig %s get distributedlocks -A", hold,
			filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), kubeconfigPath)
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
	}
	step("cleaning up: everything the demo started is stopped on exit")
	return nil
}

// takeTurns creates three pods per lock and lets them take turns, showing
// `kubectl get distributedlocks` at every turn. This demo has no kubelet: it
// plays the kubelet's part and reports the pods' phases itself (make
// test-e2e runs real containers on a real node).
func takeTurns(ctx context.Context, c client.Client, ns string, locks []*locksv1alpha1.DistributedLock,
	kubectl func(args ...string) error) error {
	step("creating three running pods per lock that ask for it (label %s)", locksv1alpha1.LockLabel)
	pods := map[string][]*corev1.Pod{}
	for _, lock := range locks {
		for i := range 3 {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: ns, Name: fmt.Sprintf("%s-worker-%d", lock.Name, i),
					Labels: map[string]string{locksv1alpha1.LockLabel: lock.Name},
				},
				// Created on a node, as if scheduled: the lock is granted only to
				// pods that can use it at once.
				Spec: corev1.PodSpec{NodeName: "demo-node", Containers: []corev1.Container{{Name: "work", Image: "busybox"}}},
			}
			if err := c.Create(ctx, pod); err != nil {
				return fmt.Errorf("creating pod %s: %w", pod.Name, err)
			}
			running := client.RawPatch(types.MergePatchType, []byte(`{"status":{"phase":"Running"}}`))
			if err := c.Status().Patch(ctx, pod, running); err != nil {
				return fmt.Errorf("starting pod %s: %w", pod.Name, err)
			}
			pods[lock.Name] = append(pods[lock.Name], pod)
		}
	}
	for turn := range 3 {
		if err := waitForHolders(ctx, c, locks, pods, turn); err != nil {
			return err
		}
		step("turn %d: kubectl get distributedlocks -o wide", turn+1)
		if err := kubectl("get", "distributedlocks", "-o", "wide"); err != nil {
			return err
		}
		step("the holders finish (the demo marks them Succeeded)")
		for _, lock := range locks {
			holder := pods[lock.Name][turn]
			patch := client.RawPatch(types.MergePatchType, []byte(`{"status":{"phase":"Succeeded"}}`))
			if err := c.Status().Patch(ctx, holder, patch); err != nil {
				return fmt.Errorf("finishing pod %s: %w", holder.Name, err)
			}
		}
	}
	if err := waitForHolders(ctx, c, locks, pods, 3); err != nil {
		return err
	}
	step("all pods had their turn: kubectl get distributedlocks")
	if err := kubectl("get", "distributedlocks"); err != nil {
		return err
	}
	step("kubectl get events.events.k8s.io (the lock's and the pods' story)")
	if err := kubectl("get", "events.events.k8s.io", "--sort-by=.metadata.creationTimestamp", "-o",
		"custom-columns=OBJECT:.regarding.name,REASON:.reason,MESSAGE:.note"); err != nil {
		return err
	}
	return nil
}

// waitForHolders waits until each lock is held by its pod number turn, or is
// free when every pod has had its turn.
func waitForHolders(ctx context.Context, c client.Client, locks []*locksv1alpha1.DistributedLock,
	pods map[string][]*corev1.Pod, turn int) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, lock := range locks {
		want := ""
		if turn < len(pods[lock.Name]) {
			want = pods[lock.Name][turn].Name
		}
		for {
			var got locksv1alpha1.DistributedLock
			if err := c.Get(ctx, client.ObjectKeyFromObject(lock), &got); err != nil {
				return fmt.Errorf("reading lock %s: %w", lock.Name, err)
			}
			holder := ""
			if len(got.Status.Holders) > 0 {
				holder = got.Status.Holders[0].Pod
			}
			if holder == want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("lock %s: holder is %q after 30s; want %q", lock.Name, holder, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
