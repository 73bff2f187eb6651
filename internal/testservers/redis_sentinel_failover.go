package testservers

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Finding the Sentinels' master, and failing it over.

// Primary returns the data server that the first answering Sentinel
// reports as the master.
func (s *RedisSentinel) Primary(ctx context.Context) (*Redis, error) {
	var errs []error
	for _, node := range s.Sentinels {
		if !node.running() {
			continue
		}
		cl := sentinelClient(node)
		addr, err := cl.GetMasterAddrByName(ctx, s.MasterName).Result()
		closeQuietly(cl)
		if err != nil {
			errs = append(errs, fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: %w", node.Addr, err))
			continue
		}
		master := s.data(net.JoinHostPort(addr[0], addr[1]))
		if master == nil {
			return nil, fmt.Errorf("sentinel %s reports master %v, which is not a data server of this setup", node.Addr, addr)
		}
		return master, nil
	}
	return nil, fmt.Errorf("no Sentinel reports the master %q: %w", s.MasterName, errors.Join(errs...))
}

// Failover has a Sentinel move the master to the replica with SENTINEL
// FAILOVER: at once, without the other Sentinels' agreement, and without
// waiting for the replica to catch up (a write the old master acknowledged
// just before can be lost). It returns the old and the new master once the
// Sentinels report the new one (see WaitNewPrimary). The old master goes
// on serving as a master until the Sentinels next look at it (every 10 s)
// and make it a replica; WaitHealthy waits for that.
func (s *RedisSentinel) Failover(ctx context.Context) (from, to *Redis, err error) {
	from, err = s.Primary(ctx)
	if err != nil {
		return nil, nil, err
	}
	var sentinel *Redis
	for _, node := range s.Sentinels {
		if node.running() {
			sentinel = node
			break
		}
	}
	if sentinel == nil {
		return nil, nil, errors.New("no Sentinel is running")
	}
	cl := sentinelClient(sentinel)
	defer closeQuietly(cl)
	if err := cl.Failover(ctx, s.MasterName).Err(); err != nil {
		return nil, nil, fmt.Errorf("SENTINEL FAILOVER %s on %s: %w", s.MasterName, sentinel.Addr, err)
	}
	to, err = s.WaitNewPrimary(ctx, from)
	if err != nil {
		return nil, nil, err
	}
	return from, to, nil
}

// KillPrimary kills the master with SIGKILL, as a crash would, and returns
// it at once. The Sentinels notice after down-after-milliseconds (1 s),
// agree (quorum 2), elect a leader among themselves and promote the
// replica; WaitNewPrimary waits for that. The killed server keeps its
// directory: Restart on it brings it back, and the Sentinels make it a
// replica of its successor.
func (s *RedisSentinel) KillPrimary(ctx context.Context) (*Redis, error) {
	master, err := s.Primary(ctx)
	if err != nil {
		return nil, err
	}
	if err := master.Kill(); err != nil {
		return nil, err
	}
	return master, nil
}

// WaitNewPrimary waits until every running Sentinel reports a master other
// than old, with no failover in progress, and that master runs and reports
// role:master; it returns that master. The rest of the setup may still be
// settling (WaitHealthy waits for it). ctx bounds the wait (by default
// 60 s).
func (s *RedisSentinel) WaitNewPrimary(ctx context.Context, old *Redis) (*Redis, error) {
	ctx, cancel := withDefaultTimeout(ctx, redisSentinelStartTimeout)
	defer cancel()
	var master *Redis
	err := poll(ctx, "a master other than "+old.Addr, func(ctx context.Context) error {
		m, err := s.agreedMaster(ctx, false)
		if err != nil {
			return err
		}
		if m == old {
			return fmt.Errorf("the Sentinels still report %s", old.Addr)
		}
		f, err := s.replication(ctx, m)
		if err != nil {
			return err
		}
		if f["role"] != roleMaster {
			return fmt.Errorf("the new master %s reports role %s", m.Addr, f["role"])
		}
		master = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return master, nil
}
