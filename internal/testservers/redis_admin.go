package testservers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Helpers for administering the Redis servers of a cluster or a Sentinel
// setup with go-redis.

// Replication roles, as INFO replication and CLUSTER SHARDS name them.
const (
	roleMaster  = "master"
	roleReplica = "slave"
)

// closeQuietly closes a client whose close error changes nothing (a
// short-lived administration connection).
func closeQuietly(c io.Closer) { _ = c.Close() }

// slotOwner is a range of hash slots, the address of its primary and the
// addresses of its replicas (sorted).
type slotOwner struct {
	first, last int64
	primary     string
	replicas    []string
}

// slotOwners asks the node behind cl which primary serves which slots, and
// which nodes replicate it (CLUSTER SHARDS), ordered by slot.
func slotOwners(ctx context.Context, cl *redis.Client) ([]slotOwner, error) {
	shards, err := cl.ClusterShards(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER SHARDS: %w", err)
	}
	var owners []slotOwner
	for _, shard := range shards {
		var primary string
		var replicas []string
		for _, n := range shard.Nodes {
			addr := net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
			if n.Role == roleMaster {
				primary = addr
			} else {
				replicas = append(replicas, addr)
			}
		}
		slices.Sort(replicas)
		for _, r := range shard.Slots {
			owners = append(owners, slotOwner{first: r.Start, last: r.End, primary: primary, replicas: replicas})
		}
	}
	slices.SortFunc(owners, func(a, b slotOwner) int { return int(a.first - b.first) })
	return owners, nil
}

// replicaInSync checks that the server behind cl, if it is a replica, has
// its link to its primary up.
func replicaInSync(ctx context.Context, cl *redis.Client) error {
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("INFO replication: %w", err)
	}
	fields := infoFields(info)
	if fields["role"] == roleReplica && fields["master_link_status"] != "up" {
		return fmt.Errorf("replica of %s:%s with its link %s", fields["master_host"], fields["master_port"], fields["master_link_status"])
	}
	return nil
}

// infoFields parses an INFO answer into its "name:value" fields.
func infoFields(info string) map[string]string {
	fields := map[string]string{}
	for line := range strings.Lines(info) {
		if name, value, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[name] = value
		}
	}
	return fields
}

// splitHostPort splits "host:port" at its last colon.
func splitHostPort(addr string) (host, port string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

// poll calls check until it succeeds or ctx ends; the error then names
// what was awaited and the last failure.
func poll(ctx context.Context, what string, check func(ctx context.Context) error) error {
	for {
		probeCtx, cancel := context.WithTimeout(ctx, 2*probeTimeout)
		err := check(probeCtx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %w)", what, ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}

// eachRedis runs fn on every started server of nodes concurrently.
func eachRedis(nodes []*Redis, fn func(*Redis) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		if node != nil {
			wg.Go(func() { errs[i] = fn(node) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}
