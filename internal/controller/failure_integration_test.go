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
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
)

// restartable is a backend server a test may kill and bring back.
type restartable interface {
	Kill() error
	Restart(ctx context.Context) error
}

func TestAnUnreachableBackendBlocksGrantsUntilItIsBack(t *testing.T) {
	// Each backend gets a server of its own: this test kills it.
	redis := testservers.NewRedis(t, testservers.WithRedisConfig("appendonly", "yes"), testservers.WithRedisConfig("appendfsync", "always"))
	zkOwn := testservers.NewZooKeeper(t)
	cases := map[string]struct {
		server restartable
		spec   locksv1alpha1.BackendSpec
	}{
		"redis":     {redis, locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: redis.Addr}}},
		"zookeeper": {zkOwn, locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: []string{zkOwn.Addr}}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			ns := newTestNamespace(ctx, t)
			startController(t, ns)
			newLock(ctx, t, ns, "fragile", backendCase{spec: func() locksv1alpha1.BackendSpec { return tc.spec }})
			holder := newPod(ctx, t, ns, "holder", "fragile")
			waitLock(ctx, t, ns, "fragile", "held by holder", holderIs("holder"))
			newPod(ctx, t, ns, "waiter", "fragile")

			if err := tc.server.Kill(); err != nil {
				t.Fatalf("killing the server: %v", err)
			}
			setPhase(ctx, t, holder, corev1.PodSucceeded)
			waitLock(ctx, t, ns, "fragile", "backend reported unreachable", func(l *locksv1alpha1.DistributedLock) bool {
				return conditionReason(locksv1alpha1.ConditionBackendReachable, locksv1alpha1.ReasonUnreachable)(l) &&
					conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonUnreachable)(l)
			})
			waitEvent(ctx, t, ns, "DistributedLock", "fragile", locksv1alpha1.ReasonUnreachable)
			if n := countEvents(ctx, t, ns, "Pod", "waiter", locksv1alpha1.ReasonGranted); n != 0 {
				t.Fatalf("the waiter was granted the lock while the backend was down")
			}

			restartCtx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := tc.server.Restart(restartCtx); err != nil {
				t.Fatalf("restarting the server: %v", err)
			}
			lock := waitLock(ctx, t, ns, "fragile", "granted to waiter once the backend is back", holderIs("waiter"))
			for _, typ := range []string{locksv1alpha1.ConditionReady, locksv1alpha1.ConditionBackendReachable} {
				if c := conditionReason(typ, locksv1alpha1.ReasonConnected); !c(lock) {
					t.Errorf("condition %s did not flip back to Connected: %+v", typ, lock.Status.Conditions)
				}
			}
		})
	}
}

func newSecret(ctx context.Context, t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if err := k8sClient.Create(ctx, s); err != nil {
		t.Fatalf("creating Secret %s: %v", name, err)
	}
}

func TestBadCredentialsShowAsConditions(t *testing.T) {
	redis := testservers.NewRedis(t, testservers.WithRedisPassword("s3cret"))
	withCreds := func(name string) func(*locksv1alpha1.DistributedLock) {
		return func(l *locksv1alpha1.DistributedLock) {
			if l.Spec.Backend.Redis != nil {
				l.Spec.Backend.Redis.CredentialsSecretRef = &locksv1alpha1.SecretReference{Name: name}
			} else {
				l.Spec.Backend.ZooKeeper.CredentialsSecretRef = &locksv1alpha1.SecretReference{Name: name}
			}
		}
	}
	redisCase := backendCase{spec: func() locksv1alpha1.BackendSpec {
		return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: redis.Addr}}
	}}
	zkCase := backendCases()[1]

	t.Run("redis: a wrong password", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newSecret(ctx, t, ns, "redis-creds", map[string]string{"password": "wrong"})
		newLock(ctx, t, ns, "guarded", redisCase, withCreds("redis-creds"))
		newPod(ctx, t, ns, "pod", "guarded")
		waitLock(ctx, t, ns, "guarded", "reported unauthorized", conditionReason(locksv1alpha1.ConditionBackendReachable, locksv1alpha1.ReasonUnauthorized))
		waitEvent(ctx, t, ns, "DistributedLock", "guarded", locksv1alpha1.ReasonUnauthorized)
	})
	t.Run("redis: the right password", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newSecret(ctx, t, ns, "redis-creds", map[string]string{"password": "s3cret"})
		newLock(ctx, t, ns, "guarded", redisCase, withCreds("redis-creds"))
		newPod(ctx, t, ns, "pod", "guarded")
		waitLock(ctx, t, ns, "guarded", "granted", holderIs("pod"))
	})
	t.Run("redis: a missing Secret", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "guarded", redisCase, withCreds("nope"))
		waitLock(ctx, t, ns, "guarded", "reported invalid credentials", conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonCredentialsInvalid))
	})
	t.Run("zookeeper: a Secret without a username", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newSecret(ctx, t, ns, "zk-creds", map[string]string{"password": "pw"})
		newLock(ctx, t, ns, "guarded", zkCase, withCreds("zk-creds"))
		waitLock(ctx, t, ns, "guarded", "reported invalid credentials", conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonCredentialsInvalid))
	})
	t.Run("zookeeper: a wrong password for a path guarded by a digest ACL", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		// Another identity owns the lock path.
		conn := newZKConn(t)
		if err := conn.AddAuth("digest", []byte("owner:right")); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/distlock", "/distlock/" + ns, "/distlock/" + ns + "/guarded"} {
			acl := zk.WorldACL(zk.PermAll)
			if p == "/distlock/"+ns+"/guarded" {
				acl = zk.DigestACL(zk.PermAll, "owner", "right")
			}
			if _, err := conn.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				t.Fatalf("creating %s: %v", p, err)
			}
		}
		newSecret(ctx, t, ns, "zk-creds", map[string]string{"username": "owner", "password": "wrong"})
		newLock(ctx, t, ns, "guarded", zkCase, withCreds("zk-creds"))
		newPod(ctx, t, ns, "pod", "guarded")
		waitLock(ctx, t, ns, "guarded", "reported unauthorized", conditionReason(locksv1alpha1.ConditionBackendReachable, locksv1alpha1.ReasonUnauthorized))
	})
}

func TestCustomKeysNeedTheManagersPermission(t *testing.T) {
	bc := backendCases()[0]
	withKey := func(l *locksv1alpha1.DistributedLock) { l.Spec.Key = "shared/nightly-report" }

	t.Run("refused by default", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "custom", bc, withKey)
		newPod(ctx, t, ns, "pod", "custom")
		waitLock(ctx, t, ns, "custom", "refused", conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonKeyNotAllowed))
		waitEvent(ctx, t, ns, "DistributedLock", "custom", locksv1alpha1.ReasonKeyNotAllowed)
		if n := countEvents(ctx, t, ns, "Pod", "pod", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("the pod was granted a lock with a refused key")
		}
	})
	t.Run("allowed with --allow-custom-keys", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns, withCustomKeys())
		newLock(ctx, t, ns, "custom", bc, withKey)
		newPod(ctx, t, ns, "pod", "custom")
		lock := waitLock(ctx, t, ns, "custom", "granted", holderIs("pod"))
		if lock.Status.Key != "shared/nightly-report" {
			t.Errorf("status.key = %q; want the custom key", lock.Status.Key)
		}
		if got := bc.leftovers(t, "shared/nightly-report"); len(got) == 0 {
			t.Errorf("nothing held under the custom key")
		}
	})
}

// faultyPodReader is the manager's API reader with a switch that makes pod
// reads fail, as they would while the API server is overloaded or the
// controller's permissions are broken.
type faultyPodReader struct {
	client.Reader
	fail atomic.Bool
}

func (r *faultyPodReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, isPod := obj.(*corev1.Pod); isPod && r.fail.Load() {
		return apierrors.NewServiceUnavailable("injected: pods cannot be read")
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

func TestWhenTheHolderCannotBeFoundTheControllerFailsClosed(t *testing.T) {
	bc := backendCases()[0]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	reader := &faultyPodReader{}
	startController(t, ns, func(r *DistributedLockReconciler) {
		reader.Reader = r.APIReader
		r.APIReader = reader
	})
	newLock(ctx, t, ns, "careful", bc)
	holder := newPod(ctx, t, ns, "holder", "careful")
	waitLock(ctx, t, ns, "careful", "held by holder", holderIs("holder"))
	newPod(ctx, t, ns, "waiter", "careful")

	// The holder drops its label: it leaves the controller's pod cache, but
	// it still runs and still holds the lock. Reading it fails.
	reader.fail.Store(true)
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"distlock.io/lock":null}}}`))
	if err := k8sClient.Patch(ctx, holder, patch); err != nil {
		t.Fatalf("removing the holder's label: %v", err)
	}
	waitLock(ctx, t, ns, "careful", "failing closed", func(l *locksv1alpha1.DistributedLock) bool {
		return heldReason(locksv1alpha1.ReasonUnknownHolder)(l) && holderIs("holder")(l) &&
			conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonUnknownHolder)(l)
	})
	if n := countEvents(ctx, t, ns, "Pod", "waiter", locksv1alpha1.ReasonGranted); n != 0 {
		t.Fatalf("the waiter was granted the lock while the controller could not tell whether the holder ran")
	}

	// Reading works again: the unlabelled holder still runs, so it keeps the
	// lock until it finishes.
	reader.fail.Store(false)
	waitLock(ctx, t, ns, "careful", "held by holder again", func(l *locksv1alpha1.DistributedLock) bool {
		return heldReason(locksv1alpha1.ReasonGranted)(l) && holderIs("holder")(l)
	})
	setPhase(ctx, t, holder, corev1.PodSucceeded)
	waitLock(ctx, t, ns, "careful", "passed to waiter", holderIs("waiter"))
}
