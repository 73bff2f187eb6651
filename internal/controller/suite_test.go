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
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backendpool"
	"github.com/distlock/distlock/internal/testservers"

	// The backends register themselves, as in cmd/manager.
	_ "github.com/distlock/distlock/internal/backend/redis"
	_ "github.com/distlock/distlock/internal/backend/zookeeper"
)

// These package-level values are shared by every test in the package: one
// real kube-apiserver and etcd (envtest), one redis-server and one ZooKeeper
// serve them all. Each test works in its own namespace with its own
// controller, so tests never see each other's objects or holds.
var (
	testEnv     *envtest.Environment
	cfg         *rest.Config
	k8sClient   client.Client
	redisServer *testservers.Redis
	zkServer    *testservers.ZooKeeper
)

// testClusterID is the cluster id of the controllers under test.
const testClusterID = "envtest"

func TestMain(m *testing.M) {
	os.Exit(runWithServers(m))
}

// runWithServers starts kube-apiserver and etcd from KUBEBUILDER_ASSETS (see
// `make setup-envtest`) with the CRDs in config/crd/bases, a redis-server and
// a ZooKeeper server, runs the tests and stops everything again.
func runWithServers(m *testing.M) int {
	// go test prints the test binary's stderr with its stdout; benchmarks
	// (hack/bench-handoff.sh) set DISTLOCK_TEST_LOG=off to keep their result
	// lines readable.
	var logOut io.Writer = os.Stderr
	if os.Getenv("DISTLOCK_TEST_LOG") == "off" {
		logOut = io.Discard
		klog.SetLogger(logr.Discard())
	}
	logf.SetLogger(zap.New(zap.WriteTo(logOut), zap.UseDevMode(true)))

	if err := locksv1alpha1.AddToScheme(scheme.Scheme); err != nil {
		fmt.Fprintf(os.Stderr, "adding the locks API to the scheme: %v\n", err)
		return 1
	}
	env, restConfig, err := testservers.StartControlPlane(filepath.Join("..", "..", "config", "crd", "bases"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, testEnv = restConfig, env
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the envtest control plane: %v\n", err)
		}
	}()
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating a client: %v\n", err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	redisServer, err = testservers.StartRedis(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting redis-server: %v\n", err)
		return 1
	}
	defer func() { _ = redisServer.Stop() }()
	zkServer, err = testservers.StartZooKeeper(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting ZooKeeper: %v\n", err)
		return 1
	}
	defer func() { _ = zkServer.Stop() }()

	return m.Run()
}

// newTestNamespace creates a namespace for one test and deletes it when the
// test ends, so tests never see each other's objects.
func newTestNamespace(ctx context.Context, t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		t.Fatalf("creating a test namespace: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

// controllerOptions adjust the reconciler a test runs.
type controllerOption func(*DistributedLockReconciler)

func withCustomKeys() controllerOption {
	return func(r *DistributedLockReconciler) { r.AllowCustomKeys = true }
}

// runningController is a manager running the DistributedLock controller for
// one namespace.
type runningController struct {
	stop func()
}

// startController runs a manager with the DistributedLock controller that
// watches only namespace ns, with timings shortened for tests. It is stopped
// when the test ends, or earlier by calling stop (to simulate a controller
// restart or failover).
func startController(t testing.TB, ns string, opts ...controllerOption) *runningController {
	t.Helper()
	return startControllerOn(t, cfg, ns, opts...)
}

// startControllerOn is startController with the manager talking to the API
// server through restCfg (a proxy that a test cuts, say).
func startControllerOn(t testing.TB, restCfg *rest.Config, ns string, opts ...controllerOption) *runningController {
	t.Helper()
	return startManager(t, restCfg, ns, nil, opts...)
}

// startManager is startControllerOn with the manager's options adjusted
// (its metrics endpoint turned on, say).
func startManager(t testing.TB, restCfg *rest.Config, ns string, adjust func(*ctrl.Options), opts ...controllerOption) *runningController {
	t.Helper()
	cacheOpts := CacheOptions()
	cacheOpts.DefaultNamespaces = map[string]cache.Config{ns: {}}
	mgrOpts := ctrl.Options{
		Scheme:                 scheme.Scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Several managers run in this process, one per test.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if adjust != nil {
		adjust(&mgrOpts)
	}
	mgr, err := ctrl.NewManager(restCfg, mgrOpts)
	if err != nil {
		t.Fatalf("creating a manager: %v", err)
	}
	backends := &backendpool.Pool{}
	r := &DistributedLockReconciler{
		Client:              mgr.GetClient(),
		Scheme:              mgr.GetScheme(),
		APIReader:           mgr.GetAPIReader(),
		Recorder:            mgr.GetEventRecorder("distlock"),
		Backends:            backends,
		ClusterID:           testClusterID,
		RetryInterval:       300 * time.Millisecond,
		ForeignPollInterval: 100 * time.Millisecond,
		BackendTimeout:      2 * time.Second,
	}
	for _, opt := range opts {
		opt(r)
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatalf("setting up the controller: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	rc := &runningController{stop: func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager stopped with an error: %v", err)
		}
		backends.Close()
	}}
	t.Cleanup(rc.stop)
	return rc
}
