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
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// restartDelay is how long the supervisor waits before starting a manager
// that exited again, as a kubelet restarting a container would.
const restartDelay = time.Second

// manager is one replica of the manager binary, kept running by a
// supervisor the way a Deployment's kubelet keeps a container running: when
// it exits (killed, or stepping down after a pause), it is started again.
type manager struct {
	name string
	bin  string
	args []string
	dir  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	logPath  string
	starts   int
	closing  bool
	exited   chan struct{}
	stopLoop chan struct{}
	loopDone chan struct{}
}

func newManager(name, bin, dir string, args []string) *manager {
	return &manager{name: name, bin: bin, args: args, dir: dir, stopLoop: make(chan struct{}), loopDone: make(chan struct{})}
}

// start runs the replica and supervises it until close.
func (m *manager) start() error {
	if err := m.launch(); err != nil {
		return err
	}
	go m.supervise()
	return nil
}

func (m *manager) launch() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.starts++
	m.logPath = filepath.Join(m.dir, fmt.Sprintf("%s.%d.log", m.name, m.starts))
	log, err := os.Create(m.logPath)
	if err != nil {
		return fmt.Errorf("creating %s: %w", m.logPath, err)
	}
	defer func() { _ = log.Close() }() // the child has its own descriptor
	cmd := exec.Command(m.bin, m.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting manager %s: %w", m.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	m.cmd, m.exited = cmd, exited
	return nil
}

func (m *manager) supervise() {
	defer close(m.loopDone)
	for {
		m.mu.Lock()
		exited := m.exited
		m.mu.Unlock()
		select {
		case <-m.stopLoop:
			return
		case <-exited:
		}
		select {
		case <-m.stopLoop:
			return
		case <-time.After(restartDelay):
		}
		if err := m.launch(); err != nil {
			fmt.Fprintf(os.Stderr, "supervisor: %v\n", err)
			return
		}
	}
}

// signal sends sig to the running replica.
func (m *manager) signal(sig syscall.Signal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("sending %v to manager %s: %w", sig, m.name, err)
	}
	return nil
}

// waitExit waits until the current replica process has exited.
func (m *manager) waitExit(ctx context.Context) error {
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for manager %s to exit: %w", m.name, ctx.Err())
	}
}

// restarts is how many times the replica was started.
func (m *manager) launches() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.starts
}

// identityLine is the manager's first log line naming its identity in the
// election Lease.
var identityLine = regexp.MustCompile(`"starting manager","identity":"([^"]+)"`)

// identity is the running replica's identity in the election Lease ("" if
// it has not said yet).
func (m *manager) identity() string {
	m.mu.Lock()
	path := m.logPath
	m.mu.Unlock()
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if match := identityLine.FindSubmatch(data); match != nil {
		return string(match[1])
	}
	return ""
}

// close stops supervising and kills the replica.
func (m *manager) close() {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return
	}
	m.closing = true
	m.mu.Unlock()
	close(m.stopLoop)
	<-m.loopDone
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.cmd.Process.Signal(syscall.SIGCONT)
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// logs is the tail of every log of the replica, for a failed cell.
func (m *manager) logs(tail int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, _ := os.ReadFile(m.logPath)
	if len(data) > tail {
		data = data[len(data)-tail:]
	}
	return fmt.Sprintf("--- manager %s (start %d) %s:\n%s", m.name, m.starts, m.logPath, data)
}
