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
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
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
	ctrl.SetLogger(zap.New(zap.UseDevMode(false), zap.WriteTo(os.Stderr)))
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(locksv1alpha1.AddToScheme(scheme))

	step("starting kube-apiserver and etcd from %s", os.Getenv("KUBEBUILDER_ASSETS"))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("starting the control plane (run `make setup-envtest`): %w", err)
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
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := (&controller.DistributedLockReconciler{Client: mgr.GetClient(), Scheme: scheme}).SetupWithManager(mgr); err != nil {
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

	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	step("kubectl get distributedlocks -n %s", ns)
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfigPath, "get", "distributedlocks", "-n", ns)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running kubectl: %w", err)
	}

	if hold > 0 {
		step("holding for %s; meanwhile try:\n    %s --kubeconfig %s get distributedlocks -A", hold, kubectl, kubeconfigPath)
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
	}
	step("cleaning up: everything the demo started is stopped on exit")
	return nil
}
