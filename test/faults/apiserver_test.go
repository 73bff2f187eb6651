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

package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiServerProcess is envtest's kube-apiserver, as this test can kill it
// (SIGKILL) and start it again with the same command line, certificates,
// port and etcd: an API server that dies and comes back.
type apiServerProcess struct {
	args []string
	env  []string
	dir  string

	mu         sync.Mutex
	pid        int
	relaunched *exec.Cmd
}

// findAPIServer finds envtest's kube-apiserver among this process's
// children and records how it was started.
func findAPIServer() (*apiServerProcess, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		closing := strings.LastIndexByte(s, ')')
		if closing < 0 || !strings.Contains(s[:closing], "(kube-apiserver") {
			continue
		}
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(self) {
			continue
		}
		return readProcess(pid)
	}
	return nil, errors.New("envtest's kube-apiserver is not among this test's child processes")
}

func readProcess(pid int) (*apiServerProcess, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver's command line: %w", err)
	}
	environ, err := os.ReadFile(filepath.Join(dir, "environ"))
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver's environment: %w", err)
	}
	cwd, err := os.Readlink(filepath.Join(dir, "cwd"))
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver's directory: %w", err)
	}
	split := func(b []byte) []string { return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") }
	return &apiServerProcess{args: split(cmdline), env: split(environ), dir: cwd, pid: pid}, nil
}

// kill sends SIGKILL and waits until the process is gone.
func (a *apiServerProcess) kill(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := syscall.Kill(a.pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing kube-apiserver %d: %w", a.pid, err)
	}
	if a.relaunched != nil {
		_ = a.relaunched.Wait()
		a.relaunched = nil
		return nil
	}
	// envtest reaps its own child; wait until it has.
	for {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(a.pid), "cmdline")); err != nil {
			return nil
		}
		if data, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(a.pid), "stat")); bytes.Contains(data, []byte(") Z")) {
			return nil // a zombie is as dead as it gets
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for kube-apiserver %d to exit: %w", a.pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// relaunch starts kube-apiserver again as it was first started, and waits
// until it is ready.
func (a *apiServerProcess) relaunch(ctx context.Context, cfg *rest.Config) error {
	a.mu.Lock()
	cmd := exec.Command(a.args[0], a.args[1:]...)
	cmd.Env, cmd.Dir = a.env, a.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		a.mu.Unlock()
		return fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	a.pid, a.relaunched = cmd.Process.Pid, cmd
	a.mu.Unlock()

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("a client for the relaunched kube-apiserver: %w", err)
	}
	for {
		readyCtx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(readyCtx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the relaunched kube-apiserver did not become ready: %w (last: %w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopRelaunched kills a relaunched kube-apiserver, which envtest does not
// know about.
func (a *apiServerProcess) stopRelaunched() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.relaunched != nil {
		_ = a.relaunched.Process.Kill()
		_ = a.relaunched.Wait()
		a.relaunched = nil
	}
}
