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

package faults

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// pastTheLease is how long a fault "longer than the lease" lasts.
const pastTheLease = lockLease + 2*time.Second

// Scenario 1: the manager.

func TestManagerKilledMidHandoff(t *testing.T) {
	scenario{name: "manager kill -9 mid-handoff", inject: killLeader(true)}.run(t)
}

func TestManagerPausedPastTheLease(t *testing.T) {
	scenario{name: "manager SIGSTOP past the lease, SIGCONT", inject: pauseLeader}.run(t)
}

func TestSemaphoreManagerKilledMidHandoff(t *testing.T) {
	scenario{name: "semaphore of 2: manager kill -9 mid-handoff", spec: cellSpec{maxHolders: 2}, inject: killLeader(true)}.run(t)
}

func TestSemaphoreTwoReplicasLeaderPaused(t *testing.T) {
	scenario{name: "semaphore of 2, 2 replicas: leader SIGSTOP past the lease", spec: cellSpec{replicas: 2, maxHolders: 2},
		inject: pauseLeader}.run(t)
}

func TestTwoReplicasLeaderKilled(t *testing.T) {
	scenario{name: "2 replicas: leader kill -9", spec: cellSpec{replicas: 2}, inject: killLeader(false)}.run(t)
}

func TestTwoReplicasLeaderPaused(t *testing.T) {
	scenario{name: "2 replicas: leader SIGSTOP past the lease", spec: cellSpec{replicas: 2}, inject: pauseLeader}.run(t)
}

func TestTwoReplicasRollingRestart(t *testing.T) {
	scenario{name: "2 replicas: graceful rolling restart", spec: cellSpec{replicas: 2}, inject: rollingRestart}.run(t)
}

// killLeader kills the leading replica with SIGKILL (right after a holder's
// pod was deleted, when midHandoff) and heals when the supervisor has
// started it again.
func killLeader(midHandoff bool) func(ctx context.Context, ce *cell) error {
	return func(ctx context.Context, ce *cell) error {
		m, former, err := ce.waitLeader(ctx, "")
		if err != nil {
			return err
		}
		if midHandoff {
			if err := ce.driver.midHandoff(ctx); err != nil {
				return err
			}
		}
		launches := m.launches()
		if err := m.signal(syscall.SIGKILL); err != nil {
			return err
		}
		killed := time.Now()
		ce.fault("leader killed")
		if len(ce.managers) > 1 {
			next, _, err := ce.waitLeader(ctx, former)
			if err != nil {
				return err
			}
			if next == m {
				ce.note("takeover %s by the killed replica, started again", ms(time.Since(killed)))
			} else {
				ce.note("takeover %s", ms(time.Since(killed)))
			}
		}
		if err := waitLaunched(ctx, m, launches); err != nil {
			return err
		}
		ce.heal("leader killed")
		return nil
	}
}

// waitLaunched waits until the supervisor has started m again.
func waitLaunched(ctx context.Context, m *manager, launches int) error {
	for m.launches() <= launches {
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for manager %s to be started again: %w", m.name, err)
		}
	}
	return nil
}

// pauseLeader stops the leading replica for longer than the lock lease, and
// resumes it.
func pauseLeader(ctx context.Context, ce *cell) error {
	m, former, err := ce.waitLeader(ctx, "")
	if err != nil {
		return err
	}
	if err := m.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	ce.fault("leader paused")
	paused := time.Now()
	if len(ce.managers) > 1 {
		if _, _, err := ce.waitLeader(ctx, former); err != nil {
			return err
		}
		ce.note("takeover %s", ms(time.Since(paused)))
	}
	if err := sleep(ctx, pastTheLease-time.Since(paused)); err != nil {
		return err
	}
	if err := m.signal(syscall.SIGCONT); err != nil {
		return err
	}
	ce.heal("leader paused")
	return nil
}

// rollingRestart stops each replica in turn with SIGTERM, as a rolling
// update does, and waits until it runs again before the next.
func rollingRestart(ctx context.Context, ce *cell) error {
	ce.fault("rolling restart")
	for _, m := range ce.managers {
		launches := m.launches()
		if err := m.signal(syscall.SIGTERM); err != nil {
			return err
		}
		if err := m.waitExit(ctx); err != nil {
			return err
		}
		if err := waitLaunched(ctx, m, launches); err != nil {
			return err
		}
	}
	ce.heal("rolling restart")
	return nil
}

// Scenario 2: kube-apiserver.

func TestAPIServerKilledPastTheLease(t *testing.T) {
	scenario{name: "kube-apiserver kill -9, down past the lease", inject: func(ctx context.Context, ce *cell) error {
		api := ce.s.apiServer
		if err := api.kill(ctx); err != nil {
			return err
		}
		ce.fault("kube-apiserver killed")
		if err := sleep(ctx, pastTheLease); err != nil {
			return err
		}
		if err := api.relaunch(ctx, ce.s.cfg); err != nil {
			return err
		}
		ce.heal("kube-apiserver killed")
		return nil
	}}.run(t)
}
