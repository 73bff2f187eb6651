// Package testservers starts real Redis and ZooKeeper servers for tests and
// stops them again, and starts the real Kubernetes control plane
// (kube-apiserver and etcd, through envtest) with the project's CRDs.
//
// Besides single servers it runs the deployments that replicate: a Redis
// Cluster of three primaries with a replica each (StartRedisCluster), a
// Redis master with a replica behind three Sentinels (StartRedisSentinel),
// and a ZooKeeper ensemble (StartZooKeeperEnsemble), with helpers that fail
// their masters over.
//
// It is the one shared place where the project's tests get their backends;
// test packages must not carry their own copies. Every server
//
//   - listens on 127.0.0.1 only, on a free port chosen at start;
//   - keeps its data, configuration and log in its own temporary directory
//     (Dir), which Stop removes;
//   - runs in its own process group with a parent-death signal (SIGKILL), so
//     it cannot outlive the test binary even if the binary crashes or is
//     killed by `go test -timeout`
//     (Linux sends that signal when the OS thread that started the server
//     exits; Go keeps its threads alive, except that a goroutine exiting
//     while locked with runtime.LockOSThread takes its thread with it, so
//     do not start servers from such goroutines);
//   - is only returned once it really answers (Redis: PING; ZooKeeper: the
//     `srvr` four-letter word reports the expected mode), and once it is
//     certain that the answer came from the process just started and not
//     from another server that grabbed the port (then the start is retried
//     on another port).
//
// Servers can be crashed (Kill), brought back on the same address with the
// same data directory (Restart), and frozen (Pause/Resume, via SIGSTOP and
// SIGCONT) to simulate an unresponsive backend.
//
// Nothing is ever skipped: if a server binary is missing or a server does not
// come up, the Start functions return an error naming what to install, and
// the New functions fail the test.
//
// From a single test:
//
//	func TestLock(t *testing.T) {
//		r := testservers.NewRedis(t) // stopped by t.Cleanup
//		client := redis.NewClient(&redis.Options{Addr: r.Addr})
//		...
//	}
//
// From TestMain, where there is no testing.T:
//
//	var zkServer *testservers.ZooKeeper
//
//	func TestMain(m *testing.M) {
//		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
//		zk, err := testservers.StartZooKeeper(ctx)
//		cancel()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		zkServer = zk
//		code := m.Run()
//		if err := zk.Stop(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//		}
//		os.Exit(code)
//	}
//
// Binaries are found as follows (environment variables override):
//
//	redis-server        $DISTLOCK_REDIS_SERVER, else redis-server from PATH
//	                    (also run as a Sentinel: redis-server sentinel.conf --sentinel)
//	java                $DISTLOCK_JAVA, else java from PATH
//	ZooKeeper classpath $DISTLOCK_ZOOKEEPER_CLASSPATH, else
//	                    /etc/zookeeper/conf:/usr/share/java/zookeeper.jar
//	                    (Debian package zookeeper) plus the Debian slf4j/log4j
//	                    jars, when present, so that the server log is not empty
package testservers
