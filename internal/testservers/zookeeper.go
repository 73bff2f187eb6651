package testservers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// zkStartTimeout bounds a ZooKeeper start or restart when the caller's
	// context has no earlier deadline; JVM start-up is slow.
	zkStartTimeout = 60 * time.Second

	zkDefaultClasspath = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"
	zkStandaloneMain   = "org.apache.zookeeper.server.ZooKeeperServerMain"
	zkQuorumMain       = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

	zkInstall   = "run `make test-deps` (installs Debian package zookeeper)"
	javaInstall = "run `make test-deps` (installs Debian packages zookeeper and default-jre-headless)"
)

// zkLoggingJars bind ZooKeeper's slf4j logging to log4j 1.2 with the
// CONSOLE appender from /etc/zookeeper/conf/log4j.properties. Debian's
// zookeeper.jar does not pull in any slf4j binding, so without them the
// server log would only say "Defaulting to no-operation (NOP) logger".
// They are added to the default classpath when present.
var zkLoggingJars = []string{
	"/usr/share/java/slf4j-log4j12.jar",
	"/usr/share/java/log4j-1.2.jar",
}

// ZooKeeper is one ZooKeeper server process listening on 127.0.0.1, either
// standalone (StartZooKeeper) or a member of a ZooKeeperEnsemble. Its
// methods are safe for concurrent use.
type ZooKeeper struct {
	// Addr is the client address, "127.0.0.1:port". It stays the same
	// across Restart.
	Addr string
	// Dir is the server's own temporary directory: zoo.cfg, zookeeper.log
	// and the data directory "data". Stop removes it.
	Dir string
	// ID is the server id (myid) within an ensemble, 0 when standalone.
	ID int

	rt         zkRuntime
	mainClass  string
	readyModes []string // srvr modes that mean "ready"

	lifecycle
}

// ZooKeeperOption configures StartZooKeeper, StartZooKeeperEnsemble and
// their New counterparts.
type ZooKeeperOption func(*zkConfig)

type zkConfig struct {
	host     string
	tickTime time.Duration
	extra    [][2]string
}

// WithZooKeeperTickTime sets tickTime (default 2 s). Session timeouts are
// bounded by 2 and 20 ticks, so a shorter tick allows tests with quickly
// expiring sessions.
func WithZooKeeperTickTime(d time.Duration) ZooKeeperOption {
	return func(c *zkConfig) { c.tickTime = d }
}

// WithZooKeeperHost makes a standalone server listen for clients on host
// instead of 127.0.0.1: an address inside a network namespace the test
// created (the end-to-end cluster's node address). Never a host interface.
func WithZooKeeperHost(host string) ZooKeeperOption {
	return func(c *zkConfig) { c.host = host }
}

// WithZooKeeperConfig adds the line "key=value" to zoo.cfg, after the
// defaults, e.g. WithZooKeeperConfig("maxSessionTimeout", "60000"). Keys
// that zoo.cfg does not define become Java system properties
// "zookeeper.<key>" (a ZooKeeper rule), so
// WithZooKeeperConfig("extendedTypesEnabled", "false") turns TTL nodes off.
func WithZooKeeperConfig(key, value string) ZooKeeperOption {
	return func(c *zkConfig) { c.extra = append(c.extra, [2]string{key, value}) }
}

// zkRuntime is how to run a ZooKeeper JVM.
type zkRuntime struct {
	java      string
	classpath string
}

// findZooKeeperRuntime locates java and the ZooKeeper classpath.
func findZooKeeperRuntime() (zkRuntime, error) {
	java, err := lookBinary("DISTLOCK_JAVA", "java", javaInstall)
	if err != nil {
		return zkRuntime{}, err
	}
	cp := os.Getenv("DISTLOCK_ZOOKEEPER_CLASSPATH")
	source := "$DISTLOCK_ZOOKEEPER_CLASSPATH"
	if cp == "" {
		cp, source = zkDefaultClasspath, "default ZooKeeper classpath"
		for _, jar := range zkLoggingJars {
			if _, err := os.Stat(jar); err == nil {
				cp += ":" + jar
			}
		}
	}
	for _, entry := range strings.Split(cp, ":") {
		if entry == "" || strings.Contains(entry, "*") {
			continue
		}
		if _, err := os.Stat(entry); err != nil {
			return zkRuntime{}, fmt.Errorf("ZooKeeper not found: %s entry %s is missing: %s: %w", source, entry, zkInstall, err)
		}
	}
	return zkRuntime{java: java, classpath: cp}, nil
}

// StartZooKeeper starts a standalone ZooKeeper server on a free port of
// 127.0.0.1 with its own temporary directory, and returns once the `srvr`
// four-letter word reports "Mode: standalone". TTL and container nodes are
// enabled (zookeeper.extendedTypesEnabled) and all four-letter words are
// allowed. ctx bounds the start only (by default 60 s); it does not stop the
// server later. The caller must call Stop.
func StartZooKeeper(ctx context.Context, opts ...ZooKeeperOption) (*ZooKeeper, error) {
	cfg := zkOptions(opts)
	rt, err := findZooKeeperRuntime()
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, zkStartTimeout)
	defer cancel()

	for attempt := 1; ; attempt++ {
		zk, err := startZooKeeperOnce(ctx, rt, cfg)
		if err == nil {
			return zk, nil
		}
		if !isPortInUse(err) || attempt == startAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("starting ZooKeeper (attempt %d): %w", attempt, err)
		}
	}
}

func zkOptions(opts []ZooKeeperOption) zkConfig {
	cfg := zkConfig{host: loopback, tickTime: 2 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

func startZooKeeperOnce(ctx context.Context, rt zkRuntime, cfg zkConfig) (*ZooKeeper, error) {
	ports, err := freePortsOn(cfg.host, 1)
	if err != nil {
		return nil, err
	}
	zk, err := newZooKeeperNode(rt, cfg, 0, ports[0], nil)
	if err != nil {
		return nil, err
	}
	zk.mu.Lock()
	defer zk.mu.Unlock()
	if err := zk.startLocked(ctx); err != nil {
		os.RemoveAll(zk.Dir)
		return nil, err
	}
	return zk, nil
}

// newZooKeeperNode creates the directory and configuration of a server
// without starting it. id is 0 for a standalone server; servers holds the
// "server.N" lines of an ensemble.
func newZooKeeperNode(rt zkRuntime, cfg zkConfig, id, clientPort int, servers []string) (*ZooKeeper, error) {
	dir, err := os.MkdirTemp("", "distlock-zookeeper-")
	if err != nil {
		return nil, fmt.Errorf("creating ZooKeeper directory: %w", err)
	}
	zk := &ZooKeeper{
		Addr:       net.JoinHostPort(cfg.host, strconv.Itoa(clientPort)),
		Dir:        dir,
		ID:         id,
		rt:         rt,
		mainClass:  zkStandaloneMain,
		readyModes: []string{"standalone"},
	}
	zk.lifecycle = lifecycle{
		name:         "ZooKeeper",
		describe:     zk.describe,
		start:        zk.startLocked,
		dirName:      "ZooKeeper directory",
		removeDir:    func() error { return os.RemoveAll(zk.Dir) },
		startTimeout: zkStartTimeout,
		retryDelay:   500 * time.Millisecond,
	}
	if servers != nil {
		zk.mainClass = zkQuorumMain
		if len(servers) > 1 {
			zk.readyModes = []string{modeLeader, modeFollower}
		}
	}
	dataDir := filepath.Join(dir, "data")
	var b strings.Builder
	fmt.Fprintf(&b, "tickTime=%d\n", cfg.tickTime.Milliseconds())
	b.WriteString("initLimit=10\nsyncLimit=5\n")
	fmt.Fprintf(&b, "dataDir=%s\n", dataDir)
	fmt.Fprintf(&b, "clientPort=%d\n", clientPort)
	fmt.Fprintf(&b, "clientPortAddress=%s\n", cfg.host)
	b.WriteString("admin.enableServer=false\n")
	b.WriteString("4lw.commands.whitelist=*\n")
	b.WriteString("maxClientCnxns=0\n")
	b.WriteString("autopurge.purgeInterval=0\n")
	// Data still reaches the page cache before a write is acknowledged, so
	// Kill (SIGKILL) loses nothing; only a machine crash would.
	b.WriteString("forceSync=no\n")
	for _, s := range servers {
		b.WriteString(s + "\n")
	}
	for _, kv := range cfg.extra {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	err = os.MkdirAll(dataDir, 0o755)
	if err == nil {
		err = os.WriteFile(zk.confPath(), []byte(b.String()), 0o644)
	}
	if err == nil && id != 0 {
		err = os.WriteFile(filepath.Join(dataDir, "myid"), []byte(strconv.Itoa(id)+"\n"), 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("writing ZooKeeper configuration: %w", err)
	}
	return zk, nil
}

func (zk *ZooKeeper) confPath() string { return filepath.Join(zk.Dir, "zoo.cfg") }

// LogPath returns the path of the server log (stdout and stderr of the
// JVM) inside Dir.
func (zk *ZooKeeper) LogPath() string { return filepath.Join(zk.Dir, "zookeeper.log") }

func (zk *ZooKeeper) describe() string {
	if zk.ID != 0 {
		return fmt.Sprintf("ZooKeeper server %d on %s (dir %s)", zk.ID, zk.Addr, zk.Dir)
	}
	return fmt.Sprintf("ZooKeeper on %s (dir %s)", zk.Addr, zk.Dir)
}

// startLocked launches the JVM and waits until srvr reports one of the
// ready modes. zk.mu must be held.
func (zk *ZooKeeper) startLocked(ctx context.Context) error {
	args := []string{
		"-Xmx256m",
		"-XX:+UseSerialGC",
		"-XX:TieredStopAtLevel=1", // faster start-up; tests need no peak throughput
		"-XX:-UsePerfData",        // no /tmp/hsperfdata_* files
		"-Djava.net.preferIPv4Stack=true",
		"-Djava.awt.headless=true",
		"-Dzookeeper.extendedTypesEnabled=true",
		// Reap expired TTL nodes and empty container nodes every second
		// instead of every minute, so that tests of expiry finish quickly.
		"-Dznode.container.checkIntervalMs=1000",
		"-Dzookeeper.4lw.commands.whitelist=*",
		"-Dzookeeper.admin.enableServer=false",
		"-Dzookeeper.root.logger=INFO,CONSOLE",
		"-Dzookeeper.log.dir=" + zk.Dir,
		"-cp", zk.rt.classpath,
		zk.mainClass,
		zk.confPath(),
	}
	p, err := startProcess(zk.rt.java, args, zk.Dir, zk.LogPath())
	if err != nil {
		return err
	}
	probe := func(ctx context.Context) error {
		mode, err := zk.Mode(ctx)
		if err != nil {
			return err
		}
		if !slices.Contains(zk.readyModes, mode) {
			return fmt.Errorf("mode is %q, want one of %q", mode, zk.readyModes)
		}
		// Make sure this is our server and not another one that took the
		// port: its configuration names our data directory.
		conf, err := zk.FourLetterWord(ctx, "conf")
		if err != nil {
			return err
		}
		if !strings.Contains(conf, "dataDir="+filepath.Join(zk.Dir, "data")) {
			return fmt.Errorf("the server on %s does not use data directory %s; another server took the port",
				zk.Addr, filepath.Join(zk.Dir, "data"))
		}
		return nil
	}
	if err := waitReady(ctx, p, zk.describe(), probe); err != nil {
		if kerr := p.kill(); kerr != nil {
			err = errors.Join(err, kerr)
		}
		return err
	}
	zk.setRunningLocked(p)
	return nil
}

// FourLetterWord sends a four-letter word such as "srvr", "ruok" or "mntr"
// to the server and returns the whole answer.
func (zk *ZooKeeper) FourLetterWord(ctx context.Context, word string) (string, error) {
	conn, closeConn, err := dialProbe(ctx, zk.Addr)
	if err != nil {
		return "", fmt.Errorf("four-letter word %q: %w", word, err)
	}
	defer closeConn()
	if _, err := io.WriteString(conn, word); err != nil {
		return "", fmt.Errorf("four-letter word %q: %w", word, err)
	}
	answer, err := io.ReadAll(conn)
	if err != nil {
		return string(answer), fmt.Errorf("four-letter word %q: %w", word, err)
	}
	return string(answer), nil
}

// Mode returns the server mode reported by `srvr`: "standalone", "leader",
// "follower" or "observer". It fails while the server is not serving
// requests, e.g. during leader election.
func (zk *ZooKeeper) Mode(ctx context.Context) (string, error) {
	answer, err := zk.FourLetterWord(ctx, "srvr")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(answer) {
		if mode, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(mode), nil
		}
	}
	return "", fmt.Errorf("srvr answer has no mode: %q", strings.TrimSpace(answer))
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 5 s), waits for
// it to exit and removes Dir. Stop is idempotent; after Stop the server
// cannot be restarted.
func (zk *ZooKeeper) Stop() error { return zk.stop() }

// Kill crashes the server with SIGKILL and waits for it to exit. Dir is
// kept, so Restart brings the server back with its data. Killing a server
// that is not running does nothing.
func (zk *ZooKeeper) Kill() error { return zk.kill() }

// Restart starts the server again on the same address with the same
// directory, so persistent nodes (and, within their timeout, sessions)
// survive. A running server is shut down gracefully first; after Kill it is
// simply started. It returns once srvr reports "standalone", or for an
// ensemble member "leader" or "follower" (which needs a quorum). ctx bounds
// the start (by default 60 s).
func (zk *ZooKeeper) Restart(ctx context.Context) error { return zk.restart(ctx) }

// Pause freezes the server with SIGSTOP: connections are accepted by the
// kernel but never answered, and sessions time out. Resume undoes it; Stop
// and Kill work on a paused server.
func (zk *ZooKeeper) Pause() error { return zk.pause() }

// Resume lets a paused server continue (SIGCONT).
func (zk *ZooKeeper) Resume() error { return zk.resume() }

// Pid returns the process id of the running JVM, or 0 if it is not
// running.
func (zk *ZooKeeper) Pid() int { return zk.pid() }

// NewZooKeeper starts a standalone ZooKeeper server for the test (see
// StartZooKeeper) and stops it in t.Cleanup. It fails the test if the
// server cannot start. If the test has failed, the end of the server log is
// logged before the server is stopped.
func NewZooKeeper(t testing.TB, opts ...ZooKeeperOption) *ZooKeeper {
	t.Helper()
	zk, err := StartZooKeeper(t.Context(), opts...)
	if err != nil {
		t.Fatalf("testservers: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testservers: tail of %s:\n%s", zk.LogPath(), logTail(zk.LogPath()))
		}
		if err := zk.Stop(); err != nil {
			t.Errorf("testservers: %v", err)
		}
	})
	return zk
}
