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
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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

// newSecret creates a Secret that every lock of ns may use (annotation
// distlock.io/allowed-locks: "*").
func newSecret(ctx context.Context, t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	newSecretAllowing(ctx, t, ns, name, "*", data)
}

// newSecretAllowing creates a Secret whose distlock.io/allowed-locks
// annotation is allowed (none when empty).
func newSecretAllowing(ctx context.Context, t *testing.T, ns, name, allowed string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if allowed != "" {
		s.Annotations = map[string]string{locksv1alpha1.AllowedLocksAnnotation: allowed}
	}
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
	t.Run("redis: a Secret that does not allow the lock to use it", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newSecretAllowing(ctx, t, ns, "unannotated", "", map[string]string{"password": "s3cret"})
		newSecretAllowing(ctx, t, ns, "for-others", "other-lock, third", map[string]string{"password": "s3cret"})
		newLock(ctx, t, ns, "guarded", redisCase, withCreds("unannotated"))
		newLock(ctx, t, ns, "guarded2", redisCase, withCreds("for-others"))
		newPod(ctx, t, ns, "pod", "guarded")
		lock := waitLock(ctx, t, ns, "guarded", "refused the Secret", conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonCredentialsNotAllowed))
		if c := meta.FindStatusCondition(lock.Status.Conditions, locksv1alpha1.ConditionReady); !strings.Contains(c.Message, locksv1alpha1.AllowedLocksAnnotation) {
			t.Errorf("message %q does not say how to allow it", c.Message)
		}
		waitLock(ctx, t, ns, "guarded2", "refused the Secret", conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonCredentialsNotAllowed))
		if n := countEvents(ctx, t, ns, "Pod", "pod", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("the pod was granted a lock whose Secret does not allow it")
		}
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

func TestCustomKeysNeedTheManagersPermissionAndStayInTheirNamespace(t *testing.T) {
	bc := backendCases()[0]
	withKey := func(key string) func(*locksv1alpha1.DistributedLock) {
		return func(l *locksv1alpha1.DistributedLock) { l.Spec.Key = key }
	}

	t.Run("refused by default", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "custom", bc, withKey(ns+"/nightly-report"))
		newPod(ctx, t, ns, "pod", "custom")
		waitLock(ctx, t, ns, "custom", "refused", conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonKeyNotAllowed))
		waitEvent(ctx, t, ns, "DistributedLock", "custom", locksv1alpha1.ReasonKeyNotAllowed)
		if n := countEvents(ctx, t, ns, "Pod", "pod", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("the pod was granted a lock with a refused key")
		}
	})
	t.Run("allowed with --allow-custom-keys under the namespace's own prefix", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns, withCustomKeys())
		newLock(ctx, t, ns, "custom", bc, withKey(ns+":nightly-report"))
		newPod(ctx, t, ns, "pod", "custom")
		lock := waitLock(ctx, t, ns, "custom", "granted", holderIs("pod"))
		if lock.Status.Key != ns+":nightly-report" {
			t.Errorf("status.key = %q; want the custom key", lock.Status.Key)
		}
		if got := bc.leftovers(t, ns+":nightly-report"); len(got) == 0 {
			t.Errorf("nothing held under the custom key")
		}
	})
	t.Run("another namespace's default key is refused even with --allow-custom-keys", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		victim := newTestNamespace(ctx, t)
		startController(t, ns, withCustomKeys())
		newLock(ctx, t, ns, "intruder", bc, withKey("distlock/"+victim+"/reports"))
		newPod(ctx, t, ns, "pod", "intruder")
		lock := waitLock(ctx, t, ns, "intruder", "refused", conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonKeyNotAllowed))
		if c := meta.FindStatusCondition(lock.Status.Conditions, locksv1alpha1.ConditionReady); !strings.Contains(c.Message, "another namespace") {
			t.Errorf("message %q does not say why", c.Message)
		}
	})
	t.Run("a shared key outside the namespace needs the Namespace annotation an administrator sets", func(t *testing.T) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns, withCustomKeys())
		newLock(ctx, t, ns, "shared", bc, withKey("locks:billing:nightly-"+ns))
		newPod(ctx, t, ns, "pod", "shared")
		waitLock(ctx, t, ns, "shared", "refused", conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonKeyNotAllowed))

		patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:"locks:billing:"}}}`,
			locksv1alpha1.AllowedKeyPrefixesAnnotation)))
		if err := k8sClient.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, patch); err != nil {
			t.Fatalf("annotating the namespace: %v", err)
		}
		annotateLock(ctx, t, ns, "shared", "test.distlock.io/poke", "1") // the controller does not watch namespaces
		waitLock(ctx, t, ns, "shared", "granted once allowed", holderIs("pod"))
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

func TestALockInATerminatingNamespaceGoesWhenItsSecretWentFirst(t *testing.T) {
	redis := testservers.NewRedis(t, testservers.WithRedisPassword("s3cret"))
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	first := startController(t, ns)
	newSecret(ctx, t, ns, "creds", map[string]string{"password": "s3cret"})
	lock := newLock(ctx, t, ns, "doomed", backendCase{spec: func() locksv1alpha1.BackendSpec {
		return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: redis.Addr,
			CredentialsSecretRef: &locksv1alpha1.SecretReference{Name: "creds"}}}
	}})
	pod := newPod(ctx, t, ns, "holder", "doomed")
	waitLock(ctx, t, ns, "doomed", "held", holderIs("holder"))

	// The namespace is deleted: its Secret and pods go first, while the
	// manager is restarting (it keeps no connection to the backend).
	first.stop()
	for _, obj := range []client.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}}, pod} {
		if err := k8sClient.Delete(ctx, obj, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Delete(ctx, lock); err != nil {
		t.Fatal(err)
	}
	startController(t, ns)
	deadline := time.Now().Add(waitTimeout)
	for {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(lock), &locksv1alpha1.DistributedLock{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock in the terminating namespace still exists after %v (err %v)", waitTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// No Event can tell of it: the API server refuses new objects, Events
	// included, in a terminating namespace; the manager logs it. The hold,
	// no longer renewed, expires by its TTL.
	deadline = time.Now().Add(testLease + 2*time.Second)
	for {
		if _, held := redisHeldTokenAuth(t, redis.Addr, "s3cret", "distlock/"+ns+"/doomed"); !held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hold of the deleted lock did not expire within its TTL")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
