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

package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/distlock/distlock/internal/backend"
)

const (
	// DefaultDialTimeout bounds a connection attempt when
	// backend.Config.DialTimeout is zero.
	DefaultDialTimeout = 2 * time.Second
	// commandTimeout bounds each socket read and write, so that calls fail
	// fast when the server hangs.
	commandTimeout = 2 * time.Second
	// maxRetries is how often go-redis retries a command after a network
	// error. Every script is safe to repeat. (Cluster redirections, MOVED
	// and ASK, are followed whatever this says.)
	maxRetries = 1
	// dialerRetries is how often go-redis dials before it gives up on one
	// connection.
	dialerRetries = 2
	// clusterStateReloadInterval is how old a cluster client's slot map may
	// get before go-redis reloads it while commands succeed (its default is
	// a minute).
	clusterStateReloadInterval = 10 * time.Second
)

// mode is the kind of Redis deployment a Locker talks to.
type mode int

const (
	// modeSingle is one Redis server.
	modeSingle mode = iota
	// modeSentinel is the master that a set of Sentinels monitor.
	modeSentinel
	// modeCluster is a Redis Cluster.
	modeCluster
)

// clientOptions decides how to reach the deployment cfg describes: its mode,
// and the go-redis options of every mode in one struct. The client of each
// mode is built from the same options (UniversalOptions.Simple, Failover or
// Cluster), so that timeouts, retries, credentials and TLS never differ
// between the modes. It does no I/O.
func clientOptions(cfg backend.Config) (mode, *goredis.UniversalOptions, error) {
	m := modeSingle
	switch {
	case len(cfg.Servers) == 0:
		return 0, nil, errors.New("no server address configured")
	case cfg.Cluster && cfg.SentinelMaster != "":
		return 0, nil, fmt.Errorf("both a Sentinel master (%q) and a Redis Cluster configured; choose one", cfg.SentinelMaster)
	case cfg.Cluster && cfg.DB != 0:
		return 0, nil, fmt.Errorf("database %d configured, but a Redis Cluster has only database 0", cfg.DB)
	case cfg.Cluster:
		m = modeCluster
	case cfg.SentinelMaster != "":
		m = modeSentinel
	}
	addrs := slices.Clone(cfg.Servers)
	if m == modeSingle {
		addrs = addrs[:1]
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}
	return m, &goredis.UniversalOptions{
		Addrs:            addrs,
		MasterName:       cfg.SentinelMaster,
		ClientName:       cfg.ClientName,
		DB:               cfg.DB,
		Username:         cfg.Username,
		Password:         cfg.Password,
		SentinelUsername: cfg.SentinelUsername,
		SentinelPassword: cfg.SentinelPassword,
		TLSConfig:        cfg.TLS,
		DialTimeout:      dialTimeout,
		DialerRetries:    dialerRetries,
		ReadTimeout:      commandTimeout,
		WriteTimeout:     commandTimeout,
		MaxRetries:       maxRetries,
		// Calls end with their context, whatever the socket timeouts say.
		ContextTimeoutEnabled: true,
		// Not used by a lock client; leaving it on makes go-redis probe
		// the server for a command that most servers do not have.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		// RESP2: a lock client needs no push notifications, and with RESP3
		// go-redis reads the socket for them before every command (a
		// fifth of the client's CPU per call in BenchmarkRedis).
		Protocol: 2,
	}, nil
}

// newClient builds the go-redis client of mode m from opts.
func newClient(m mode, opts *goredis.UniversalOptions) goredis.UniversalClient {
	switch m {
	case modeSentinel:
		return goredis.NewFailoverClient(opts.Failover())
	case modeCluster:
		o := opts.Cluster()
		// A backstop only: the locker has the slot map reloaded whenever a
		// node cannot be reached (locker.wrap), and go-redis on MOVED.
		o.ClusterStateReloadInterval = clusterStateReloadInterval
		return goredis.NewClusterClient(o)
	default:
		return goredis.NewClient(opts.Simple())
	}
}

// target names what a client of mode m connects to, for error messages.
func target(m mode, opts *goredis.UniversalOptions) string {
	switch m {
	case modeSentinel:
		return fmt.Sprintf("master %q via sentinels %s", opts.MasterName, strings.Join(opts.Addrs, ","))
	case modeCluster:
		return "Redis Cluster via " + strings.Join(opts.Addrs, ",")
	default:
		return opts.Addrs[0]
	}
}

func init() { backend.Register("redis", New) }

// New connects to the Redis deployment described by cfg and returns a Locker
// for it. It is the backend.Factory of the "redis" backend.
//
// cfg.Servers[0] is the server address. When cfg.SentinelMaster is set,
// cfg.Servers are the Sentinel addresses instead and the Locker follows the
// master they report; the Sentinels are contacted with cfg.SentinelUsername
// and cfg.SentinelPassword. When cfg.Cluster is set, cfg.Servers are seed
// nodes of a Redis Cluster, and cfg.DB must be 0. cfg.DB, cfg.Username,
// cfg.Password, cfg.TLS and cfg.DialTimeout (default DefaultDialTimeout)
// are used as given, for every server of the deployment.
//
// New checks the connection with PING. When that fails, the error wraps
// backend.ErrUnauthorized if a server (or a Sentinel) refused the
// credentials and backend.ErrUnreachable otherwise.
func New(ctx context.Context, cfg backend.Config) (backend.Locker, error) {
	m, opts, err := clientOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("redis: connect: %w", err)
	}
	client := newClient(m, opts)
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		kind := classify(err)
		if kind == nil {
			kind = backend.ErrUnreachable
		}
		return nil, fmt.Errorf("redis: connect to %s: %w: %w", target(m, opts), kind, err)
	}
	l := &locker{client: client}
	if cc, ok := client.(*goredis.ClusterClient); ok {
		l.cluster, l.reload = true, cc.ReloadState
	}
	return l, nil
}
