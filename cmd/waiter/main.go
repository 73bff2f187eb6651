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

// Command waiter is the init container that gates a pod on a
// DistributedLock: it waits until the controller grants the lock to its pod,
// writes the fencing token to a file (default /distlock/fencing-token) and
// exits 0. Exit codes: 2 bad usage, 3 --timeout expired, 4 the pod's hold
// was lost, 1 anything else. See internal/waiter.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/client/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/distlock/distlock/internal/waiter"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("waiter", flag.ContinueOnError)
	// --kubeconfig, read by config.GetConfig below.
	config.RegisterFlags(fs)
	opts, err := waiter.ParseOptions(fs, os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "waiter: %v\n", err)
		return waiter.ExitCode(err)
	}
	// controller-runtime and client-go log through this logger (rarely).
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr)))

	// The kubelet sends SIGTERM when the pod is deleted while it waits.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	// In a pod: the in-cluster config of the pod's ServiceAccount. Outside:
	// --kubeconfig, $KUBECONFIG or ~/.kube/config.
	cfg, err := config.GetConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "waiter: loading the API server configuration: %v\n", err)
		return waiter.ExitFailed
	}
	c, err := waiter.NewClient(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "waiter: %v\n", err)
		return waiter.ExitFailed
	}
	err = waiter.Run(ctx, c, opts, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
	}
	return waiter.ExitCode(err)
}
