package testservers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisStartTimeout bounds a Redis start when the caller's context has no
// earlier deadline.
const redisStartTimeout = 30 * time.Second

const redisInstall = "run `make test-deps` (installs Debian package redis-server)"

// Redis is a redis-server process listening on 127.0.0.1. Its methods are
// safe for concurrent use.
type Redis struct {
	// Addr is the client address, "127.0.0.1:port". It stays the same
	// across Restart.
	Addr string
	// Dir is the server's own temporary directory: working and data
	// directory, redis.conf and redis.log. Stop removes it.
	Dir string
	// Password is the password of the default user (requirepass), or "".
	Password string
	// Username and UserPassword are the ACL user added by WithRedisACLUser,
	// or "".
	Username, UserPassword string
	// BusPort is the cluster bus port of a Redis Cluster node (see
	// StartRedisCluster), or 0.
	BusPort int

	bin      string
	port     int
	sentinel bool // runs as a Sentinel

	lifecycle
}

// RedisOption configures StartRedis and NewRedis.
type RedisOption func(*redisConfig)

type redisConfig struct {
	host                   string
	password               string
	username, userPassword string
	extra                  [][]string
	// cluster enables Redis Cluster mode, with the cluster bus on a free
	// port of its own (by default it is the client port + 10000, which may
	// be taken, or beyond 65535).
	cluster bool
	// sentinel runs the server as a Sentinel (redis-server sentinel.conf
	// --sentinel); the "sentinel ..." directives come from extra.
	sentinel bool
}

// withRedisClusterMode makes the server a Redis Cluster node
// (StartRedisCluster joins the nodes).
func withRedisClusterMode() RedisOption {
	return func(c *redisConfig) { c.cluster = true }
}

// withRedisSentinelMode makes the server a Sentinel (StartRedisSentinel
// adds what it monitors).
func withRedisSentinelMode() RedisOption {
	return func(c *redisConfig) { c.sentinel = true }
}

// redisOptions applies opts to the defaults.
func redisOptions(opts []RedisOption) redisConfig {
	cfg := redisConfig{host: loopback}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// WithRedisHost makes the server listen on host instead of 127.0.0.1: an
// address inside a network namespace the test created (the end-to-end
// cluster's node address, which its pods can reach). Never a host interface.
func WithRedisHost(host string) RedisOption {
	return func(c *redisConfig) { c.host = host }
}

// WithRedisPassword requires clients to authenticate as the default user
// with pw (redis "requirepass").
func WithRedisPassword(pw string) RedisOption {
	return func(c *redisConfig) { c.password = pw }
}

// WithRedisACLUser adds an ACL user with password pw and all permissions
// ("user <user> on ><pw> ~* &* +@all"). The default user is left as
// configured by WithRedisPassword.
func WithRedisACLUser(user, pw string) RedisOption {
	return func(c *redisConfig) { c.username, c.userPassword = user, pw }
}

// WithRedisConfig adds the redis.conf directive "name args...", e.g.
// WithRedisConfig("appendonly", "yes") to make data survive Kill and
// Restart, or WithRedisConfig("save", "60", "1"). Each word is quoted.
// Directives are written after the defaults and so override them; bind and
// port always come last and cannot be overridden.
func WithRedisConfig(name string, args ...string) RedisOption {
	return func(c *redisConfig) {
		c.extra = append(c.extra, append([]string{name}, args...))
	}
}

// StartRedis starts redis-server on a free port of 127.0.0.1 with its own
// temporary directory and no persistence, and returns once it answers PING.
// ctx bounds the start only (by default 30 s); it does not stop the server
// later. The caller must call Stop.
func StartRedis(ctx context.Context, opts ...RedisOption) (*Redis, error) {
	cfg := redisOptions(opts)
	bin, err := lookBinary("DISTLOCK_REDIS_SERVER", "redis-server", redisInstall)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, redisStartTimeout)
	defer cancel()

	for attempt := 1; ; attempt++ {
		r, err := startRedisOnce(ctx, bin, cfg)
		if err == nil {
			return r, nil
		}
		if !isPortInUse(err) || attempt == startAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("starting redis-server (attempt %d): %w", attempt, err)
		}
	}
}

func startRedisOnce(ctx context.Context, bin string, cfg redisConfig) (*Redis, error) {
	nports := 1
	if cfg.cluster {
		nports = 2 // and the cluster bus
	}
	ports, err := freePortsOn(cfg.host, nports)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "distlock-redis-")
	if err != nil {
		return nil, fmt.Errorf("creating redis directory: %w", err)
	}
	r := &Redis{
		Addr:         net.JoinHostPort(cfg.host, strconv.Itoa(ports[0])),
		Dir:          dir,
		Password:     cfg.password,
		Username:     cfg.username,
		UserPassword: cfg.userPassword,
		bin:          bin,
		port:         ports[0],
		sentinel:     cfg.sentinel,
	}
	if cfg.cluster {
		r.BusPort = ports[1]
	}
	r.initLifecycle()
	if err := os.WriteFile(r.confPath(), []byte(r.config(cfg)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("writing redis.conf: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.startLocked(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// initLifecycle sets up the process management shared with ZooKeeper.
func (r *Redis) initLifecycle() {
	r.lifecycle = lifecycle{
		name:         "redis-server",
		describe:     func() string { return "redis-server on " + r.Addr },
		start:        r.startLocked,
		dirName:      "redis directory",
		removeDir:    func() error { return os.RemoveAll(r.Dir) },
		startTimeout: redisStartTimeout,
		// The old socket is normally free at once (redis uses
		// SO_REUSEADDR); a restart is retried briefly in case the port is
		// still held.
		retryDelay: 200 * time.Millisecond,
	}
}

// confPath returns the path of the configuration file: redis.conf, or
// sentinel.conf for a Sentinel (which rewrites it with what it learns).
func (r *Redis) confPath() string {
	if r.sentinel {
		return filepath.Join(r.Dir, "sentinel.conf")
	}
	return filepath.Join(r.Dir, "redis.conf")
}

// LogPath returns the path of the server log (stdout and stderr of
// redis-server) inside Dir.
func (r *Redis) LogPath() string { return filepath.Join(r.Dir, "redis.log") }

// config renders redis.conf.
func (r *Redis) config(cfg redisConfig) string {
	var b strings.Builder
	line := func(words ...string) {
		for i, w := range words {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(redisQuote(w))
		}
		b.WriteByte('\n')
	}
	// Protected mode refuses clients from anywhere but loopback unless a
	// password is set; a server on a network-namespace address (WithRedisHost)
	// serves pods, so it turns protected mode off there.
	if host := cmp.Or(cfg.host, loopback); host == loopback || host == "::1" {
		line("protected-mode", "yes")
	} else {
		line("protected-mode", "no")
	}
	line("daemonize", "no")
	line("dir", r.Dir)
	line("logfile", "")
	line("save", "")
	line("appendonly", "no")
	if cfg.password != "" {
		line("requirepass", cfg.password)
	}
	if cfg.username != "" {
		line("user", cfg.username, "on", ">"+cfg.userPassword, "~*", "&*", "+@all")
	}
	if cfg.cluster {
		line("cluster-enabled", "yes")
		line("cluster-config-file", "nodes.conf")
		line("cluster-port", strconv.Itoa(r.BusPort))
	}
	for _, words := range cfg.extra {
		line(words...)
	}
	line("bind", cmp.Or(cfg.host, loopback))
	line("port", strconv.Itoa(r.port))
	return b.String()
}

// redisQuote quotes s for redis.conf (double quotes, hex escapes).
func redisQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// startLocked launches redis-server with the existing redis.conf and waits
// for PING. r.mu must be held.
func (r *Redis) startLocked(ctx context.Context) error {
	args := []string{r.confPath()}
	if r.sentinel {
		args = append(args, "--sentinel")
	}
	p, err := startProcess(r.bin, args, r.Dir, r.LogPath())
	if err != nil {
		return err
	}
	what := fmt.Sprintf("redis-server on %s (dir %s)", r.Addr, r.Dir)
	probe := func(ctx context.Context) error { return r.ping(ctx, p.pid()) }
	if err := waitReady(ctx, p, what, probe); err != nil {
		if kerr := p.kill(); kerr != nil {
			err = errors.Join(err, kerr)
		}
		return err
	}
	r.setRunningLocked(p)
	return nil
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 5 s), waits for
// it to exit and removes Dir. Stop is idempotent; after Stop the server
// cannot be restarted.
func (r *Redis) Stop() error { return r.stop() }

// Kill crashes the server with SIGKILL and waits for it to exit. Dir is
// kept, so Restart can bring the server back. Killing a server that is not
// running does nothing.
func (r *Redis) Kill() error { return r.kill() }

// Restart starts the server again on the same address with the same
// directory and configuration, and returns once it answers PING. A running
// server is shut down gracefully first; after Kill it is simply started.
// Without persistence (the default) the data is gone afterwards, as after a
// real crash. ctx bounds the start (by default 30 s).
func (r *Redis) Restart(ctx context.Context) error { return r.restart(ctx) }

// Pause freezes the server with SIGSTOP: connections are accepted by the
// kernel but never answered, like a hung server. Resume undoes it; Stop and
// Kill work on a paused server.
func (r *Redis) Pause() error { return r.pause() }

// Resume lets a paused server continue (SIGCONT).
func (r *Redis) Resume() error { return r.resume() }

// Pid returns the process id of the running server, or 0 if it is not
// running.
func (r *Redis) Pid() int { return r.pid() }

// NewRedis starts a Redis server for the test (see StartRedis) and stops it
// in t.Cleanup. It fails the test if the server cannot start. If the test
// has failed, the end of the server log is logged before the server is
// stopped.
func NewRedis(t testing.TB, opts ...RedisOption) *Redis {
	t.Helper()
	r, err := StartRedis(t.Context(), opts...)
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testservers: tail of %s:\n%s", r.LogPath(), logTail(r.LogPath()))
		}
		if err := r.Stop(); err != nil {
			t.Errorf("testservers: %v", err)
		}
	})
	return r
}
