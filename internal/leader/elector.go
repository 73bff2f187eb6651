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

package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// errStartedTwice is returned by a second Start.
var errStartedTwice = errors.New("leader: the elector was already started")

// Elector takes part in the election of the leading manager replica. Run it
// with the manager (it is a manager.Runnable that does not itself need
// leader election) and ask it, before every act, whether this replica may
// act: Leading for grants, releases and status writes, MayRenewHolds for
// renewals of holds. All its methods are safe for concurrent use.
type Elector struct {
	cfg       Config
	client    coordinationv1client.LeasesGetter
	tracker   *tracker
	callbacks callbacks
	started   atomic.Bool
	hooks     testHooks
}

var (
	_ manager.Runnable               = (*Elector)(nil)
	_ manager.LeaderElectionRunnable = (*Elector)(nil)
)

// New returns an Elector for cfg (after WithDefaults and Validate) that
// reaches the API server with a copy of restConfig. With cfg.Disabled,
// restConfig is not used and may be nil.
func New(restConfig *rest.Config, cfg Config) (*Elector, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Elector{cfg: cfg}
	if cfg.Disabled {
		e.tracker = newTracker(clock.RealClock{}, "", "", 0, true)
		return e, nil
	}
	if restConfig == nil {
		return nil, fmt.Errorf("%w: no REST config", ErrInvalidConfig)
	}
	c := rest.CopyConfig(restConfig)
	c = rest.AddUserAgent(c, "leader-election")
	// The election has its own client-side rate limit, never shared with
	// (or starved by) the manager's other requests: a few calls per period.
	c.RateLimiter = nil
	c.QPS, c.Burst = 20, 40
	client, err := coordinationv1client.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("leader: creating the Lease client: %w", err)
	}
	e.client = client
	e.tracker = newTracker(clock.RealClock{}, cfg.Identity, cfg.Namespace+"/"+cfg.Name, cfg.RenewDeadline, false)
	return e, nil
}

// Config returns the configuration in effect, defaults filled in.
func (e *Elector) Config() Config { return e.cfg }

// Identity is this replica's identity in the election Lease.
func (e *Elector) Identity() string { return e.cfg.Identity }

// NeedLeaderElection is false: the elector must run on every replica.
func (e *Elector) NeedLeaderElection() bool { return false }

// Leading reports whether this replica leads: it renewed (or acquired) the
// election Lease successfully less than RenewDeadline ago, by the monotonic
// clock, and is not shutting down. Grant, release and write status only
// while it is true, and check it again right before each such write: after
// a pause of the process longer than RenewDeadline it is false the instant
// the process resumes. Always true when election is disabled.
func (e *Elector) Leading() bool { return e.tracker.verdict().leading }

// MayRenewHolds reports whether this replica may renew the holds it keeps:
// while Leading, and while it is the last known holder of the election
// Lease in an API server outage (see the package documentation). It is
// false once another holder has been observed, and after a pause of the
// process longer than RenewDeadline until the next call on the Lease has
// answered. Always true when election is disabled.
func (e *Elector) MayRenewHolds() bool { return e.tracker.verdict().mayRenewHolds }

// Status returns a snapshot of the state.
func (e *Elector) Status() Status {
	s := e.tracker.status()
	if e.cfg.Disabled {
		s.Identity, s.Lease = "", ""
	}
	return s
}

// String describes the state in one line, for logs, conditions and Events.
func (e *Elector) String() string { return e.Status().String() }

// Changed returns a channel that is closed when the role (Status.Role) next
// changes, including when Leading or MayRenewHolds turn false because time
// passed; call it again for the change after that. Use it to wait instead
// of polling, e.g. for a keeper to resume renewals.
func (e *Elector) Changed() <-chan struct{} { return e.tracker.changes() }

// OnStartedLeading registers f to run each time Leading turns true: the
// first time this replica leads, and again after every spell without
// leadership (an API server outage, a pause). Enqueue every lock in it.
// Register before Start to see the first time.
func (e *Elector) OnStartedLeading(f func()) { e.callbacks.addStarted(f) }

// OnDeposed registers f to run when this replica, having held the election
// Lease, observes another holder (holder is its identity). By then
// MayRenewHolds is already false: drop the holds kept in memory without
// releasing them, since the new leader renews them now. Register before
// Start.
func (e *Elector) OnDeposed(f func(holder string)) { e.callbacks.addDeposed(f) }

// Start takes part in the election until ctx is cancelled, then steps down:
// Leading turns false at once, and if this replica may hold the election
// Lease it keeps it for StepDownDelay (so that writes begun while leading
// end before anybody else can start) and then releases it, so that a
// standby takes over within one retry interval. It returns nil once all of
// that is done. With election disabled it only waits for ctx.
//
// Callbacks run one at a time on a goroutine of Start, in order; a callback
// that blocks delays the ones after it and the return of Start.
func (e *Elector) Start(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errStartedTwice
	}
	log := e.cfg.Logger
	if log.GetSink() != nil {
		ctx = logr.NewContext(ctx, log)
	}
	// The election runs on until stepping down is over, not until ctx ends.
	runCtx, stopRunning := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		stopRunning()
		wg.Wait()
		e.tracker.stop()
	}()
	wg.Go(func() { e.dispatch(runCtx) })

	if e.cfg.Disabled {
		e.tracker.startDisabled()
		<-ctx.Done()
		return nil
	}
	wg.Go(func() { e.watch(runCtx) })
	wg.Go(func() { e.stepDownOnCancel(ctx, runCtx, stopRunning) })
	for runCtx.Err() == nil && !e.tracker.steppingDown() {
		// A fresh LeaderElector per term: client-go's ends a term for good.
		// With the same identity it takes the Lease again at once while
		// the Lease still names this replica.
		le, err := leaderelection.NewLeaderElector(e.electionConfig())
		if err != nil {
			return fmt.Errorf("leader: %w", err)
		}
		le.Run(runCtx)
	}
	// Wait for the end of stepping down (which cancels runCtx).
	<-runCtx.Done()
	log.Info("left the election", "lease", e.cfg.Namespace+"/"+e.cfg.Name)
	return nil
}

// electionConfig configures one term's LeaderElector. Its callbacks are
// empty: the state is learnt from the calls on the Lease themselves.
func (e *Elector) electionConfig() leaderelection.LeaderElectionConfig {
	return leaderelection.LeaderElectionConfig{
		Lock: &observedLock{
			inner: &rl.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Namespace: e.cfg.Namespace, Name: e.cfg.Name},
				Client:     e.client,
				LockConfig: rl.ResourceLockConfig{Identity: e.cfg.Identity},
			},
			tracker: e.tracker,
			clock:   e.tracker.clock,
			timeout: e.cfg.APICallTimeout,
			hooks:   &e.hooks,
		},
		LeaseDuration:   e.cfg.LeaseDuration,
		RenewDeadline:   e.cfg.RenewDeadline,
		RetryPeriod:     e.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            e.cfg.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {},
			OnStoppedLeading: func() {},
		},
	}
}

// stepDownOnCancel steps down when ctx ends: Leading turns false at once;
// after StepDownDelay, if the Lease may be ours, runCtx is cancelled and
// client-go releases the Lease.
func (e *Elector) stepDownOnCancel(ctx, runCtx context.Context, stopRunning context.CancelFunc) {
	select {
	case <-runCtx.Done():
		return
	case <-ctx.Done():
	}
	if e.tracker.beginStepDown() {
		e.cfg.Logger.Info("stepping down", "delay", e.cfg.StepDownDelay(), "state", e.String())
		t := time.NewTimer(e.cfg.StepDownDelay())
		defer t.Stop()
		select {
		case <-t.C:
		case <-runCtx.Done():
		}
	}
	stopRunning()
}

// watch publishes role changes that come with the passage of time (Leading
// or MayRenewHolds running out) and logs every role change.
func (e *Elector) watch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, changed := e.tracker.refresh()
		if changed {
			e.cfg.Logger.Info("election state changed", "state", e.String())
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-e.tracker.kick:
		case <-timer.C:
		}
	}
}
