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
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/distlock/distlock/internal/leader"
)

var (
	managerOnce sync.Once
	managerBin  string
	managerErr  error
)

// managerBinary builds cmd/manager once per test run: the failover tests run
// the real binary, so that a leader can be killed with SIGKILL and paused
// with SIGSTOP.
func managerBinary(t *testing.T) string {
	t.Helper()
	managerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "distlock-manager-")
		if err != nil {
			managerErr = err
			return
		}
		managerBin = filepath.Join(dir, "manager")
		out, err := exec.Command("go", "build", "-o", managerBin, "../../cmd/manager").CombinedOutput()
		if err != nil {
			managerErr = err
			managerBin = string(out)
		}
	})
	if managerErr != nil {
		t.Fatalf("building cmd/manager: %v\n%s", managerErr, managerBin)
	}
	return managerBin
}

// managerProcess is a manager binary running against the test API server.
type managerProcess struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	log bytes.Buffer
}

func (m *managerProcess) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.Write(p)
}

func (m *managerProcess) logs() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.log.String()
}

// waitLog waits until the manager has logged a line matching re.
func (m *managerProcess) waitLog(t *testing.T, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !re.MatchString(m.logs()) {
		if time.Now().After(deadline) {
			t.Fatalf("the manager did not log %q within %v; its log:\n%s", re, waitTimeout, m.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (m *managerProcess) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v to the manager: %v", sig, err)
	}
}

// startManagerProcess runs the manager binary with leader election, handling
// the locks of ns only. It is killed when the test ends.
func startManagerProcess(t *testing.T, ns string) *managerProcess {
	t.Helper()
	bin := managerBinary(t)
	user, err := testEnv.AddUser(envtest.User{Name: "manager-" + ns, Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	m := &managerProcess{}
	m.cmd = exec.Command(bin, "--kubeconfig", path, "--cluster-id", testClusterID,
		"--leader-elect", "--leader-election-namespace", ns, "--watch-namespace", ns,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--zap-log-level", "debug")
	m.cmd.Stdout, m.cmd.Stderr = m, m
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.cmd.Process.Signal(syscall.SIGCONT)
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
		if t.Failed() {
			t.Logf("manager %d log:\n%s", m.cmd.Process.Pid, m.logs())
		}
	})
	return m
}

// electionHolder reads who holds the manager's election Lease in ns.
func electionHolder(ctx context.Context, t *testing.T, ns string) string {
	t.Helper()
	var lease coordinationv1.Lease
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: leader.DefaultLeaseName}, &lease)
	if err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// waitElectionHolder waits until the election Lease names someone other
// than not, and returns it.
func waitElectionHolder(ctx context.Context, t *testing.T, ns, not string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if h := electionHolder(ctx, t, ns); h != "" && h != not {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader other than %q within %v", not, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var startedWorkers = regexp.MustCompile(`Starting workers`)

func TestHoldsSurviveTheLeaderBeingKilledAndADeposedLeaderTouchesNothing(t *testing.T) {
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	first := startManagerProcess(t, ns)
	firstID := waitElectionHolder(ctx, t, ns, "", waitTimeout)
	locks := holdOnEachBackend(ctx, t, ns)
	second := startManagerProcess(t, ns)
	second.waitLog(t, startedWorkers)

	// kill -9 the leader: it releases nothing. The standby must take over
	// and renew every hold before it expires.
	first.signal(t, syscall.SIGKILL)
	killed := time.Now()
	var secondID string
	var takeover time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		secondID = waitElectionHolder(ctx, t, ns, firstID, waitTimeout)
		takeover = time.Since(killed)
	}()
	assertHeldThroughout(t, locks, 2*testLease, "after the leader was killed")
	<-done
	election, err := leader.Config{Namespace: ns}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the standby took over %v after the leader was killed (bound %v)", takeover, election.FailoverBound())
	if takeover > election.FailoverBound()+time.Second {
		t.Errorf("failover took %v; want within %v", takeover, election.FailoverBound())
	}

	// The new leader is paused for longer than the hold lease while a third
	// replica stands by: the third takes over and keeps the holds; when the
	// paused one resumes, it must not act on anything.
	third := startManagerProcess(t, ns)
	third.waitLog(t, startedWorkers)
	second.signal(t, syscall.SIGSTOP)
	paused := time.Now()
	assertHeldThroughout(t, locks, testLease+2*time.Second, "while the leader was paused")
	if h := waitElectionHolder(ctx, t, ns, secondID, waitTimeout); h == secondID {
		t.Fatalf("the paused leader still holds the election")
	}
	resumedAt := len(second.logs())
	second.signal(t, syscall.SIGCONT)
	t.Logf("the leader was paused for %v", time.Since(paused))
	second.waitLog(t, regexp.MustCompile(`(?i)depos|another replica leads`))
	time.Sleep(2 * time.Second) // a window in which the resumed replica must act on nothing
	if after := second.logs()[resumedAt:]; strings.Contains(after, `"decided"`) || strings.Contains(after, "Granted the lock") {
		t.Errorf("the resumed, deposed replica acted on locks:\n%s", after)
	}
	assertNoRecentCommands(t, "distlock-manager:"+secondID, 2*time.Second)

	assertStillHeldAndPassesOn(ctx, t, ns, locks)
}

// assertNoRecentCommands checks on the test Redis server that every
// connection named name has been idle for at least d.
func assertNoRecentCommands(t *testing.T, name string, d time.Duration) {
	t.Helper()
	list, err := newRedisClient(t, redisServer.Addr).ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(list, "\n") {
		fields := map[string]string{}
		for _, kv := range strings.Fields(line) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				fields[k] = v
			}
		}
		if fields["name"] != name {
			continue
		}
		seen++
		idle, _ := strconv.Atoi(fields["idle"])
		if time.Duration(idle)*time.Second < d-time.Second {
			t.Errorf("connection %s of the deposed replica ran %q %ss ago; want nothing for %v", fields["addr"], fields["cmd"], fields["idle"], d)
		}
	}
	if seen == 0 {
		t.Errorf("no Redis connection named %q: the test cannot tell what the replica did", name)
	}
}
