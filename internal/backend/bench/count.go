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

package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	goredis "github.com/redis/go-redis/v9"
)

// Setting is what the cycles that Count functions count find on the server.
type Setting int

const (
	// LockFree means nobody else holds the lock. In ZooKeeper the lock
	// node is whatever the library leaves behind after the previous cycle.
	LockFree Setting = iota
	// LockNodeKept (ZooKeeper only): the lock node exists, persistent,
	// made by someone else (as zk.Lock and Curator leave theirs), so the
	// library neither creates nor deletes it.
	LockNodeKept
	// HeldElsewhere means another holder has the lock, so every cycle is
	// a failed attempt (try-once libraries only).
	HeldElsewhere
)

func (s Setting) String() string {
	switch s {
	case LockFree:
		return "lock free"
	case LockNodeKept:
		return "lock free, lock node kept"
	case HeldElsewhere:
		return "held elsewhere (failed attempt)"
	}
	return fmt.Sprintf("Setting(%d)", int(s))
}

// Counts are the requests that some cycles sent to a server.
type Counts struct {
	// Cycles is the number of cycles counted.
	Cycles int
	// Sent counts the requests clients sent, by command or operation: each
	// one a round trip, as none of the libraries pipelines.
	Sent map[string]int
	// Scripted counts the commands that Redis Lua scripts ran (server work
	// without a round trip).
	Scripted map[string]int
}

// PerCycle returns the requests sent per cycle.
func (c Counts) PerCycle() float64 { return perCycle(c.Sent, c.Cycles) }

// ScriptedPerCycle returns the commands that scripts ran per cycle.
func (c Counts) ScriptedPerCycle() float64 { return perCycle(c.Scripted, c.Cycles) }

func perCycle(m map[string]int, cycles int) float64 {
	total := 0
	for _, n := range m {
		total += n
	}
	return float64(total) / float64(max(cycles, 1))
}

// Describe lists the requests per cycle by name, e.g. "evalsha 2".
func Describe(m map[string]int, cycles int) string {
	parts := make([]string, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.3g", name, float64(m[name])/float64(max(cycles, 1))))
	}
	return strings.Join(parts, ", ")
}

// countWarmup is the number of cycles run before counting starts: scripts
// loaded, connections open, lock nodes' ancestors made.
const countWarmup = 20

// CountRedis counts, with MONITOR, the commands that n cycles of one client
// of lib send to the Redis server at addr, and those that its scripts run.
func CountRedis(ctx context.Context, addr string, lib Library, n int, s Setting) (Counts, error) {
	conn, err := lib.Connect(ctx, addr)
	if err != nil {
		return Counts{}, err
	}
	defer func() { _ = conn.Close() }()
	client := conn.Client(0)
	key := fmt.Sprintf("count-%s-%d-%d", slug(lib.Name), s, time.Now().UnixNano())
	if err := cycles(ctx, client, key, countWarmup); err != nil {
		return Counts{}, err
	}
	if s == HeldElsewhere {
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		defer func() { _ = c.Close() }()
		if err := c.Set(ctx, key, "someone-else", time.Minute).Err(); err != nil {
			return Counts{}, fmt.Errorf("hold %s elsewhere: %w", key, err)
		}
	}

	mon, err := net.Dial("tcp", addr)
	if err != nil {
		return Counts{}, fmt.Errorf("monitor: %w", err)
	}
	defer mon.Close()
	r := bufio.NewReader(mon)
	if _, err := io.WriteString(mon, "MONITOR\r\n"); err != nil {
		return Counts{}, fmt.Errorf("monitor: %w", err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		return Counts{}, fmt.Errorf("monitor: answer %q: %w", line, err)
	}
	if err := cycles(ctx, client, key, n); err != nil {
		return Counts{}, err
	}
	// A marker command from another connection ends the count.
	marker := fmt.Sprintf("bench-count-end-%d", time.Now().UnixNano())
	mark, err := net.Dial("tcp", addr)
	if err != nil {
		return Counts{}, fmt.Errorf("marker: %w", err)
	}
	defer mark.Close()
	if _, err := fmt.Fprintf(mark, "ECHO %s\r\n", marker); err != nil {
		return Counts{}, fmt.Errorf("marker: %w", err)
	}

	counts := Counts{Cycles: n, Sent: map[string]int{}, Scripted: map[string]int{}}
	_ = mon.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return Counts{}, fmt.Errorf("monitor: reading up to the marker: %w", err)
		}
		if strings.Contains(line, marker) {
			return counts, nil
		}
		// +1700000000.123456 [0 127.0.0.1:40000] "evalsha" "..." ...
		// +1700000000.123456 [0 lua] "get" "..."
		source, rest, ok := strings.Cut(line, "] \"")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, "\"")
		name = strings.ToLower(name)
		if strings.HasSuffix(source, " lua") {
			counts.Scripted[name]++
		} else {
			counts.Sent[name]++
		}
	}
}

// CountZooKeeper counts the requests that n cycles of one client of lib
// send to the ZooKeeper server at addr, through a proxy that decodes each
// request's header. Pings are left out: they depend on time, not cycles.
func CountZooKeeper(ctx context.Context, addr string, lib Library, n int, s Setting) (Counts, error) {
	p, err := startZKProxy(addr)
	if err != nil {
		return Counts{}, err
	}
	defer p.close()
	conn, err := lib.Connect(ctx, p.addr())
	if err != nil {
		return Counts{}, err
	}
	defer func() { _ = conn.Close() }()
	client := conn.Client(0)
	key := fmt.Sprintf("count-%s-%d-%d", slug(lib.Name), s, time.Now().UnixNano())
	raw, err := dialZooKeeper(ctx, addr)
	if err != nil {
		return Counts{}, err
	}
	defer raw.Close()
	if err := prepareZooKeeper(raw, ZooKeeperPath(key), s); err != nil {
		return Counts{}, err
	}
	if err := cycles(ctx, client, key, countWarmup); err != nil {
		return Counts{}, err
	}
	p.counting.Store(true)
	err = cycles(ctx, client, key, n)
	p.counting.Store(false)
	if err != nil {
		return Counts{}, err
	}
	return Counts{Cycles: n, Sent: p.counts()}, nil
}

// CountZooKeeperRun runs c with lib through a counting proxy to the
// ZooKeeper server at addr and returns the requests sent, with Cycles set
// to the number of acquisitions: what a contended acquisition costs,
// including the waiting. Pings are left out.
func CountZooKeeperRun(ctx context.Context, addr string, lib Library, c Case) (Counts, error) {
	p, err := startZKProxy(addr)
	if err != nil {
		return Counts{}, err
	}
	defer p.close()
	conn, err := lib.Connect(ctx, p.addr())
	if err != nil {
		return Counts{}, err
	}
	defer func() { _ = conn.Close() }()
	key := fmt.Sprintf("countrun-%s-%d-%d", slug(lib.Name), c.Clients, time.Now().UnixNano())
	p.counting.Store(true)
	r, err := Run(ctx, conn, c, key)
	p.counting.Store(false)
	if err != nil {
		return Counts{}, err
	}
	return Counts{Cycles: int(r.Held), Sent: p.counts()}, nil
}

// prepareZooKeeper makes /bench a persistent node (PrepareZooKeeper) and,
// unless s is LockFree, path too; for HeldElsewhere it gives path an
// ephemeral sequential child "lock-…" that holds the lock, as zk.Lock
// would.
func prepareZooKeeper(conn *zk.Conn, path string, s Setting) error {
	end := len(ZooKeeperPath(""))
	if s != LockFree {
		end = len(path) + 1
	}
	for i := 1; i < end; i++ {
		if i == len(path) || path[i] == '/' {
			_, err := conn.Create(path[:i], nil, 0, zk.WorldACL(zk.PermAll))
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return fmt.Errorf("create %s: %w", path[:i], err)
			}
		}
	}
	if s == HeldElsewhere {
		if _, err := conn.Create(path+"/lock-", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll)); err != nil {
			return fmt.Errorf("hold %s elsewhere: %w", path, err)
		}
	}
	return nil
}

// cycles runs n cycles of client on key.
func cycles(ctx context.Context, client Client, key string, n int) error {
	for range n {
		if _, err := client.Cycle(ctx, key, nil); err != nil {
			return err
		}
	}
	return nil
}

// slug makes a library name usable in a key.
func slug(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(name))
}

// zkOps names ZooKeeper's request types (the server's OpCode).
var zkOps = map[int32]string{
	1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData", 8: "getChildren",
	9: "sync", 11: "ping", 12: "getChildren2", 13: "check", 14: "multi", 19: "createContainer",
	21: "createTTL", 100: "auth", 101: "setWatches", -11: "closeSession",
}

// zkProxy forwards ZooKeeper connections and counts their requests by type
// while counting is set.
type zkProxy struct {
	ln       net.Listener
	target   string
	counting atomic.Bool
	mu       sync.Mutex
	byOp     map[string]int
}

func startZKProxy(target string) (*zkProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("zookeeper proxy: %w", err)
	}
	p := &zkProxy{ln: ln, target: target, byOp: map[string]int{}}
	go p.serve()
	return p, nil
}

func (p *zkProxy) addr() string { return p.ln.Addr().String() }
func (p *zkProxy) close()       { _ = p.ln.Close() }

func (p *zkProxy) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.byOp)
}

func (p *zkProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		go func() {
			_, _ = io.Copy(client, server)
			_ = client.Close()
		}()
		go func() {
			_ = p.forward(server, client)
			_ = server.Close()
		}()
	}
}

// forward copies requests from client to server frame by frame: a 4-byte
// length and a body; every body but the first (the connect request) starts
// with the xid and the operation type.
func (p *zkProxy) forward(server io.Writer, client io.Reader) error {
	var head [4]byte
	for first := true; ; first = false {
		if _, err := io.ReadFull(client, head[:]); err != nil {
			return err //nolint:wrapcheck // ends the connection, read by nobody
		}
		body := make([]byte, binary.BigEndian.Uint32(head[:]))
		if _, err := io.ReadFull(client, body); err != nil {
			return err //nolint:wrapcheck // as above
		}
		if !first && len(body) >= 8 && p.counting.Load() {
			op := int32(binary.BigEndian.Uint32(body[4:8]))
			if op != 11 { // ping
				name, ok := zkOps[op]
				if !ok {
					name = fmt.Sprintf("op%d", op)
				}
				p.mu.Lock()
				p.byOp[name]++
				p.mu.Unlock()
			}
		}
		if _, err := server.Write(append(head[:], body...)); err != nil {
			return err //nolint:wrapcheck // as above
		}
	}
}
