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
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TTL is the lease every library asks for. It is far longer than a cycle, so
// that no lock expires during a run.
const TTL = 10 * time.Second

// Client is one caller of a lock library. Its methods are called from one
// goroutine at a time.
type Client interface {
	// Cycle takes the lock at key and, when it got it, releases it at once.
	// A try-once client returns held false when another holder has the lock;
	// a waiting client waits for its turn, or until stop is closed (then
	// held is false). Only unexpected failures are errors.
	Cycle(ctx context.Context, key string, stop <-chan struct{}) (held bool, err error)
}

// Conn is one library's connection to a server, shared by its clients.
type Conn interface {
	// Client returns the client with number id, a distinct holder.
	Client(id int) Client
	Close() error
}

// Library is a lock library that can connect to a server.
type Library struct {
	// Name is how tables name it, e.g. "bsm/redislock".
	Name string
	// Ours is set for distlock's backends, unset for the anchors.
	Ours bool
	// Waits is set for libraries that wait in line rather than try once.
	Waits bool
	// Connect opens a connection to the server at addr.
	Connect func(ctx context.Context, addr string) (Conn, error)
}

// Case is one measurement setting.
type Case struct {
	// Clients is the number of concurrent clients.
	Clients int
	// SharedKey makes all clients contend on one key; otherwise each client
	// uses its own.
	SharedKey bool
	// Duration is how long the clients run.
	Duration time.Duration
	// Latency records the duration of every cycle.
	Latency bool
	// ServerPid, when set, is the server's process, whose CPU time the
	// Result reports.
	ServerPid int
}

// Result is what one Run measured.
type Result struct {
	// Elapsed is the measured time (the Case's Duration, as it passed).
	Elapsed time.Duration
	// Held counts the cycles that held the lock; Attempts all cycles.
	Held, Attempts int64
	// Latencies are the durations of all cycles, shortest first, when the
	// Case asked for them.
	Latencies []time.Duration
	// ClientCPU is the CPU time this process used during the run (all
	// clients; other goroutines are idle then). ServerCPU is the server's,
	// in steps of 10 ms, when the Case named its process.
	ClientCPU, ServerCPU time.Duration
}

// HeldPerSecond is the rate of cycles that held the lock.
func (r Result) HeldPerSecond() float64 { return float64(r.Held) / r.Elapsed.Seconds() }

// AttemptsPerSecond is the rate of all cycles.
func (r Result) AttemptsPerSecond() float64 { return float64(r.Attempts) / r.Elapsed.Seconds() }

// CPUPerAttempt returns the client's and the server's CPU time per cycle.
func (r Result) CPUPerAttempt() (client, server time.Duration) {
	if r.Attempts == 0 {
		return 0, 0
	}
	return r.ClientCPU / time.Duration(r.Attempts), r.ServerCPU / time.Duration(r.Attempts)
}

// Percentile returns the latency below which the fraction p of the cycles
// fell (p in [0, 1]), or 0 without latencies.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[int(p*float64(len(r.Latencies)-1)+0.5)]
}

// Run drives c.Clients clients of conn for c.Duration on keys named after
// key. Only cycles that end before the time is up count; a waiting client
// still in line then is told to stop (zk.Lock cannot be told and finishes
// its turn first). The first unexpected error ends the run.
func Run(ctx context.Context, conn Conn, c Case, key string) (Result, error) {
	stop := make(chan struct{})
	var stopped atomic.Bool
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type tally struct {
		held, attempts int64
		latencies      []time.Duration
		err            error
	}
	tallies := make([]tally, c.Clients)
	var wg sync.WaitGroup
	clientCPU, serverCPU := selfCPU(), processCPU(c.ServerPid)
	start := time.Now()
	timer := time.AfterFunc(c.Duration, func() { stopped.Store(true); close(stop) })
	defer timer.Stop()
	for i := range c.Clients {
		client, k, t := conn.Client(i), key, &tallies[i]
		if !c.SharedKey {
			k = fmt.Sprintf("%s-%d", key, i)
		}
		wg.Go(func() {
			for !stopped.Load() && ctx.Err() == nil {
				began := time.Now()
				held, err := client.Cycle(ctx, k, stop)
				if err != nil {
					t.err = fmt.Errorf("client %d on %s: %w", i, k, err)
					cancel()
					return
				}
				if stopped.Load() {
					return
				}
				if c.Latency {
					t.latencies = append(t.latencies, time.Since(began))
				}
				t.attempts++
				if held {
					t.held++
				}
			}
		})
	}
	wg.Wait()
	r := Result{
		Elapsed:   min(time.Since(start), c.Duration),
		ClientCPU: selfCPU() - clientCPU,
		ServerCPU: processCPU(c.ServerPid) - serverCPU,
	}
	for _, t := range tallies {
		if t.err != nil {
			return Result{}, t.err
		}
		r.Held += t.held
		r.Attempts += t.attempts
		r.Latencies = append(r.Latencies, t.latencies...)
	}
	if err := ctx.Err(); err != nil && r.Attempts == 0 {
		return Result{}, fmt.Errorf("run ended early: %w", err)
	}
	slices.Sort(r.Latencies)
	return r, nil
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
