// Copyright 2026 The distlock Authors.
// SPDX-License-Identifier: Apache-2.0

// Command pause is the pod sandbox ("infra") container of the local e2e
// cluster (hack/local-cluster.sh): no registry is reachable there, so the
// usual registry.k8s.io/pause image is replaced by this program. Like the
// real pause it sleeps until SIGINT or SIGTERM, and as PID 1 of a pod that
// shares its process namespace it reaps orphaned children.
//
// It is built with CGO_ENABLED=0 into a static binary and packed into the
// image docker.io/local/pause:e2e by hack/local-cluster.sh. It is its own
// main package with no dependencies outside the standard library, so it
// builds with the project's module without adding anything to go.mod.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (distlock local cluster)")
		return
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		switch sig {
		case syscall.SIGCHLD:
			reap()
		default:
			fmt.Fprintf(os.Stderr, "pause: shutting down, got signal %v\n", sig)
			os.Exit(0)
		}
	}
}

// reap collects every child that has exited, without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
