package testservers

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ctxWithTimeout returns a context that ends after d or with the test.
func ctxWithTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestZooKeeperEnsembleSurvivesLosingAMember(t *testing.T) {
	t.Parallel()
	ens := NewZooKeeperEnsemble(t, 3)
	ctx := t.Context()
	if got := ens.Servers(); len(got) != 3 || got[0] == got[1] || got[1] == got[2] || got[0] == got[2] {
		t.Fatalf("Servers() = %v, want 3 distinct addresses", got)
	}
	for _, node := range ens.Nodes {
		if mode, err := node.Mode(ctx); err != nil || (mode != "leader" && mode != "follower") {
			t.Fatalf("server %d mode = %q, %v; want leader or follower", node.ID, mode, err)
		}
	}
	leader, err := ens.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Write through one member, read through another.
	others := slices.DeleteFunc(slices.Clone(ens.Nodes), func(n *ZooKeeper) bool { return n == leader })
	writer := connectZK(t, []string{leader.Addr})
	if _, err := writer.Create("/before", []byte("1"), zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("Create /before via the leader: %v", err)
	}
	writer.Close()

	// Losing the leader is the hard case: the other two must elect a new one.
	if err := leader.Kill(); err != nil {
		t.Fatalf("Kill leader (server %d): %v", leader.ID, err)
	}
	if err := ens.WaitServing(ctxWithTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("the two survivors did not recover: %v", err)
	}
	survivors := []string{others[0].Addr, others[1].Addr}
	conn := connectZK(t, survivors)
	if _, err := conn.Sync("/"); err != nil {
		t.Fatalf("Sync on the two survivors: %v", err)
	}
	if data, _, err := conn.Get("/before"); err != nil || string(data) != "1" {
		t.Fatalf("Get /before from the survivors = %q, %v", data, err)
	}
	if _, err := conn.Create("/after", []byte("2"), zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("Create /after with one member down: %v", err)
	}
	newLeader, err := ens.Leader(ctx)
	if err != nil || newLeader == leader {
		t.Fatalf("Leader after killing server %d = %v, %v", leader.ID, newLeader, err)
	}

	// The killed member rejoins with its old data and catches up.
	if err := leader.Restart(ctx); err != nil {
		t.Fatalf("Restart server %d: %v", leader.ID, err)
	}
	if mode, err := leader.Mode(ctx); err != nil || (mode != "leader" && mode != "follower") {
		t.Fatalf("restarted server %d mode = %q, %v", leader.ID, mode, err)
	}
	rejoined := connectZK(t, []string{leader.Addr})
	if _, err := rejoined.Sync("/"); err != nil {
		t.Fatalf("Sync on the restarted member: %v", err)
	}
	for path, want := range map[string]string{"/before": "1", "/after": "2"} {
		if data, _, err := rejoined.Get(path); err != nil || string(data) != want {
			t.Fatalf("Get %s from the restarted member = %q, %v; want %q", path, data, err, want)
		}
	}
}
