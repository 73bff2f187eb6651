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
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
)

// heldLock is a lock of a test, held by a pod, with its key and token.
type heldLock struct {
	bc     backendCase
	name   string
	holder *corev1.Pod
	key    string
	token  int64
}

// holdOnEachBackend creates, for every backend, a lock held by a pod with
// another pod waiting, and returns them once held.
func holdOnEachBackend(ctx context.Context, t *testing.T, ns string, mutate ...func(*locksv1alpha1.DistributedLock)) []heldLock {
	t.Helper()
	var locks []heldLock
	for _, bc := range backendCases() {
		name := "lock-" + bc.name
		newLock(ctx, t, ns, name, bc, mutate...)
		holder := newPod(ctx, t, ns, name+"-holder", name)
		rec := waitLock(ctx, t, ns, name, "held by its holder", holderIs(holder.Name))
		newPod(ctx, t, ns, name+"-waiter", name)
		locks = append(locks, heldLock{bc: bc, name: name, holder: holder, key: rec.Status.Key, token: rec.Status.Holders[0].FencingToken})
	}
	return locks
}

// assertHeldThroughout checks, every 100ms for d, that the backend still has
// each lock's hold with the same fencing token.
func assertHeldThroughout(t *testing.T, locks []heldLock, d time.Duration, while string) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for _, l := range locks {
			token, held := l.bc.heldToken(t, l.key)
			if !held || token != l.token {
				t.Fatalf("%s: %s lost its hold %v in (backend shows held=%v token=%d; want token %d)",
					while, l.name, d-time.Until(end), held, token, l.token)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertStillHeldAndPassesOn checks that status shows each hold unchanged
// and not lost, then finishes each holder and waits for the waiter's grant.
func assertStillHeldAndPassesOn(ctx context.Context, t *testing.T, ns string, locks []heldLock) {
	t.Helper()
	assertStillHeldAndPassesOnWithin(ctx, t, waitTimeout, ns, locks)
}

// assertStillHeldAndPassesOnWithin is assertStillHeldAndPassesOn with
// another deadline for each step.
func assertStillHeldAndPassesOnWithin(ctx context.Context, t *testing.T, within time.Duration, ns string, locks []heldLock) {
	t.Helper()
	for _, l := range locks {
		lock := waitLockWithin(ctx, t, within, ns, l.name, "still held by its holder, not lost", func(dl *locksv1alpha1.DistributedLock) bool {
			return holderIs(l.holder.Name)(dl) && heldReason(locksv1alpha1.ReasonGranted)(dl)
		})
		if got := lock.Status.Holders[0].FencingToken; got != l.token {
			t.Errorf("%s: token %d after the fault; want the same hold, token %d", l.name, got, l.token)
		}
		if n := countEvents(ctx, t, ns, "Pod", l.name+"-waiter", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("%s: the waiter was granted the lock while the holder ran", l.name)
		}
		setPhase(ctx, t, l.holder, corev1.PodSucceeded)
		waitLockWithin(ctx, t, within, ns, l.name, "passed to the waiter", holderIs(l.name+"-waiter"))
	}
}

func TestHoldsOutliveAKubeAPIServerOutageLongerThanTheLease(t *testing.T) {
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	// The manager reaches the API server through a proxy; cutting it is, for
	// the manager, the API server going down (connections reset, new ones
	// refused). The test itself still talks to the API server directly.
	apiServer, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testservers.NewProxy(t, apiServer.Host)
	viaProxy := rest.CopyConfig(cfg)
	viaProxy.Host = "https://" + proxy.Addr
	startControllerOn(t, viaProxy, ns)
	locks := holdOnEachBackend(ctx, t, ns)

	proxy.Cut()
	assertHeldThroughout(t, locks, 2*testLease, "while the API server was down")
	if err := proxy.Heal(); err != nil {
		t.Fatal(err)
	}
	// client-go's informers reconnect with a back-off of up to 30 s.
	assertStillHeldAndPassesOnWithin(ctx, t, 45*time.Second, ns, locks)
}

func TestDeletingOrRotatingTheCredentialsSecretNeitherDropsTheHoldNorLiesInStatus(t *testing.T) {
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	redis := testservers.NewRedis(t, testservers.WithRedisPassword("s3cret"))
	newSecret(ctx, t, ns, "redis-creds", map[string]string{"password": "s3cret"})
	newSecret(ctx, t, ns, "zk-creds", map[string]string{"username": "locker", "password": "pw"})
	startController(t, ns)
	redisCase := backendCases()[0]
	redisCase.spec = func() locksv1alpha1.BackendSpec {
		return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: redis.Addr,
			CredentialsSecretRef: &locksv1alpha1.SecretReference{Name: "redis-creds"}}}
	}
	redisCase.heldToken = func(t *testing.T, key string) (int64, bool) {
		return redisHeldTokenAuth(t, redis.Addr, "s3cret", key)
	}
	zkCase := backendCases()[1]
	zkCase.heldToken = func(t *testing.T, key string) (int64, bool) {
		return zkHeldTokenAuth(t, zkServer.Addr, "locker:pw", key)
	}
	zkSpec := zkCase.spec
	zkCase.spec = func() locksv1alpha1.BackendSpec {
		s := zkSpec()
		s.ZooKeeper.CredentialsSecretRef = &locksv1alpha1.SecretReference{Name: "zk-creds"}
		return s
	}
	var locks []heldLock
	for _, bc := range []backendCase{redisCase, zkCase} {
		name := "lock-" + bc.name
		newLock(ctx, t, ns, name, bc)
		holder := newPod(ctx, t, ns, name+"-holder", name)
		rec := waitLock(ctx, t, ns, name, "held", holderIs(holder.Name))
		newPod(ctx, t, ns, name+"-waiter", name)
		locks = append(locks, heldLock{bc: bc, name: name, holder: holder, key: rec.Status.Key, token: rec.Status.Holders[0].FencingToken})
	}

	// Rotate one Secret to a password the server refuses, delete the other.
	var secret corev1.Secret
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "redis-creds"}, &secret); err != nil {
		t.Fatal(err)
	}
	secret.StringData = map[string]string{"password": "rotated-but-not-on-the-server"}
	if err := k8sClient.Update(ctx, &secret); err != nil {
		t.Fatal(err)
	}
	if err := k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "zk-creds"}}); err != nil {
		t.Fatal(err)
	}
	for _, l := range locks {
		waitLock(ctx, t, ns, l.name, "reporting the credentials problem while still held", func(dl *locksv1alpha1.DistributedLock) bool {
			c := meta.FindStatusCondition(dl.Status.Conditions, locksv1alpha1.ConditionBackendReachable)
			return c != nil && c.Status == metav1.ConditionFalse && holderIs(l.holder.Name)(dl) &&
				heldReason(locksv1alpha1.ReasonGranted)(dl)
		})
	}
	assertHeldThroughout(t, locks, 2*testLease, "after the Secrets were rotated or deleted")

	// The hold disappears from the backend behind the controller's back:
	// status must stop claiming it within a renewal or two, although the
	// controller can no longer connect afresh.
	for _, l := range locks {
		if l.bc.name == "redis" {
			c := newRedisClient(t, redis.Addr)
			if err := c.Do(ctx, "AUTH", "s3cret").Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.Del(ctx, l.key).Err(); err != nil {
				t.Fatal(err)
			}
		} else {
			conn := newZKConn(t)
			if err := conn.AddAuth("digest", []byte("locker:pw")); err != nil {
				t.Fatal(err)
			}
			children, _, err := conn.Children(l.key)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range children {
				if err := conn.Delete(l.key+"/"+c, -1); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitLock(ctx, t, ns, l.name, "reported lost", heldReason(locksv1alpha1.ReasonLost))
	}
}

func TestAHeldLockStaysHeldWhileTenOtherLocksPointAtABlackHoledAddress(t *testing.T) {
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	blackhole := testservers.NewBlackhole(t)
	startController(t, ns)
	healthy := holdOnEachBackend(ctx, t, ns)[:1] // Redis
	for i := range 10 {
		name := fmt.Sprintf("sick-%d", i)
		spec := locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: blackhole.Addr}}
		if i%2 == 1 {
			spec = locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: []string{blackhole.Addr}}}
		}
		newLock(ctx, t, ns, name, backendCase{spec: func() locksv1alpha1.BackendSpec { return spec }})
		newPod(ctx, t, ns, name+"-pod", name)
	}
	waitLock(ctx, t, ns, "sick-0", "reported unreachable", conditionReason(locksv1alpha1.ConditionBackendReachable, locksv1alpha1.ReasonUnreachable))
	assertHeldThroughout(t, healthy, 3*testLease, "while ten locks pointed at a black hole")

	// A handoff on the healthy lock is not held up either.
	start := time.Now()
	assertStillHeldAndPassesOn(ctx, t, ns, healthy)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a handoff on the healthy lock took %v beside the sick ones", took)
	}
}

// denyPodAnnotations makes the API server refuse every update of the pods
// of ns that carries distlock's grant annotation, as a policy engine or a
// webhook might.
func denyPodAnnotations(ctx context.Context, t *testing.T, ns string) {
	t.Helper()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-distlock-annotations-" + ns},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
						Resources: []string{"pods"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `!has(object.metadata.annotations) || !('distlock.io/granted' in object.metadata.annotations)`,
				Message:    "a test policy refuses distlock's annotations",
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	for _, obj := range []client.Object{policy, binding} {
		if err := k8sClient.Create(ctx, obj); err != nil {
			t.Fatalf("creating %T: %v", obj, err)
		}
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), obj) })
	}
	// Policies take effect asynchronously: wait until one is refused.
	probe := newPod(ctx, t, ns, "policy-probe", "none")
	deadline := time.Now().Add(waitTimeout)
	for {
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"distlock.io/granted":"x"}}}`))
		err := k8sClient.Patch(ctx, probe, patch)
		if err != nil && strings.Contains(err.Error(), "refuses distlock") {
			return
		}
		if err == nil {
			_ = k8sClient.Patch(ctx, probe, client.RawPatch("application/merge-patch+json",
				[]byte(`{"metadata":{"annotations":{"distlock.io/granted":null}}}`)))
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admission policy did not take effect within %v (last error %v)", waitTimeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestAHoldIsRenewedOnTimeWhileItsPodCannotBeAnnotated(t *testing.T) {
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	denyPodAnnotations(ctx, t, ns)
	startController(t, ns)
	locks := holdOnEachBackend(ctx, t, ns)
	for _, l := range locks {
		note := waitEvent(ctx, t, ns, "Pod", l.holder.Name, "AnnotationFailed")
		if !strings.Contains(note, "refuses distlock") {
			t.Errorf("AnnotationFailed event %q does not say why", note)
		}
	}
	assertHeldThroughout(t, locks, 3*testLease, "while the holder pods could not be annotated")
	assertStillHeldAndPassesOn(ctx, t, ns, locks)
}

func TestAnOutsideHoldersHugeValueIsCutInStatus(t *testing.T) {
	bc := backendCases()[0]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns, withCustomKeys())
	key := ns + ":huge"
	huge := strings.Repeat("x", 64<<10)
	if err := newRedisClient(t, redisServer.Addr).Set(ctx, key, huge, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	newLock(ctx, t, ns, "shared", bc, func(l *locksv1alpha1.DistributedLock) { l.Spec.Key = key })
	newPod(ctx, t, ns, "pod", "shared")
	lock := waitLock(ctx, t, ns, "shared", "held elsewhere", heldReason(locksv1alpha1.ReasonHeldElsewhere))
	c := meta.FindStatusCondition(lock.Status.Conditions, locksv1alpha1.ConditionHeld)
	if len(c.Message) > maxMessageLength || !strings.Contains(c.Message, fmt.Sprintf("(%d bytes)", len(huge))) {
		t.Errorf("message of %d bytes %q...; want it cut, saying the value's size", len(c.Message), c.Message[:min(len(c.Message), 300)])
	}
	if err := newRedisClient(t, redisServer.Addr).Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	waitLock(ctx, t, ns, "shared", "granted once the outside holder let go", holderIs("pod"))
}
