package testservers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Finding a slot's primary and its replica, and failing it over.

// anyRunning returns a client of some running node; the caller closes it.
func (c *RedisCluster) anyRunning() (*redis.Client, error) {
	for _, node := range c.Nodes {
		if node.running() {
			return c.client(node), nil
		}
	}
	return nil, errors.New("no Redis Cluster node is running")
}

// PrimaryFor returns the node that a running node reports as the primary of
// key's hash slot now.
func (c *RedisCluster) PrimaryFor(ctx context.Context, key string) (*Redis, error) {
	cl, err := c.anyRunning()
	if err != nil {
		return nil, err
	}
	defer closeQuietly(cl)
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER KEYSLOT %q: %w", key, err)
	}
	owners, err := slotOwners(ctx, cl)
	if err != nil {
		return nil, err
	}
	for _, o := range owners {
		if o.first <= slot && slot <= o.last {
			if node := c.node(o.primary); node != nil {
				return node, nil
			}
			return nil, fmt.Errorf("slot %d is served by %q, which is not a node of this cluster", slot, o.primary)
		}
	}
	return nil, fmt.Errorf("slot %d of %q is not served", slot, key)
}

// ReplicaOf returns the running node that replicates primary.
func (c *RedisCluster) ReplicaOf(ctx context.Context, primary *Redis) (*Redis, error) {
	_, port := splitHostPort(primary.Addr)
	for _, node := range c.Nodes {
		if node == primary || !node.running() {
			continue
		}
		cl := c.client(node)
		info, err := cl.Info(ctx, "replication").Result()
		closeQuietly(cl)
		if err != nil {
			return nil, fmt.Errorf("INFO replication on %s: %w", node.Addr, err)
		}
		fields := infoFields(info)
		if fields["role"] == roleReplica && fields["master_port"] == port {
			return node, nil
		}
	}
	return nil, fmt.Errorf("no running node replicates %s", primary.Addr)
}

// Failover makes the replica of key's primary the primary of its slots with
// CLUSTER FAILOVER: a coordinated failover, in which the replica first
// catches up with the primary (the primary holds its clients meanwhile), so
// no write the primary acknowledged is lost. It returns the old and the
// new primary once the cluster is healthy again (WaitHealthy), the old
// primary being the new one's replica.
func (c *RedisCluster) Failover(ctx context.Context, key string) (from, to *Redis, err error) {
	from, err = c.PrimaryFor(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	to, err = c.ReplicaOf(ctx, from)
	if err != nil {
		return nil, nil, err
	}
	cl := c.client(to)
	defer closeQuietly(cl)
	// A manual failover that does not complete within 5 s is abandoned by
	// the replica (say, its primary did not know it yet as its replica);
	// it is asked again.
	var requested time.Time
	err = poll(ctx, "the replica "+to.Addr+" taking over from "+from.Addr, func(ctx context.Context) error {
		if time.Since(requested) > manualFailoverTimeout {
			if err := cl.ClusterFailover(ctx).Err(); err != nil {
				return fmt.Errorf("CLUSTER FAILOVER on %s: %w", to.Addr, err)
			}
			requested = time.Now()
		}
		primary, err := c.PrimaryFor(ctx, key)
		switch {
		case err != nil:
			return err
		case primary != to:
			return fmt.Errorf("the primary of %q is still %s", key, primary.Addr)
		}
		return c.healthy(ctx)
	})
	if err != nil {
		return nil, nil, err
	}
	return from, to, nil
}

// manualFailoverTimeout is how long a replica keeps trying a CLUSTER
// FAILOVER (Redis's CLUSTER_MF_TIMEOUT), with a margin.
const manualFailoverTimeout = 6 * time.Second

// KillPrimary kills the primary of key's slot with SIGKILL, as a crash
// would, and returns it and its replica at once. The replica takes over
// after cluster-node-timeout (1.5 s) and an election; WaitHealthy waits for
// that. The killed node keeps its directory: Restart on it brings it back
// as a replica of its successor.
func (c *RedisCluster) KillPrimary(ctx context.Context, key string) (killed, replica *Redis, err error) {
	killed, err = c.PrimaryFor(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	replica, err = c.ReplicaOf(ctx, killed)
	if err != nil {
		return nil, nil, err
	}
	if err := killed.Kill(); err != nil {
		return nil, nil, err
	}
	return killed, replica, nil
}
