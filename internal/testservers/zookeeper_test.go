package testservers

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// zkTestLogger routes go-zookeeper's logging to the test log.
type zkTestLogger struct{ t testing.TB }

func (l zkTestLogger) Printf(format string, args ...any) { l.t.Logf("zk: "+format, args...) }

// connectZK opens a session to servers and waits until it is established.
// The connection is closed at the end of the test (closing twice is fine).
func connectZK(t *testing.T, servers []string) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect(servers, 4*time.Second, zk.WithLogger(zkTestLogger{t}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zk.Connect(%v): %v", servers, err)
	}
	t.Cleanup(conn.Close)
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-timeout:
			t.Fatalf("no ZooKeeper session with %v within 15s (state %v)", servers, conn.State())
		}
	}
}

func TestZooKeeperEphemeralNodeFollowsItsSession(t *testing.T) {
	t.Parallel()
	server := NewZooKeeper(t)
	if mode, err := server.Mode(t.Context()); err != nil || mode != "standalone" {
		t.Fatalf("Mode = %q, %v; want standalone", mode, err)
	}
	owner := connectZK(t, []string{server.Addr})
	observer := connectZK(t, []string{server.Addr})

	const path = "/lock"
	if _, err := owner.Create(path, []byte("owner-1"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("Create ephemeral %s: %v", path, err)
	}
	ok, stat, err := observer.Exists(path)
	if err != nil || !ok {
		t.Fatalf("Exists %s from a second session = %v, %v; want true", path, ok, err)
	}
	if stat.EphemeralOwner != owner.SessionID() {
		t.Fatalf("EphemeralOwner = %#x, want the first session %#x", stat.EphemeralOwner, owner.SessionID())
	}
	data, _, err := observer.Get(path)
	if err != nil || string(data) != "owner-1" {
		t.Fatalf("Get %s = %q, %v; want owner-1", path, data, err)
	}
	if _, err := observer.Create(path, []byte("owner-2"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("competing Create of %s: %v, want ErrNodeExists", path, err)
	}

	ok, _, watch, err := observer.ExistsW(path)
	if err != nil || !ok {
		t.Fatalf("ExistsW %s = %v, %v", path, ok, err)
	}
	owner.Close() // ends the session: the server deletes its ephemeral nodes
	select {
	case ev := <-watch:
		if ev.Type != zk.EventNodeDeleted {
			t.Fatalf("watch event %v on %s, want EventNodeDeleted", ev.Type, ev.Path)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not deleted within 10s after its session was closed", path)
	}
	if ok, _, err := observer.Exists(path); err != nil || ok {
		t.Fatalf("Exists %s after the owner closed = %v, %v; want false", path, ok, err)
	}
}

func TestZooKeeperTTLNodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    []ZooKeeperOption
		wantErr bool
	}{
		{name: "TTL nodes work by default (extendedTypesEnabled)"},
		{
			name:    "TTL nodes are refused when extendedTypesEnabled is turned off in zoo.cfg",
			opts:    []ZooKeeperOption{WithZooKeeperConfig("extendedTypesEnabled", "false")},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			server := NewZooKeeper(t, tt.opts...)
			conn := connectZK(t, []string{server.Addr})
			_, err := conn.CreateTTL("/ttl", []byte("x"), zk.FlagTTL, zk.WorldACL(zk.PermAll), time.Minute)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CreateTTL: %v, want error: %v", err, tt.wantErr)
			}
			ok, _, err := conn.Exists("/ttl")
			if err != nil || ok == tt.wantErr {
				t.Fatalf("Exists /ttl = %v, %v; want %v", ok, err, !tt.wantErr)
			}
		})
	}
}

func TestZooKeeperRestartKeepsPersistentNodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		crash bool // Kill before Restart instead of a graceful restart
	}{
		{name: "a graceful restart keeps a persistent node", crash: false},
		{name: "a crash and restart keeps a persistent node", crash: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			server := NewZooKeeper(t)
			addr, pid := server.Addr, server.Pid()
			conn := connectZK(t, []string{server.Addr})
			if _, err := conn.Create("/persistent", []byte("kept"), zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("Create /persistent: %v", err)
			}
			conn.Close()

			if tt.crash {
				if err := server.Kill(); err != nil {
					t.Fatalf("Kill: %v", err)
				}
				if processAlive(pid) {
					t.Fatalf("JVM pid %d alive after Kill", pid)
				}
				if _, err := server.Mode(t.Context()); err == nil {
					t.Fatal("srvr answered after Kill")
				}
			}
			if err := server.Restart(t.Context()); err != nil {
				t.Fatalf("Restart: %v", err)
			}
			if server.Addr != addr || server.Pid() == pid {
				t.Fatalf("after Restart Addr=%s pid=%d, before Addr=%s pid=%d", server.Addr, server.Pid(), addr, pid)
			}
			conn = connectZK(t, []string{server.Addr})
			data, _, err := conn.Get("/persistent")
			if err != nil || string(data) != "kept" {
				t.Fatalf("Get /persistent after restart = %q, %v; want kept", data, err)
			}
		})
	}
}

func TestZooKeeperPauseAndStop(t *testing.T) {
	t.Parallel()
	server, err := StartZooKeeper(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer server.Stop()
	ctx := t.Context()

	if err := server.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if _, err := server.Mode(ctxWithTimeout(t, 500*time.Millisecond)); err == nil {
		t.Fatal("srvr answered while the server was paused")
	}
	if err := server.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if mode, err := server.Mode(ctx); err != nil || mode != "standalone" {
		t.Fatalf("Mode after Resume = %q, %v", mode, err)
	}

	pid := server.Pid()
	if err := server.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if processAlive(pid) {
		t.Errorf("JVM pid %d alive after Stop", pid)
	}
	if _, err := os.Stat(server.Dir); !os.IsNotExist(err) {
		t.Errorf("Dir %s still there after Stop (stat: %v)", server.Dir, err)
	}
	if err := server.Restart(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("Restart after Stop: %v, want ErrStopped", err)
	}
}
