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
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/distlock/distlock/internal/testservers"
)

// Backend names, as the DistributedLock API names them.
const (
	backendRedis     = "redis"
	backendZooKeeper = "zookeeper"
)

// clusterID is the manager's --cluster-id.
const clusterID = "bench"

// environment is everything the run starts: the control plane, the
// backends and the manager process.
type environment struct {
	dir       string
	testEnv   *envtest.Environment
	cfg       *rest.Config // the driver's (admin) config
	redis     *testservers.Redis
	zk        *testservers.ZooKeeperEnsemble
	manager   *exec.Cmd
	metrics   string // the manager's metrics URL
	logPath   string // the manager's log
	commit    string // what the manager was built from, when known
	serverPID map[string]int
}

// startEnvironment starts the servers and the manager. On error, the
// environment returned (if any) must still be stopped.
func startEnvironment(ctx context.Context, opts options) (*environment, error) {
	// The CRDs come from the same tree as the manager.
	crdDir := filepath.Join(opts.managerSrc, "config", "crd", "bases")
	if _, err := os.Stat(crdDir); err != nil {
		return nil, fmt.Errorf("no CRDs in %s (run from the repository root, or point -manager-src at one): %w", crdDir, err)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		assets, err := kubeAssets(ctx)
		if err != nil {
			return nil, err
		}
		if err := os.Setenv("KUBEBUILDER_ASSETS", assets); err != nil {
			return nil, fmt.Errorf("setting KUBEBUILDER_ASSETS: %w", err)
		}
	}
	env := &environment{dir: opts.dir}
	if env.dir == "" {
		dir, err := os.MkdirTemp("", "distlock-bench-scale-")
		if err != nil {
			return nil, fmt.Errorf("creating a work directory: %w", err)
		}
		env.dir = dir
	} else if err := os.MkdirAll(env.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", env.dir, err)
	}

	// Build the manager while the servers start: both take a while.
	built := make(chan error, 1)
	go func() { built <- env.buildManager(ctx, opts) }()

	logf("starting kube-apiserver and etcd (KUBEBUILDER_ASSETS=%s)", os.Getenv("KUBEBUILDER_ASSETS"))
	// Every early return still waits for the build, so that nothing runs on.
	withBuild := func(err error) error { return errors.Join(err, <-built) }
	testEnv, cfg, err := testservers.StartControlPlane(crdDir)
	if err != nil {
		return env, withBuild(err)
	}
	env.testEnv = testEnv
	env.cfg = rest.CopyConfig(cfg)
	env.cfg.QPS = -1 // no client-side rate limit: the API server is what is measured
	env.cfg.Timeout = time.Minute

	redis, err := testservers.StartRedis(ctx)
	if err != nil {
		return env, withBuild(fmt.Errorf("starting redis-server: %w", err))
	}
	env.redis = redis
	logf("redis-server on %s", redis.Addr)
	for _, b := range opts.backends {
		if b != backendZooKeeper {
			continue
		}
		zk, err := testservers.StartZooKeeperEnsemble(ctx, 3)
		if err != nil {
			return env, withBuild(fmt.Errorf("starting a ZooKeeper ensemble: %w", err))
		}
		env.zk = zk
		logf("ZooKeeper ensemble on %s", strings.Join(zk.Servers(), ","))
	}
	if err := <-built; err != nil {
		return env, err
	}
	if err := env.startManager(ctx, opts); err != nil {
		return env, err
	}
	env.serverPID = childProcesses()
	delete(env.serverPID, "manager") // reported on its own
	return env, nil
}

// kubeAssets asks hack/kube-binaries.sh for kube-apiserver, etcd and kubectl
// (cached under bin/k8s; built or downloaded the first time), as `make
// setup-envtest` does.
func kubeAssets(ctx context.Context) (string, error) {
	logf("KUBEBUILDER_ASSETS is not set: asking hack/kube-binaries.sh")
	cmd := exec.CommandContext(ctx, "hack/kube-binaries.sh", "kube-apiserver", "etcd", "kubectl")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/kube-binaries.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// buildManager builds cmd/manager into the work directory, unless a binary
// was given.
func (e *environment) buildManager(ctx context.Context, opts options) error {
	// Read-only git commands: name the commit, and say whether the tree
	// differs from it.
	if out, err := exec.CommandContext(ctx, "git", "-C", opts.managerSrc, "rev-parse", "--short", "HEAD").Output(); err == nil {
		e.commit = "commit " + strings.TrimSpace(string(out))
		if exec.CommandContext(ctx, "git", "-C", opts.managerSrc, "diff-index", "--quiet", "HEAD", "--").Run() != nil {
			e.commit += " with uncommitted changes"
		}
	}
	if opts.managerBin != "" {
		e.commit = "binary " + opts.managerBin
		return nil
	}
	bin := filepath.Join(e.dir, "manager")
	logf("building ./cmd/manager from %s", opts.managerSrc)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/manager")
	cmd.Dir = opts.managerSrc
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building cmd/manager in %s: %w\n%s", opts.managerSrc, err, out)
	}
	return nil
}

// startManager runs the manager binary against the API server, as a
// cluster administrator, with its metrics on a free loopback port, and waits
// until its metrics answer.
func (e *environment) startManager(ctx context.Context, opts options) error {
	bin := opts.managerBin
	if bin == "" {
		bin = filepath.Join(e.dir, "manager")
	}
	user, err := e.testEnv.AddUser(envtest.User{Name: "distlock-manager", Groups: []string{"system:masters"}}, e.cfg)
	if err != nil {
		return fmt.Errorf("adding the manager's user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("writing the manager's kubeconfig: %w", err)
	}
	kubeconfigPath := filepath.Join(e.dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", kubeconfigPath, err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	metricsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	e.metrics = "http://" + metricsAddr + "/metrics"
	e.logPath = filepath.Join(e.dir, "manager.log")
	logFile, err := os.Create(e.logPath)
	if err != nil {
		return fmt.Errorf("creating the manager log: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	e.manager = exec.Command(bin, "--kubeconfig", kubeconfigPath, "--cluster-id", clusterID,
		"--metrics-bind-address", metricsAddr, "--metrics-secure=false", "--health-probe-bind-address", "0",
		"--zap-log-level", opts.logLevel)
	e.manager.Stdout, e.manager.Stderr = logFile, logFile
	// Never outlive this command, even if it is killed.
	e.manager.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.manager.Start(); err != nil {
		return fmt.Errorf("starting the manager: %w", err)
	}
	logf("manager pid %d, metrics %s, log %s", e.manager.Process.Pid, e.metrics, e.logPath)
	deadline := time.Now().Add(time.Minute)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := scrape(ctx, e.metrics); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the manager's metrics did not answer within a minute; see %s", e.logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// managerPID is the manager's process id.
func (e *environment) managerPID() int { return e.manager.Process.Pid }

// stop stops the manager (SIGTERM, then SIGKILL after 10s) and every server.
func (e *environment) stop() {
	if e.manager != nil && e.manager.Process != nil {
		_ = e.manager.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = e.manager.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = e.manager.Process.Kill()
			<-done
		}
	}
	var errs []error
	if e.zk != nil {
		errs = append(errs, e.zk.Stop())
	}
	if e.redis != nil {
		errs = append(errs, e.redis.Stop())
	}
	if e.testEnv != nil {
		errs = append(errs, e.testEnv.Stop())
	}
	if err := errors.Join(errs...); err != nil {
		logf("stopping the servers: %v", err)
	}
	if e.logPath != "" {
		logf("stopped everything; the manager's log is kept in %s", e.logPath)
	}
}
