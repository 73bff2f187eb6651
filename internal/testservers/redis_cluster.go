package testservers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// redisClusterStartTimeout bounds a cluster start, and a wait for it to
	// be healthy, when the caller's context has no earlier deadline.
	redisClusterStartTimeout = 60 * time.Second
	// clusterNodeTimeout is the test clusters' cluster-node-timeout in
	// milliseconds: how long a primary may be unreachable before its
	// replica takes over. Short, so that a failover after KillPrimary takes
	// a few seconds; WithRedisConfig("cluster-node-timeout", ...) overrides
	// it.
	clusterNodeTimeout = "1500"
	// clusterPrimaries is the number of primaries of a test cluster; each
	// has one replica.
	clusterPrimaries = 3
)

// RedisCluster is a Redis Cluster of three primaries, each with one
// replica: six redis-server processes with cluster-enabled yes on
// 127.0.0.1, each with its own port, cluster bus port and directory. The
// nodes can be killed and restarted one by one through Nodes, or all
// together with Kill and Restart.
type RedisCluster struct {
	// Nodes are the six servers. Nodes[0], Nodes[1] and Nodes[2] start as
	// the primaries of slots 0-5460, 5461-10922 and 10923-16383, and
	// Nodes[3+i] as the replica of Nodes[i]; failovers change the roles,
	// not the order.
	Nodes []*Redis
	// Password is the password of the default user on every node
	// (WithRedisPassword; also the nodes' masterauth), or "".
	Password string
}

// StartRedisCluster starts a Redis Cluster of three primaries with one
// replica each on free ports of 127.0.0.1 (see RedisCluster), with no
// persistence unless opts ask for it. opts apply to every node, as for
// StartRedis. The slots are assigned with CLUSTER ADDSLOTSRANGE, the nodes
// joined with CLUSTER MEET and CLUSTER REPLICATE, and StartRedisCluster
// returns once every node reports cluster_state:ok, every node agrees on
// the primary of every slot and every replica is in sync (WaitHealthy).
// ctx bounds the start only (by default 60 s). The caller must call Stop.
func StartRedisCluster(ctx context.Context, opts ...RedisOption) (*RedisCluster, error) {
	ctx, cancel := withDefaultTimeout(ctx, redisClusterStartTimeout)
	defer cancel()
	password := redisOptions(opts).password
	nodeOpts := []RedisOption{
		withRedisClusterMode(),
		WithRedisConfig("cluster-node-timeout", clusterNodeTimeout),
		// A replica syncs at once (by default the primary waits 5 s for
		// more replicas to share the transfer).
		WithRedisConfig("repl-diskless-sync-delay", "0"),
	}
	if password != "" {
		// A replica, and a primary once demoted, authenticates to its primary.
		nodeOpts = append(nodeOpts, WithRedisConfig("masterauth", password))
	}
	nodeOpts = append(nodeOpts, opts...)

	c := &RedisCluster{Nodes: make([]*Redis, 2*clusterPrimaries), Password: password}
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Go(func() { c.Nodes[i], errs[i] = StartRedis(ctx, nodeOpts...) })
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		err = c.form(ctx)
	}
	if err != nil {
		if serr := c.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("starting a Redis Cluster: %w", err)
	}
	return c, nil
}

// form joins the started nodes into a cluster.
func (c *RedisCluster) form(ctx context.Context) error {
	clients := make([]*redis.Client, len(c.Nodes))
	for i, node := range c.Nodes {
		clients[i] = c.client(node)
		defer closeQuietly(clients[i])
	}
	// Distinct config epochs, as redis-cli --cluster create sets them, so
	// that the nodes need not resolve collisions first.
	for i, cl := range clients {
		if err := cl.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("CLUSTER SET-CONFIG-EPOCH on %s: %w", c.Nodes[i].Addr, err)
		}
	}
	for i := range clusterPrimaries {
		first, last := slotRange(i)
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			return fmt.Errorf("CLUSTER ADDSLOTSRANGE %d %d on %s: %w", first, last, c.Nodes[i].Addr, err)
		}
	}
	for _, node := range c.Nodes[1:] {
		host, port := splitHostPort(node.Addr)
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, node.BusPort).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s from %s: %w", node.Addr, c.Nodes[0].Addr, err)
		}
	}
	if err := c.waitKnown(ctx, clients); err != nil {
		return err
	}
	for i := range clusterPrimaries {
		id, err := clients[i].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("CLUSTER MYID on %s: %w", c.Nodes[i].Addr, err)
		}
		replica := clients[clusterPrimaries+i]
		if err := replica.ClusterReplicate(ctx, id).Err(); err != nil {
			return fmt.Errorf("CLUSTER REPLICATE %s on %s: %w", id, c.Nodes[clusterPrimaries+i].Addr, err)
		}
	}
	return c.WaitHealthy(ctx)
}

// slotRange returns the slots that primary i of clusterPrimaries serves at
// first, as redis-cli --cluster create splits them.
func slotRange(i int) (first, last int) {
	const slots = 16384
	return i * slots / clusterPrimaries, (i+1)*slots/clusterPrimaries - 1
}

// waitKnown waits until every node knows every other one (the MEET
// handshakes are done), which CLUSTER REPLICATE needs.
func (c *RedisCluster) waitKnown(ctx context.Context, clients []*redis.Client) error {
	return poll(ctx, "every Redis Cluster node knowing the others", func(ctx context.Context) error {
		for i, cl := range clients {
			nodes, err := cl.ClusterNodes(ctx).Result()
			if err != nil {
				return fmt.Errorf("CLUSTER NODES on %s: %w", c.Nodes[i].Addr, err)
			}
			lines := strings.Split(strings.TrimSpace(nodes), "\n")
			if len(lines) != len(c.Nodes) || strings.Contains(nodes, "handshake") || strings.Contains(nodes, "noaddr") {
				return fmt.Errorf("%s knows %d of %d nodes:\n%s", c.Nodes[i].Addr, len(lines), len(c.Nodes), nodes)
			}
		}
		return nil
	})
}

// Addrs returns the client addresses of all nodes: the seed nodes for a
// cluster client.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, node := range c.Nodes {
		addrs[i] = node.Addr
	}
	return addrs
}

// client returns a go-redis client of one node; the caller closes it.
func (c *RedisCluster) client(node *Redis) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         node.Addr,
		Password:     c.Password,
		DialTimeout:  probeTimeout,
		ReadTimeout:  probeTimeout,
		WriteTimeout: probeTimeout,
		MaxRetries:   -1,
	})
}

// WaitHealthy waits until the cluster serves every slot again, e.g. after
// KillPrimary or Restart: every running node (not killed, stopped or
// paused) reports cluster_state:ok and the same primary and replicas for
// every slot (so that a primary knows its replica, which a CLUSTER FAILOVER
// needs), that primary is running, and every running replica's link to its
// primary is up. ctx bounds the wait (by default 60 s).
func (c *RedisCluster) WaitHealthy(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, redisClusterStartTimeout)
	defer cancel()
	return poll(ctx, "a healthy Redis Cluster", c.healthy)
}

// healthy checks once what WaitHealthy waits for.
func (c *RedisCluster) healthy(ctx context.Context) error {
	var layout string
	for _, node := range c.Nodes {
		if !node.running() {
			continue
		}
		err := func() error {
			cl := c.client(node)
			defer closeQuietly(cl)
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("CLUSTER INFO: %w", err)
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return errors.New("cluster_state is not ok")
			}
			owners, err := slotOwners(ctx, cl)
			if err != nil {
				return err
			}
			view := fmt.Sprint(owners)
			switch {
			case layout == "":
				layout = view
			case view != layout:
				return fmt.Errorf("sees primaries %s, another node %s", view, layout)
			}
			for _, o := range owners {
				if owner := c.node(o.primary); owner == nil || !owner.running() {
					return fmt.Errorf("slots %d-%d are served by %q, which is down", o.first, o.last, o.primary)
				}
			}
			return replicaInSync(ctx, cl)
		}()
		if err != nil {
			return fmt.Errorf("node %s: %w", node.Addr, err)
		}
	}
	return nil
}

// node returns the node with client address addr, or nil.
func (c *RedisCluster) node(addr string) *Redis {
	for _, node := range c.Nodes {
		if node.Addr == addr {
			return node
		}
	}
	return nil
}

// Kill crashes every node with SIGKILL, keeping their directories.
func (c *RedisCluster) Kill() error {
	return eachRedis(c.Nodes, func(node *Redis) error { return node.Kill() })
}

// Restart restarts every node on the same addresses with the same
// directories (each keeps its cluster identity in nodes.conf, and its data
// when persistence is on), and returns once the cluster is healthy
// (WaitHealthy). ctx bounds the start (by default 60 s).
func (c *RedisCluster) Restart(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, redisClusterStartTimeout)
	defer cancel()
	if err := eachRedis(c.Nodes, func(node *Redis) error { return node.Restart(ctx) }); err != nil {
		return err
	}
	return c.WaitHealthy(ctx)
}

// Stop stops every node and removes their directories. It is idempotent.
func (c *RedisCluster) Stop() error {
	return eachRedis(c.Nodes, func(node *Redis) error { return node.Stop() })
}

// NewRedisCluster starts a Redis Cluster for the test (see
// StartRedisCluster) and stops it in t.Cleanup. It fails the test if the
// cluster cannot start. If the test has failed, the end of every node's
// log is logged before the cluster is stopped.
func NewRedisCluster(t testing.TB, opts ...RedisOption) *RedisCluster {
	t.Helper()
	c, err := StartRedisCluster(t.Context(), opts...)
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, node := range c.Nodes {
				t.Logf("testservers: tail of %s:\n%s", node.LogPath(), logTail(node.LogPath()))
			}
		}
		if err := c.Stop(); err != nil {
			t.Errorf("testservers: %v", err)
		}
	})
	return c
}
