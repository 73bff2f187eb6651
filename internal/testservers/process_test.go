package testservers

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// orphanHelperEnv makes the test binary act as a helper that starts a
// server, prints its pid and dies without stopping it.
const orphanHelperEnv = "DISTLOCK_TESTSERVERS_ORPHAN_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(orphanHelperEnv) == "redis" {
		r, err := StartRedis(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("pid=%d dir=%s\n", r.Pid(), r.Dir)
		// Die without Stop, as a crashed or timed-out test binary would.
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestServerDoesNotOutliveTestBinary(t *testing.T) {
	t.Parallel()
	// /proc/self/exe works even if the test binary in /tmp has been removed.
	cmd := exec.CommandContext(t.Context(), "/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanHelperEnv+"=redis")
	out, err := cmd.Output()
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Fatalf("helper exited with %d (%v), want 3; output %q", code, err, out)
	}
	var pid int
	var dir string
	if _, err := fmt.Fscanf(bufio.NewReader(strings.NewReader(string(out))), "pid=%d dir=%s\n", &pid, &dir); err != nil {
		t.Fatalf("parsing helper output %q: %v", out, err)
	}
	// The helper never removed its directory.
	t.Cleanup(func() { os.RemoveAll(dir) })

	deadline := time.Now().Add(5 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server pid %d still alive 5s after its parent died", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLogTailStartsAtLineBoundary(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/log"
	var b strings.Builder
	for i := range 1000 {
		b.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tail := logTail(path)
	if len(tail) > logTailBytes || !strings.HasPrefix(tail, "line ") || !strings.HasSuffix(tail, "line 999\n") {
		t.Fatalf("logTail = %d bytes starting %q", len(tail), tail[:min(len(tail), 20)])
	}
	if got := logTail(path + ".missing"); got != "" {
		t.Fatalf("logTail of a missing file = %q", got)
	}
}

func TestStartOnTakenPortFailsWithRetryableError(t *testing.T) {
	t.Parallel()
	// Occupiers of a port; each returns the port.
	plainListener := func(t *testing.T) int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.Addr().(*net.TCPAddr).Port
	}
	otherRedis := func(t *testing.T) int { return NewRedis(t).port }
	otherZooKeeper := func(t *testing.T) int {
		_, port, _ := strings.Cut(NewZooKeeper(t).Addr, ":")
		n, _ := strconv.Atoi(port)
		return n
	}
	// Starters of a server on a given port, without any retry.
	startRedis := func(t *testing.T, port int) error {
		bin, err := lookBinary("DISTLOCK_REDIS_SERVER", "redis-server", redisInstall)
		if err != nil {
			return err
		}
		r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: t.TempDir(), bin: bin, port: port}
		if err := os.WriteFile(r.confPath(), []byte(r.config(redisConfig{})), 0o600); err != nil {
			return err
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		defer func() {
			if r.proc != nil {
				r.proc.kill()
			}
		}()
		return r.startLocked(ctxWithTimeout(t, 30*time.Second))
	}
	startZooKeeper := func(t *testing.T, port int) error {
		rt, err := findZooKeeperRuntime()
		if err != nil {
			return err
		}
		z, err := newZooKeeperNode(rt, zkOptions(nil), 0, port, nil)
		if err != nil {
			return err
		}
		t.Cleanup(func() { os.RemoveAll(z.Dir) })
		z.mu.Lock()
		defer z.mu.Unlock()
		defer func() {
			if z.proc != nil {
				z.proc.kill()
			}
		}()
		return z.startLocked(ctxWithTimeout(t, 30*time.Second))
	}

	tests := []struct {
		name   string
		occupy func(t *testing.T) int
		start  func(t *testing.T, port int) error
	}{
		{"redis-server on a port held by a plain listener fails with a retryable error", plainListener, startRedis},
		{"redis-server on a port held by another redis-server is not fooled by its PONG", otherRedis, startRedis},
		{"ZooKeeper on a port held by a plain listener fails with a retryable error", plainListener, startZooKeeper},
		{"ZooKeeper on a port held by another ZooKeeper is not fooled by its srvr", otherZooKeeper, startZooKeeper},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.start(t, tt.occupy(t))
			if err == nil {
				t.Fatal("server reported ready on a port that was already taken")
			}
			if !isPortInUse(err) {
				t.Fatalf("error is not recognised as port in use (no retry would happen):\n%v", err)
			}
		})
	}
}

// Not parallel: it changes the environment.
func TestZooKeeperStartFailureShowsLogTail(t *testing.T) {
	// A classpath that exists but holds no ZooKeeper classes: the JVM starts
	// and exits at once.
	t.Setenv("DISTLOCK_ZOOKEEPER_CLASSPATH", t.TempDir())
	_, err := StartZooKeeper(ctxWithTimeout(t, 30*time.Second))
	if err == nil {
		t.Fatal("StartZooKeeper succeeded without ZooKeeper on the classpath")
	}
	for _, want := range []string{"before it became ready", "tail of", "org.apache.zookeeper.server.ZooKeeperServerMain"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
}

// Not parallel: it changes the environment.
func TestZooKeeperMissingClasspathSaysWhatToInstall(t *testing.T) {
	t.Setenv("DISTLOCK_ZOOKEEPER_CLASSPATH", "/nonexistent/zookeeper.jar")
	_, err := StartZooKeeperEnsemble(ctxWithTimeout(t, 5*time.Second), 3)
	if err == nil || !strings.Contains(err.Error(), "make test-deps") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v does not say what to install or wrap os.ErrNotExist", err)
	}
}
