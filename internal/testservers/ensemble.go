package testservers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// zkEnsembleStartTimeout bounds an ensemble start when the caller's context
// has no earlier deadline.
const zkEnsembleStartTimeout = 90 * time.Second

// ZooKeeperEnsemble is a ZooKeeper quorum of several servers
// (QuorumPeerMain) on 127.0.0.1. Individual members can be stopped,
// killed, paused and restarted through Nodes.
type ZooKeeperEnsemble struct {
	// Nodes are the members; Nodes[i].ID is i+1.
	Nodes []*ZooKeeper
}

// StartZooKeeperEnsemble starts an ensemble of n servers (n >= 1; use an
// odd number, usually 3) on free ports of 127.0.0.1, each with its own
// directory, and returns once every server's `srvr` reports "leader" or
// "follower" ("standalone" for n = 1). ctx bounds the start only (by
// default 90 s). The caller must call Stop.
func StartZooKeeperEnsemble(ctx context.Context, n int, opts ...ZooKeeperOption) (*ZooKeeperEnsemble, error) {
	if n < 1 {
		return nil, fmt.Errorf("starting ZooKeeper ensemble: need at least 1 server, got %d", n)
	}
	cfg := zkOptions(opts)
	rt, err := findZooKeeperRuntime()
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, zkEnsembleStartTimeout)
	defer cancel()

	for attempt := 1; ; attempt++ {
		e, err := startEnsembleOnce(ctx, rt, cfg, n)
		if err == nil {
			return e, nil
		}
		if !isPortInUse(err) || attempt == startAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("starting ZooKeeper ensemble of %d (attempt %d): %w", n, attempt, err)
		}
	}
}

func startEnsembleOnce(ctx context.Context, rt zkRuntime, cfg zkConfig, n int) (*ZooKeeperEnsemble, error) {
	// Per server: client port, quorum (peer) port, election port.
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, err
	}
	servers := make([]string, n)
	for i := range n {
		servers[i] = fmt.Sprintf("server.%d=127.0.0.1:%d:%d", i+1, ports[3*i+1], ports[3*i+2])
	}
	e := &ZooKeeperEnsemble{}
	for i := range n {
		node, err := newZooKeeperNode(rt, cfg, i+1, ports[3*i], servers)
		if err != nil {
			e.removeDirs()
			return nil, err
		}
		e.Nodes = append(e.Nodes, node)
	}

	// The servers only become ready together, once they have elected a
	// leader, so they are started concurrently. The first failure (say, a
	// port taken by another process) cancels the others.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, node := range e.Nodes {
		wg.Go(func() {
			node.mu.Lock()
			defer node.mu.Unlock()
			if errs[i] = node.startLocked(ctx); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		// Some servers may be up; take everything down again.
		if serr := e.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return e, nil
}

// removeDirs removes the directories of nodes that were never started.
func (e *ZooKeeperEnsemble) removeDirs() {
	for _, node := range e.Nodes {
		os.RemoveAll(node.Dir)
	}
}

// Servers returns the client addresses of all members, for example for
// zk.Connect.
func (e *ZooKeeperEnsemble) Servers() []string {
	addrs := make([]string, len(e.Nodes))
	for i, node := range e.Nodes {
		addrs[i] = node.Addr
	}
	return addrs
}

// Modes that `srvr` reports for ensemble members.
const (
	modeLeader   = "leader"
	modeFollower = "follower"
)

// Leader returns the member whose `srvr` currently reports "leader".
func (e *ZooKeeperEnsemble) Leader(ctx context.Context) (*ZooKeeper, error) {
	var errs []error
	for _, node := range e.Nodes {
		mode, err := node.Mode(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("server %d: %w", node.ID, err))
			continue
		}
		if mode == modeLeader {
			return node, nil
		}
	}
	return nil, fmt.Errorf("no ZooKeeper server reports Mode: leader: %w", errors.Join(errs...))
}

// WaitServing waits until the ensemble serves clients again, e.g. after a
// member was killed: every running member (not killed, stopped or paused)
// reports "leader" or "follower" and exactly one reports "leader". It does
// not check that the running members form a majority; with too few of them
// it fails when ctx ends.
func (e *ZooKeeperEnsemble) WaitServing(ctx context.Context) error {
	if len(e.Nodes) == 1 {
		return e.waitModes(ctx, "standalone")
	}
	return e.waitModes(ctx, modeLeader, modeFollower)
}

func (e *ZooKeeperEnsemble) waitModes(ctx context.Context, modes ...string) error {
	var last string
	for {
		states := make([]string, 0, len(e.Nodes))
		ok, leaders := true, 0
		for _, node := range e.Nodes {
			if !node.running() {
				states = append(states, fmt.Sprintf("server %d: down", node.ID))
				continue
			}
			probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
			mode, err := node.Mode(probeCtx)
			cancel()
			switch {
			case err != nil:
				ok = false
				states = append(states, fmt.Sprintf("server %d: %v", node.ID, err))
			case !slices.Contains(modes, mode):
				ok = false
				states = append(states, fmt.Sprintf("server %d: %s", node.ID, mode))
			default:
				states = append(states, fmt.Sprintf("server %d: %s", node.ID, mode))
			}
			if mode == modeLeader {
				leaders++
			}
		}
		if ok && (leaders == 1 || modes[0] == "standalone") {
			return nil
		}
		last = strings.Join(states, "; ")
		select {
		case <-ctx.Done():
			return fmt.Errorf("ZooKeeper ensemble not serving: %w (%s)", ctx.Err(), last)
		case <-time.After(pollInterval):
		}
	}
}

// Stop stops all members concurrently and removes their directories. It is
// idempotent.
func (e *ZooKeeperEnsemble) Stop() error {
	errs := make([]error, len(e.Nodes))
	var wg sync.WaitGroup
	for i, node := range e.Nodes {
		wg.Go(func() { errs[i] = node.Stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// NewZooKeeperEnsemble starts an ensemble of n servers for the test (see
// StartZooKeeperEnsemble) and stops it in t.Cleanup. It fails the test if
// the ensemble cannot start. If the test has failed, the end of every
// server log is logged before the ensemble is stopped.
func NewZooKeeperEnsemble(t testing.TB, n int, opts ...ZooKeeperOption) *ZooKeeperEnsemble {
	t.Helper()
	e, err := StartZooKeeperEnsemble(t.Context(), n, opts...)
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, node := range e.Nodes {
				t.Logf("testservers: tail of %s (server %d):\n%s", node.LogPath(), node.ID, logTail(node.LogPath()))
			}
		}
		if err := e.Stop(); err != nil {
			t.Errorf("testservers: %v", err)
		}
	})
	return e
}
