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
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// Scenario 5: the holder pods. Holders stay 200-400 ms, so that the fault
// strikes a pod inside its critical section.

func longerHolds(*cell) func(string) time.Duration {
	return func(string) time.Duration { return 200*time.Millisecond + rand.N(200*time.Millisecond) }
}

func TestHolderPodDeleted(t *testing.T) {
	scenario{name: "holder pod deleted (grace 30 s)", holdFor: longerHolds, inject: deleteHolder(30)}.run(t)
}

func TestHolderPodForceDeleted(t *testing.T) {
	scenario{name: "holder pod force-deleted (grace 0)", holdFor: longerHolds, inject: deleteHolder(0)}.run(t)
}

func TestHolderPodRelabelled(t *testing.T) {
	scenario{name: "holder pod relabelled to another lock", holdFor: longerHolds, inject: func(ctx context.Context, ce *cell) error {
		run, err := ce.pickHolder(ctx)
		if err != nil {
			return err
		}
		patch := client.RawPatch(types.MergePatchType,
			fmt.Appendf(nil, `{"metadata":{"labels":{%q:"somewhere-else"}}}`, locksv1alpha1.LockLabel))
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ce.ns, Name: run.name}}
		if err := ce.c.Patch(ctx, pod, patch); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("relabelling %s: %w", run.name, err)
		}
		ce.fault("holder relabelled")
		ce.healAt("holder relabelled", run.lock, time.Time{})
		return nil
	}}.run(t)
}

// pickHolder waits until some pod is inside its critical section.
func (ce *cell) pickHolder(ctx context.Context) (*podRun, error) {
	for {
		if inside := ce.driver.holders(); len(inside) > 0 {
			return inside[0], nil
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return nil, fmt.Errorf("waiting for a holder: %w", err)
		}
	}
}

// deleteHolder deletes a pod inside its critical section with the grace
// period given; its kubelet (the driver) stops the container, and the lock
// must pass on only then.
func deleteHolder(grace int64) func(ctx context.Context, ce *cell) error {
	return func(ctx context.Context, ce *cell) error {
		run, err := ce.pickHolder(ctx)
		if err != nil {
			return err
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ce.ns, Name: run.name}}
		uid := run.uid
		if err := ce.c.Delete(ctx, pod, client.GracePeriodSeconds(grace), client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil &&
			!apierrors.IsConflict(err) {
			return fmt.Errorf("deleting %s: %w", run.name, err)
		}
		ce.fault("holder deleted")
		ce.healAt("holder deleted", run.lock, time.Time{})
		return nil
	}
}

// stuckHolds makes the next holder after arm() stay until its pod is
// deleted, and reports when and on which lock it entered.
type stuckHolds struct {
	armed   atomic.Bool
	entered chan stuckEntry
}

type stuckEntry struct {
	lock string
	at   time.Time
}

func (s *stuckHolds) holdFor(*cell) func(string) time.Duration {
	return func(lock string) time.Duration {
		if s.armed.CompareAndSwap(true, false) {
			s.entered <- stuckEntry{lock: lock, at: time.Now()}
			return holdForever
		}
		return randomHold(lock)
	}
}

func TestHolderStuckPastMaxHoldDuration(t *testing.T) {
	stuck := &stuckHolds{entered: make(chan stuckEntry, 1)}
	maxHold := lockLease
	scenario{name: "holder stuck past maxHoldDuration (10 s)", spec: cellSpec{maxHold: maxHold}, holdFor: stuck.holdFor,
		inject: func(ctx context.Context, ce *cell) error {
			stuck.armed.Store(true)
			var e stuckEntry
			select {
			case e = <-stuck.entered:
			case <-ctx.Done():
				return fmt.Errorf("waiting for the stuck holder: %w", ctx.Err())
			}
			ce.fault("holder stuck")
			// The lock promised to end the hold at maxHoldDuration: the
			// recovery is measured from then.
			if err := sleep(ctx, time.Until(e.at.Add(maxHold))); err != nil {
				return err
			}
			ce.healAt("holder stuck", e.lock, e.at.Add(maxHold))
			return nil
		}}.run(t)
}
