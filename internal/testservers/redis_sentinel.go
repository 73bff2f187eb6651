package testservers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// redisSentinelStartTimeout bounds a Sentinel setup's start, and a wait
	// for it to be healthy, when the caller's context has no earlier
	// deadline.
	redisSentinelStartTimeout = 60 * time.Second
	// sentinelCount is the number of Sentinels; two of them (the quorum)
	// must agree that the master is down.
	sentinelCount = 3
	// sentinelQuorum is the number of Sentinels that must agree.
	sentinelQuorum = "2"
	// sentinelDownAfter is how long, in milliseconds, the master may not
	// answer before a Sentinel thinks it down: short, so that a failover
	// after KillPrimary takes a few seconds.
	sentinelDownAfter = "1000"
	// sentinelFailoverTimeout is the Sentinels' failover-timeout in
	// milliseconds (a failed failover is tried again after twice that).
	sentinelFailoverTimeout = "3000"
	// DefaultSentinelMaster is the name the Sentinels monitor the master by.
	DefaultSentinelMaster = "distlock-master"
)

// RedisSentinel is a Redis master with one replica, monitored by three
// Sentinels, all on 127.0.0.1, each process with its own port and
// directory: the deployment that backend "redis" reaches with a Sentinel
// master name.
type RedisSentinel struct {
	// MasterName is the name the Sentinels know the master by.
	MasterName string
	// Data are the two Redis servers. Data[0] starts as the master and
	// Data[1] as its replica; failovers change the roles, not the order.
	Data []*Redis
	// Sentinels are the three Sentinels (redis-server sentinel.conf
	// --sentinel). Their Password, Username and UserPassword are the
	// Sentinels' own credentials (WithSentinelOptions).
	Sentinels []*Redis
	// Password is the data servers' password (requirepass, and masterauth
	// so that a replica can follow its master), or "".
	Password string
}

// SentinelOption configures StartRedisSentinel.
type SentinelOption func(*sentinelSetup)

type sentinelSetup struct {
	data, sentinels []RedisOption
}

// WithSentinelDataOptions configures both data servers, as for StartRedis:
// WithRedisPassword (also their masterauth, and the Sentinels' auth-pass),
// WithRedisConfig("appendonly", "yes") and so on.
func WithSentinelDataOptions(opts ...RedisOption) SentinelOption {
	return func(s *sentinelSetup) { s.data = append(s.data, opts...) }
}

// WithSentinelOptions configures the three Sentinels, as for StartRedis:
// WithRedisPassword sets their own requirepass (which they also use among
// themselves), WithRedisACLUser adds an ACL user of theirs.
func WithSentinelOptions(opts ...RedisOption) SentinelOption {
	return func(s *sentinelSetup) { s.sentinels = append(s.sentinels, opts...) }
}

// StartRedisSentinel starts a master, its replica and three Sentinels that
// monitor it as DefaultSentinelMaster (see RedisSentinel), without
// persistence unless the options ask for it, and returns once every
// Sentinel knows the master, its replica and the other Sentinels
// (WaitHealthy). ctx bounds the start only (by default 60 s). The caller
// must call Stop.
func StartRedisSentinel(ctx context.Context, opts ...SentinelOption) (*RedisSentinel, error) {
	var setup sentinelSetup
	for _, o := range opts {
		o(&setup)
	}
	ctx, cancel := withDefaultTimeout(ctx, redisSentinelStartTimeout)
	defer cancel()
	s := &RedisSentinel{MasterName: DefaultSentinelMaster, Password: redisOptions(setup.data).password}
	if err := s.start(ctx, setup); err != nil {
		if serr := s.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("starting Redis with Sentinels: %w", err)
	}
	return s, nil
}

// start starts the master, then its replica, then the Sentinels.
func (s *RedisSentinel) start(ctx context.Context, setup sentinelSetup) error {
	dataOpts := []RedisOption{WithRedisConfig("repl-diskless-sync-delay", "0")}
	if s.Password != "" {
		dataOpts = append(dataOpts, WithRedisConfig("masterauth", s.Password))
	}
	dataOpts = append(dataOpts, setup.data...)
	master, err := StartRedis(ctx, dataOpts...)
	if err != nil {
		return err
	}
	s.Data = append(s.Data, master)
	host, port := splitHostPort(master.Addr)
	replica, err := StartRedis(ctx, append(dataOpts, WithRedisConfig("replicaof", host, port))...)
	if err != nil {
		return err
	}
	s.Data = append(s.Data, replica)
	if err := poll(ctx, "the replica "+replica.Addr+" in sync", func(ctx context.Context) error {
		cl := s.dataClient(replica)
		defer closeQuietly(cl)
		return replicaInSync(ctx, cl)
	}); err != nil {
		return err
	}

	sentinelOpts := []RedisOption{
		withRedisSentinelMode(),
		WithRedisConfig("sentinel", "monitor", s.MasterName, host, port, sentinelQuorum),
		WithRedisConfig("sentinel", "down-after-milliseconds", s.MasterName, sentinelDownAfter),
		WithRedisConfig("sentinel", "failover-timeout", s.MasterName, sentinelFailoverTimeout),
		WithRedisConfig("sentinel", "parallel-syncs", s.MasterName, "1"),
	}
	if s.Password != "" {
		sentinelOpts = append(sentinelOpts, WithRedisConfig("sentinel", "auth-pass", s.MasterName, s.Password))
	}
	sentinelOpts = append(sentinelOpts, setup.sentinels...)
	s.Sentinels = make([]*Redis, sentinelCount)
	errs := make([]error, sentinelCount)
	var wg sync.WaitGroup
	for i := range s.Sentinels {
		wg.Go(func() { s.Sentinels[i], errs[i] = StartRedis(ctx, sentinelOpts...) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.WaitHealthy(ctx)
}

// SentinelAddrs returns the addresses of the Sentinels.
func (s *RedisSentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.Sentinels))
	for i, node := range s.Sentinels {
		addrs[i] = node.Addr
	}
	return addrs
}

// dataClient returns a go-redis client of a data server; the caller closes
// it.
func (s *RedisSentinel) dataClient(node *Redis) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: node.Addr, Password: s.Password,
		DialTimeout: probeTimeout, ReadTimeout: probeTimeout, WriteTimeout: probeTimeout, MaxRetries: -1,
	})
}

// sentinelClient returns a go-redis client of a Sentinel, with the
// Sentinels' own credentials; the caller closes it.
func sentinelClient(node *Redis) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr: node.Addr, Password: node.Password,
		DialTimeout: probeTimeout, ReadTimeout: probeTimeout, WriteTimeout: probeTimeout, MaxRetries: -1,
	})
}

// data returns the data server with client address addr, or nil.
func (s *RedisSentinel) data(addr string) *Redis {
	for _, node := range s.Data {
		if node.Addr == addr {
			return node
		}
	}
	return nil
}

// WaitHealthy waits until the setup serves again, e.g. after a failover or
// Restart: every running Sentinel reports the same master, with no down or
// failover flag, knows the other Sentinels and at least one replica; the
// master runs and reports role:master; and every other running data server
// is its replica, in sync. ctx bounds the wait (by default 60 s).
func (s *RedisSentinel) WaitHealthy(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, redisSentinelStartTimeout)
	defer cancel()
	return poll(ctx, "healthy Sentinels and Redis", s.healthy)
}

// healthy checks once what WaitHealthy waits for.
func (s *RedisSentinel) healthy(ctx context.Context) error {
	master, err := s.agreedMaster(ctx, true)
	if err != nil {
		return err
	}
	_, masterPort := splitHostPort(master.Addr)
	for _, node := range s.Data {
		if !node.running() {
			continue
		}
		f, err := s.replication(ctx, node)
		if err != nil {
			return err
		}
		switch {
		case node == master && f["role"] != roleMaster:
			return fmt.Errorf("the master %s reports role %s", node.Addr, f["role"])
		case node != master && (f["role"] != roleReplica || f["master_port"] != masterPort || f["master_link_status"] != "up"):
			return fmt.Errorf("%s: role %s, master port %s, link %s; want a replica of %s in sync",
				node.Addr, f["role"], f["master_port"], f["master_link_status"], master.Addr)
		}
	}
	return nil
}

// agreedMaster returns the master that every running Sentinel reports,
// with no down or failover flag, once it runs. With complete set, every
// Sentinel must also know the other Sentinels and a replica (a Sentinel
// forgets them when the master changes, and learns them again within
// seconds).
func (s *RedisSentinel) agreedMaster(ctx context.Context, complete bool) (*Redis, error) {
	var masterAddr string
	for _, node := range s.Sentinels {
		if !node.running() {
			continue
		}
		cl := sentinelClient(node)
		m, err := cl.Master(ctx, s.MasterName).Result()
		closeQuietly(cl)
		if err != nil {
			return nil, fmt.Errorf("SENTINEL MASTER on %s: %w", node.Addr, err)
		}
		addr := m["ip"] + ":" + m["port"]
		others, _ := strconv.Atoi(m["num-other-sentinels"])
		replicas, _ := strconv.Atoi(m["num-slaves"])
		switch {
		case masterAddr != "" && addr != masterAddr:
			return nil, fmt.Errorf("sentinel %s reports master %s, another %s", node.Addr, addr, masterAddr)
		case m["flags"] != roleMaster:
			return nil, fmt.Errorf("sentinel %s reports master %s with flags %s", node.Addr, addr, m["flags"])
		case complete && (others != sentinelCount-1 || replicas < 1):
			return nil, fmt.Errorf("sentinel %s knows %d other sentinels and %d replicas", node.Addr, others, replicas)
		}
		masterAddr = addr
	}
	master := s.data(masterAddr)
	if master == nil || !master.running() {
		return nil, fmt.Errorf("the master %s is not a running data server", masterAddr)
	}
	return master, nil
}

// replication returns the fields of INFO replication of a data server.
func (s *RedisSentinel) replication(ctx context.Context, node *Redis) (map[string]string, error) {
	cl := s.dataClient(node)
	defer closeQuietly(cl)
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO replication on %s: %w", node.Addr, err)
	}
	return infoFields(info), nil
}

// Kill crashes both data servers with SIGKILL, keeping their directories;
// the Sentinels keep running (and find no replica to promote).
func (s *RedisSentinel) Kill() error {
	return eachRedis(s.Data, func(node *Redis) error { return node.Kill() })
}

// Restart restarts both data servers on the same addresses with the same
// directories (and data, with persistence) and returns once the setup is
// healthy (WaitHealthy). ctx bounds the start (by default 60 s).
func (s *RedisSentinel) Restart(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, redisSentinelStartTimeout)
	defer cancel()
	if err := eachRedis(s.Data, func(node *Redis) error { return node.Restart(ctx) }); err != nil {
		return err
	}
	return s.WaitHealthy(ctx)
}

// Stop stops every process and removes their directories. It is
// idempotent.
func (s *RedisSentinel) Stop() error {
	return eachRedis(append(s.Sentinels[:len(s.Sentinels):len(s.Sentinels)], s.Data...),
		func(node *Redis) error { return node.Stop() })
}

// NewRedisSentinel starts a Sentinel setup for the test (see
// StartRedisSentinel) and stops it in t.Cleanup. It fails the test if the
// setup cannot start. If the test has failed, the end of every log is
// logged before the setup is stopped.
func NewRedisSentinel(t testing.TB, opts ...SentinelOption) *RedisSentinel {
	t.Helper()
	s, err := StartRedisSentinel(t.Context(), opts...)
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, node := range append(s.Sentinels[:len(s.Sentinels):len(s.Sentinels)], s.Data...) {
				t.Logf("testservers: tail of %s:\n%s", node.LogPath(), logTail(node.LogPath()))
			}
		}
		if err := s.Stop(); err != nil {
			t.Errorf("testservers: %v", err)
		}
	})
	return s
}
