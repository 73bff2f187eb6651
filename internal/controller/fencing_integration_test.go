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

package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
)

// takeTurns grants the lock to each of pods in turn (each finishes, the next
// is granted) and returns the tokens, which must rise.
func takeTurns(ctx context.Context, t *testing.T, ns, lock string, pods ...string) []int64 {
	t.Helper()
	var tokens []int64
	for i, name := range pods {
		pod := newPod(ctx, t, ns, name, lock)
		rec := waitLock(ctx, t, ns, lock, "held by "+name, holderIs(name)).Status.Holders[0]
		if i > 0 && rec.FencingToken <= tokens[i-1] {
			t.Fatalf("tokens %v then %d do not rise", tokens, rec.FencingToken)
		}
		tokens = append(tokens, rec.FencingToken)
		setPhase(ctx, t, pod, corev1.PodSucceeded)
	}
	return tokens
}

func TestFencingTokensKeepRisingAfterRedisLosesItsData(t *testing.T) {
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	// A server without persistence: a restart loses the key and its counter.
	redis := testservers.NewRedis(t)
	bc := backendCase{spec: func() locksv1alpha1.BackendSpec {
		return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: redis.Addr}}
	}}
	startController(t, ns)
	newLock(ctx, t, ns, "fenced", bc)
	before := takeTurns(ctx, t, ns, "fenced", "first", "second")
	holder := newPod(ctx, t, ns, "third", "fenced")
	last := waitLock(ctx, t, ns, "fenced", "held by third", holderIs("third")).Status.Holders[0].FencingToken

	if err := redis.Kill(); err != nil {
		t.Fatal(err)
	}
	restartCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := redis.Restart(restartCtx); err != nil {
		t.Fatal(err)
	}
	// The hold is gone with the server's memory while third still runs.
	waitLock(ctx, t, ns, "fenced", "third's hold reported lost", heldReason(locksv1alpha1.ReasonLost))
	newPod(ctx, t, ns, "fourth", "fenced")
	setPhase(ctx, t, holder, corev1.PodSucceeded)
	lock := waitLock(ctx, t, ns, "fenced", "held by fourth", holderIs("fourth"))
	if got := lock.Status.Holders[0].FencingToken; got <= last {
		t.Fatalf("after Redis lost its data the next token is %d; want > %d (tokens before: %v)", got, last, before)
	}
	if lock.Status.LastFencingToken != lock.Status.Holders[0].FencingToken {
		t.Errorf("status.lastFencingToken = %d; want the newest token %d", lock.Status.LastFencingToken, lock.Status.Holders[0].FencingToken)
	}
}

func TestDeletingAndReapplyingALockNeverHandsOutALowerToken(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		lock := newLock(ctx, t, ns, "reapplied", bc)
		tokens := takeTurns(ctx, t, ns, "reapplied", "a", "b")

		// GitOps prunes the lock and applies it again.
		if err := k8sClient.Delete(ctx, lock); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(waitTimeout)
		for {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(lock), &locksv1alpha1.DistributedLock{})
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the lock was not deleted within %v (err %v)", waitTimeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		newLock(ctx, t, ns, "reapplied", bc)
		after := takeTurns(ctx, t, ns, "reapplied", "c")
		if after[0] <= tokens[len(tokens)-1] {
			t.Fatalf("the re-applied lock handed out token %d; want > %d, the last token of the deleted one", after[0], tokens[len(tokens)-1])
		}
	})
}
