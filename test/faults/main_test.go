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

// Package faults runs the fault scenarios of docs/reliability.md (`make
// test-faults`): for each scenario and backend, a cell with its own
// namespace, manager processes and locks keeps handing locks over while a
// fault is injected and healed, holders record their critical sections in a
// history file that does not go through the controller, and
// internal/history checks it. The table of every cell is printed at the end
// (and written to $FAULTS_TABLE); any overlap, token regression or stuck
// waiter fails the run.
package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"go.uber.org/zap/zapcore"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
)

// suite is what every cell shares: the control plane, a ZooKeeper ensemble
// and the manager binary.
type suite struct {
	profile    profile
	crdDir     string
	testEnv    *envtest.Environment
	cfg        *rest.Config
	apiServer  *apiServerProcess
	zk         *testservers.ZooKeeperEnsemble
	managerBin string
	results    *table
}

var theSuite *suite

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.WarnLevel)))
	if err := locksv1alpha1.AddToScheme(scheme.Scheme); err != nil {
		fmt.Fprintf(os.Stderr, "adding the locks API to the scheme: %v\n", err)
		return 1
	}
	prof, err := profileFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s := &suite{profile: prof, crdDir: filepath.Join("..", "..", "config", "crd", "bases"), results: &table{commit: sourceCommit()}}
	code := s.run(m)
	s.results.print(os.Stdout, prof)
	if path := os.Getenv("FAULTS_TABLE"); path != "" {
		if err := s.results.write(path, prof); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}

func (s *suite) run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "distlock-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	s.managerBin = filepath.Join(dir, "manager")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", s.managerBin, "../../cmd/manager").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building cmd/manager: %v\n%s", err, out)
		return 1
	}
	env, cfg, err := testservers.StartControlPlane(s.crdDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s.testEnv, s.cfg = env, cfg
	s.apiServer, err = findAPIServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = env.Stop()
		return 1
	}
	defer func() {
		s.apiServer.stopRelaunched()
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
		}
	}()
	s.zk, err = testservers.StartZooKeeperEnsemble(ctx, 3)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting a ZooKeeper ensemble: %v\n", err)
		return 1
	}
	defer func() { _ = s.zk.Stop() }()
	theSuite = s
	return m.Run()
}
