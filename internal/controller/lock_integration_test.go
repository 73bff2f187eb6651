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
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	goredis "github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// waitTimeout bounds every wait for the controller in these tests.
const waitTimeout = 20 * time.Second

// testLease is the lease of the tests' locks: the shortest allowed.
const testLease = 10 * time.Second

// testNode is the node the tests' pods are created on: the lock is granted
// only to pods scheduled to a node (no kubelet runs here; the tests play its
// part and report the pods' phases).
const testNode = "envtest-node"

// backendCase is one backend under test, with what a test needs to talk to
// its server directly: as a program outside Kubernetes would, and to check
// what is left in it.
type backendCase struct {
	name string
	// spec points a lock at the test server.
	spec func() locksv1alpha1.BackendSpec
	// outsider returns a client that takes the lock at key the way programs
	// outside the cluster do.
	outsider func(t *testing.T, key string) outsideLocker
	// leftovers lists what the backend keeps for key besides the Redis
	// fencing counter (nothing, once a lock is deleted).
	leftovers func(t *testing.T, key string) []string
	// dropHold removes the controller's hold behind its back, as an operator
	// or a server failure might.
	dropHold func(t *testing.T, key string)
	// heldToken reads, straight from the server, the fencing token of the
	// hold at key (false when nothing holds it).
	heldToken func(t *testing.T, key string) (int64, bool)
	// holds counts, straight from the server, the holds of the semaphore at
	// key (docs/design.md, "Semaphores").
	holds func(t *testing.T, key string) int
}

// outsideLocker is a lock client outside Kubernetes.
type outsideLocker interface {
	// Lock blocks until it holds the lock or ctx ends.
	Lock(ctx context.Context) error
	Unlock(ctx context.Context) error
}

func backendCases() []backendCase {
	return []backendCase{
		{
			name: "redis",
			spec: func() locksv1alpha1.BackendSpec {
				return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: redisServer.Addr}}
			},
			outsider: func(t *testing.T, key string) outsideLocker {
				return &redisOutsider{client: newRedisClient(t, redisServer.Addr), key: key, value: randomValue(t)}
			},
			leftovers: func(t *testing.T, key string) []string {
				// The fencing counter (key + ":fencing") is kept on purpose:
				// tokens go on rising when a lock is created again on the key.
				keys, err := newRedisClient(t, redisServer.Addr).Keys(context.Background(), key+"*").Result()
				if err != nil {
					t.Fatalf("listing redis keys %q: %v", key+"*", err)
				}
				return slices.DeleteFunc(keys, func(k string) bool { return k == key+":fencing" })
			},
			dropHold: func(t *testing.T, key string) {
				if err := newRedisClient(t, redisServer.Addr).Del(context.Background(), key).Err(); err != nil {
					t.Fatalf("deleting redis key %q: %v", key, err)
				}
			},
			heldToken: func(t *testing.T, key string) (int64, bool) { return redisHeldToken(t, redisServer.Addr, key) },
			holds: func(t *testing.T, key string) int {
				c := newRedisClient(t, redisServer.Addr)
				typ, err := c.Type(context.Background(), key).Result()
				if err != nil {
					t.Fatalf("reading the type of redis key %q: %v", key, err)
				}
				if typ != "zset" {
					return 0
				}
				n, err := c.ZCard(context.Background(), key).Result()
				if err != nil {
					t.Fatalf("counting the holds of redis key %q: %v", key, err)
				}
				return int(n)
			},
		},
		{
			name: "zookeeper",
			spec: func() locksv1alpha1.BackendSpec {
				return locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: []string{zkServer.Addr}}}
			},
			outsider: func(t *testing.T, key string) outsideLocker {
				return &zkOutsider{lock: zk.NewLock(newZKConn(t), key, zk.WorldACL(zk.PermAll))}
			},
			leftovers: func(t *testing.T, key string) []string {
				conn := newZKConn(t)
				exists, _, err := conn.Exists(key)
				if err != nil {
					t.Fatalf("checking znode %s: %v", key, err)
				}
				if !exists {
					return nil
				}
				children, _, err := conn.Children(key)
				if err != nil {
					t.Fatalf("listing znode %s: %v", key, err)
				}
				return append([]string{key}, children...)
			},
			dropHold: func(t *testing.T, key string) {
				conn := newZKConn(t)
				children, _, err := conn.Children(key)
				if err != nil {
					t.Fatalf("listing znode %s: %v", key, err)
				}
				for _, c := range children {
					if err := conn.Delete(key+"/"+c, -1); err != nil {
						t.Fatalf("deleting znode %s/%s: %v", key, c, err)
					}
				}
			},
			heldToken: func(t *testing.T, key string) (int64, bool) { return zkHeldToken(t, zkServer.Addr, key) },
			holds: func(t *testing.T, key string) int {
				children, _, err := newZKConn(t).Children(key + "/leases")
				if errors.Is(err, zk.ErrNoNode) {
					return 0
				}
				if err != nil {
					t.Fatalf("listing znode %s/leases: %v", key, err)
				}
				return len(children)
			},
		},
	}
}

// redisHeldToken reads the fencing token from the value of a Redis lock key
// ("<holder>;fence=<token>").
func redisHeldToken(t *testing.T, addr, key string) (int64, bool) {
	t.Helper()
	return redisHeldTokenAuth(t, addr, "", key)
}

// redisHeldTokenAuth is redisHeldToken on a server with a password.
func redisHeldTokenAuth(t *testing.T, addr, password, key string) (int64, bool) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, Password: password})
	defer c.Close()
	v, err := c.Get(context.Background(), key).Result()
	if errors.Is(err, goredis.Nil) {
		return 0, false
	}
	if err != nil {
		t.Fatalf("reading redis key %q: %v", key, err)
	}
	i := strings.LastIndex(v, ";fence=")
	if i < 0 {
		return 0, true
	}
	token, err := strconv.ParseInt(v[i+len(";fence="):], 10, 64)
	if err != nil {
		t.Fatalf("redis key %q holds %q: no fencing token", key, v)
	}
	return token, true
}

// zkHeldToken reads the creation zxid of the lowest lock node under key,
// ordered by sequence number as Curator orders them.
func zkHeldToken(t *testing.T, addr, key string) (int64, bool) {
	t.Helper()
	return zkHeldTokenAuth(t, addr, "", key)
}

// zkHeldTokenAuth is zkHeldToken authenticated with the digest scheme as
// auth ("user:password"), when not empty.
func zkHeldTokenAuth(t *testing.T, addr, auth, key string) (int64, bool) {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("connecting to ZooKeeper: %v", err)
	}
	defer conn.Close()
	if auth != "" {
		if err := conn.AddAuth("digest", []byte(auth)); err != nil {
			t.Fatalf("authenticating to ZooKeeper: %v", err)
		}
	}
	children, _, err := conn.Children(key)
	if errors.Is(err, zk.ErrNoNode) {
		return 0, false
	}
	if err != nil {
		t.Fatalf("listing znode %s: %v", key, err)
	}
	lowest, lowestSeq := "", int64(-1)
	for _, c := range children {
		i := strings.LastIndex(c, "lock-")
		if i < 0 {
			continue
		}
		seq, err := strconv.ParseInt(c[i+len("lock-"):], 10, 64)
		if err == nil && (lowestSeq < 0 || seq < lowestSeq) {
			lowest, lowestSeq = c, seq
		}
	}
	if lowest == "" {
		return 0, false
	}
	ok, stat, err := conn.Exists(key + "/" + lowest)
	if err != nil {
		t.Fatalf("reading znode %s/%s: %v", key, lowest, err)
	}
	if !ok {
		return 0, false
	}
	return stat.Czxid, true
}

func newRedisClient(t *testing.T, addr string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newZKConn(t *testing.T) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect([]string{zkServer.Addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("connecting to ZooKeeper: %v", err)
	}
	t.Cleanup(conn.Close)
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-deadline:
			t.Fatalf("no ZooKeeper session within %v", waitTimeout)
		}
	}
}

func randomValue(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// redisOutsider is the single-instance Redis recipe as redsync and others use
// it: SET NX PX with a random value, polling while taken, and a Lua
// compare-and-delete to release.
type redisOutsider struct {
	client *goredis.Client
	key    string
	value  string
}

func (o *redisOutsider) Lock(ctx context.Context) error {
	for {
		ok, err := o.client.SetNX(ctx, o.key, o.value, 30*time.Second).Result()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var compareAndDelete = goredis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`)

func (o *redisOutsider) Unlock(ctx context.Context) error {
	n, err := compareAndDelete.Run(ctx, o.client, []string{o.key}, o.value).Int()
	if err != nil {
		return err
	}
	if n != 1 {
		return errors.New("the outside program's hold was gone when it released it")
	}
	return nil
}

// zkOutsider is go-zookeeper's own lock recipe, zk.Lock.
type zkOutsider struct{ lock *zk.Lock }

func (o *zkOutsider) Lock(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- o.lock.Lock() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (o *zkOutsider) Unlock(context.Context) error { return o.lock.Unlock() }

// newLock creates a DistributedLock in ns.
func newLock(ctx context.Context, t *testing.T, ns, name string, bc backendCase, mutate ...func(*locksv1alpha1.DistributedLock)) *locksv1alpha1.DistributedLock {
	t.Helper()
	lock := &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: locksv1alpha1.DistributedLockSpec{
			Backend:       bc.spec(),
			LeaseDuration: &metav1.Duration{Duration: testLease},
		},
	}
	for _, m := range mutate {
		m(lock)
	}
	if err := k8sClient.Create(ctx, lock); err != nil {
		t.Fatalf("creating DistributedLock %s: %v", name, err)
	}
	return lock
}

// podOption adjusts a pod before newPod creates it.
type podOption func(*corev1.Pod)

// withFinalizer keeps a deleted pod in the API until the test removes the
// finalizer, as a kubelet keeps a pod whose containers are still stopping.
func withFinalizer(f string) podOption {
	return func(p *corev1.Pod) { p.Finalizers = append(p.Finalizers, f) }
}

// newPod creates a running pod in ns that asks for lockName.
func newPod(ctx context.Context, t *testing.T, ns, name, lockName string, opts ...podOption) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{locksv1alpha1.LockLabel: lockName}},
		Spec: corev1.PodSpec{
			NodeName:   testNode,
			Containers: []corev1.Container{{Name: "work", Image: "busybox"}},
			// No kubelet runs here: let deletes complete at once.
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
	for _, opt := range opts {
		opt(pod)
	}
	if err := k8sClient.Create(ctx, pod); err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	if len(pod.Finalizers) > 0 {
		t.Cleanup(func() { removeFinalizers(context.Background(), t, pod) })
	}
	setPhase(ctx, t, pod, corev1.PodRunning)
	return pod
}

// removeFinalizers lets a deleted pod go.
func removeFinalizers(ctx context.Context, t *testing.T, pod *corev1.Pod) {
	t.Helper()
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
	if err := k8sClient.Patch(ctx, pod, patch); client.IgnoreNotFound(err) != nil {
		t.Errorf("removing the finalizers of pod %s: %v", pod.Name, err)
	}
}

// waitPod polls a pod until cond holds.
func waitPod(ctx context.Context, t *testing.T, pod *corev1.Pod, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var got corev1.Pod
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pod), &got)
		if err == nil && cond(&got) {
			return &got
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s: %s: not so after %v (get error: %v)", pod.Name, what, waitTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setPhase plays the kubelet's part: it reports the pod's phase.
func setPhase(ctx context.Context, t *testing.T, pod *corev1.Pod, phase corev1.PodPhase) {
	t.Helper()
	if err := k8sClient.Status().Patch(ctx, pod, phasePatch(phase)); err != nil {
		t.Fatalf("setting pod %s to %s: %v", pod.Name, phase, err)
	}
}

// phasePatch sets a pod's status.phase and nothing else, so it never
// conflicts with the controller's annotations.
func phasePatch(phase corev1.PodPhase) client.Patch {
	return client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"status":{"phase":%q}}`, phase)))
}

func deletePod(ctx context.Context, t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if err := k8sClient.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatalf("deleting pod %s: %v", pod.Name, err)
	}
}

// waitLock polls the lock until cond holds, and fails the test with the
// lock's status when it does not within waitTimeout.
func waitLock(ctx context.Context, t *testing.T, ns, name, what string, cond func(*locksv1alpha1.DistributedLock) bool) *locksv1alpha1.DistributedLock {
	t.Helper()
	return waitLockWithin(ctx, t, waitTimeout, ns, name, what, cond)
}

// waitLockWithin is waitLock with another deadline.
func waitLockWithin(ctx context.Context, t *testing.T, within time.Duration, ns, name, what string,
	cond func(*locksv1alpha1.DistributedLock) bool) *locksv1alpha1.DistributedLock {
	t.Helper()
	deadline := time.Now().Add(within)
	var lock locksv1alpha1.DistributedLock
	for {
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &lock)
		if err == nil && cond(&lock) {
			return &lock
		}
		if time.Now().After(deadline) {
			status, _ := yaml.Marshal(map[string]any{"annotations": lock.Annotations, "status": lock.Status})
			t.Fatalf("lock %s/%s: %s: not so after %v (get error: %v); status:\n%s", ns, name, what, within, err, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func holderIs(pod string) func(*locksv1alpha1.DistributedLock) bool {
	return func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Holders) == 1 && l.Status.Holders[0].Pod == pod && !l.Status.Holders[0].Lost
	}
}

func heldReason(reason string) func(*locksv1alpha1.DistributedLock) bool {
	return func(l *locksv1alpha1.DistributedLock) bool {
		c := meta.FindStatusCondition(l.Status.Conditions, locksv1alpha1.ConditionHeld)
		return c != nil && c.Reason == reason && c.ObservedGeneration == l.Generation
	}
}

func conditionReason(typ, reason string) func(*locksv1alpha1.DistributedLock) bool {
	return func(l *locksv1alpha1.DistributedLock) bool {
		c := meta.FindStatusCondition(l.Status.Conditions, typ)
		return c != nil && c.Reason == reason
	}
}

// waitEvent waits for an Event with reason about the named object and
// returns its note.
func waitEvent(ctx context.Context, t *testing.T, ns, kind, name, reason string) string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var events eventsv1.EventList
		if err := k8sClient.List(ctx, &events, client.InNamespace(ns)); err != nil {
			t.Fatalf("listing events: %v", err)
		}
		for _, ev := range events.Items {
			if ev.Regarding.Kind == kind && ev.Regarding.Name == name && ev.Reason == reason {
				return ev.Note
			}
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, ev := range events.Items {
				seen = append(seen, fmt.Sprintf("%s/%s %s: %s", ev.Regarding.Kind, ev.Regarding.Name, ev.Reason, ev.Note))
			}
			t.Fatalf("no %s Event about %s %s within %v; events:\n%s", reason, kind, name, waitTimeout, strings.Join(seen, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countEvents(ctx context.Context, t *testing.T, ns, kind, name, reason string) int {
	t.Helper()
	var events eventsv1.EventList
	if err := k8sClient.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatalf("listing events: %v", err)
	}
	n := 0
	for _, ev := range events.Items {
		if ev.Regarding.Kind == kind && ev.Regarding.Name == name && ev.Reason == reason {
			n++
		}
	}
	return n
}

func getPod(ctx context.Context, t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	var got corev1.Pod
	if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pod), &got); err != nil {
		t.Fatalf("reading pod %s: %v", pod.Name, err)
	}
	return &got
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// forEachBackend runs fn as a subtest for every backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, bc backendCase)) {
	for _, bc := range backendCases() {
		t.Run(bc.name, func(t *testing.T) { fn(t, bc) })
	}
}

func TestGrantsTheLockToTheFirstPod(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		created := newLock(ctx, t, ns, "reports", bc)
		pod := newPod(ctx, t, ns, "worker-0", "reports")

		lock := waitLock(ctx, t, ns, "reports", "held by worker-0", holderIs("worker-0"))
		rec := lock.Status.Holders[0]
		if rec.PodUID != pod.UID || rec.FencingToken <= 0 || rec.LeaseExpiresAt != nil {
			t.Errorf("holder record = %+v; want pod UID %s, a positive fencing token and no expiry (renewals succeed)", rec, pod.UID)
		}
		if want := fmt.Sprintf("distlock:v2:%s:%s:reports:%s:worker-0:%s", testClusterID, ns, created.UID, pod.UID); rec.Identity != want {
			t.Errorf("holder identity = %q; want %q", rec.Identity, want)
		}
		if lock.Status.Backend != bc.name || lock.Status.Key == "" {
			t.Errorf("status backend/key = %q/%q; want %q and a key", lock.Status.Backend, lock.Status.Key, bc.name)
		}
		for _, typ := range []string{locksv1alpha1.ConditionReady, locksv1alpha1.ConditionBackendReachable, locksv1alpha1.ConditionHeld} {
			if !meta.IsStatusConditionTrue(lock.Status.Conditions, typ) {
				t.Errorf("condition %s is not True: %+v", typ, lock.Status.Conditions)
			}
		}
		got := getPod(ctx, t, pod)
		if got.Annotations[locksv1alpha1.GrantedAnnotation] != "reports" ||
			got.Annotations[locksv1alpha1.FencingTokenAnnotation] != fmt.Sprint(rec.FencingToken) {
			t.Errorf("pod annotations = %v; want granted=reports and fencing-token=%d", got.Annotations, rec.FencingToken)
		}
		waitEvent(ctx, t, ns, "Pod", "worker-0", locksv1alpha1.ReasonGranted)
		if leftovers := bc.leftovers(t, lock.Status.Key); len(leftovers) == 0 {
			t.Errorf("nothing in the backend under %q while the lock is held", lock.Status.Key)
		}
	})
}

func TestGrantsInCreationOrderAndReleasesOnSucceededFailedAndDeletion(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		pods := newPodsInOrder(ctx, t, ns, "batch", "d-first", "c-second", "b-third", "a-fourth")
		// The lock appears after its pods: they wait, then the oldest wins.
		waitEvent(ctx, t, ns, "Pod", "d-first", locksv1alpha1.ReasonLockNotFound)
		newLock(ctx, t, ns, "batch", bc)

		lock := waitLock(ctx, t, ns, "batch", "held by d-first with three waiting", func(l *locksv1alpha1.DistributedLock) bool {
			return holderIs("d-first")(l) && l.Status.WaitingCount == 3
		})
		var order []string
		for _, w := range lock.Status.Waiting {
			order = append(order, w.Pod)
		}
		if got, want := strings.Join(order, ","), "c-second,b-third,a-fourth"; got != want {
			t.Errorf("waiting = %s; want %s", got, want)
		}
		tokens := []int64{lock.Status.Holders[0].FencingToken}

		setPhase(ctx, t, pods[0], corev1.PodSucceeded)
		lock = waitLock(ctx, t, ns, "batch", "passed to c-second after d-first succeeded", holderIs("c-second"))
		tokens = append(tokens, lock.Status.Holders[0].FencingToken)

		setPhase(ctx, t, pods[1], corev1.PodFailed)
		lock = waitLock(ctx, t, ns, "batch", "passed to b-third after c-second failed", holderIs("b-third"))
		tokens = append(tokens, lock.Status.Holders[0].FencingToken)

		deletePod(ctx, t, pods[2])
		lock = waitLock(ctx, t, ns, "batch", "passed to a-fourth after b-third was deleted", holderIs("a-fourth"))
		tokens = append(tokens, lock.Status.Holders[0].FencingToken)

		for i := 1; i < len(tokens); i++ {
			if tokens[i] <= tokens[i-1] {
				t.Errorf("fencing tokens %v do not increase", tokens)
			}
		}
		setPhase(ctx, t, pods[3], corev1.PodSucceeded)
		waitLock(ctx, t, ns, "batch", "free", func(l *locksv1alpha1.DistributedLock) bool {
			return len(l.Status.Holders) == 0 && heldReason(locksv1alpha1.ReasonFree)(l)
		})
		waitEvent(ctx, t, ns, "DistributedLock", "batch", locksv1alpha1.ReasonReleased)
	})
}

func TestAWaitingPodThatIsDeletedLeavesTheQueue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "q", bc)
		holder := newPod(ctx, t, ns, "holder", "q")
		waitLock(ctx, t, ns, "q", "held by holder", holderIs("holder"))
		quitter := newPod(ctx, t, ns, "quitter", "q")
		newPod(ctx, t, ns, "stayer", "q")
		waitLock(ctx, t, ns, "q", "two waiting", func(l *locksv1alpha1.DistributedLock) bool { return l.Status.WaitingCount == 2 })

		deletePod(ctx, t, quitter)
		waitLock(ctx, t, ns, "q", "one waiting after a waiter was deleted", func(l *locksv1alpha1.DistributedLock) bool {
			return l.Status.WaitingCount == 1 && len(l.Status.Waiting) == 1 && l.Status.Waiting[0].Pod == "stayer"
		})
		setPhase(ctx, t, holder, corev1.PodSucceeded)
		waitLock(ctx, t, ns, "q", "passed to stayer", holderIs("stayer"))
	})
}

func TestOutsideProgramsAndPodsExcludeEachOther(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		lock := newLock(ctx, t, ns, "shared", bc)
		key := waitLock(ctx, t, ns, "shared", "key resolved", func(l *locksv1alpha1.DistributedLock) bool { return l.Status.Key != "" }).Status.Key
		_ = lock

		// An outside program holds the lock: the pod waits.
		outside := bc.outsider(t, key)
		if err := outside.Lock(ctx); err != nil {
			t.Fatalf("outside program taking the lock: %v", err)
		}
		pod := newPod(ctx, t, ns, "pod-a", "shared")
		waitLock(ctx, t, ns, "shared", "held elsewhere with pod-a waiting", func(l *locksv1alpha1.DistributedLock) bool {
			return heldReason(locksv1alpha1.ReasonHeldElsewhere)(l) && len(l.Status.Holders) == 0 && l.Status.WaitingCount == 1
		})
		if err := outside.Unlock(ctx); err != nil {
			t.Fatalf("outside program releasing the lock: %v", err)
		}
		waitLock(ctx, t, ns, "shared", "granted to pod-a once the outside program released it", holderIs("pod-a"))

		// The pod holds the lock: another outside program waits until the pod finishes.
		second := bc.outsider(t, key)
		took := make(chan error, 1)
		lockCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { took <- second.Lock(lockCtx) }()
		select {
		case err := <-took:
			t.Fatalf("the outside program took the lock while pod-a held it (err %v)", err)
		case <-time.After(2 * time.Second): // a window in which exclusion must hold
		}
		setPhase(ctx, t, pod, corev1.PodSucceeded)
		select {
		case err := <-took:
			if err != nil {
				t.Fatalf("outside program taking the lock after pod-a finished: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("the outside program did not get the lock within %v after pod-a finished", waitTimeout)
		}
		// And a new pod waits for it again.
		newPod(ctx, t, ns, "pod-b", "shared")
		waitLock(ctx, t, ns, "shared", "held elsewhere with pod-b waiting", func(l *locksv1alpha1.DistributedLock) bool {
			return heldReason(locksv1alpha1.ReasonHeldElsewhere)(l) && l.Status.WaitingCount == 1
		})
		if err := second.Unlock(ctx); err != nil {
			t.Fatalf("outside program releasing the lock: %v", err)
		}
		waitLock(ctx, t, ns, "shared", "granted to pod-b", holderIs("pod-b"))
	})
}

func TestAControllerRestartKeepsTheHolderAndGrantsNoSecondPod(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		first := startController(t, ns)
		newLock(ctx, t, ns, "job", bc)
		holder := newPod(ctx, t, ns, "holder", "job")
		before := waitLock(ctx, t, ns, "job", "held by holder", holderIs("holder")).Status.Holders[0]
		newPod(ctx, t, ns, "waiter", "job")
		waitLock(ctx, t, ns, "job", "one waiting", func(l *locksv1alpha1.DistributedLock) bool { return l.Status.WaitingCount == 1 })

		first.stop()
		startController(t, ns)

		// The new controller renews the same hold: wait past a whole lease
		// so that a hold it failed to renew would have expired.
		time.Sleep(testLease + time.Second) // longer than the lease: the passage of time is under test
		after := waitLock(ctx, t, ns, "job", "still held by holder", holderIs("holder")).Status.Holders[0]
		if after.FencingToken != before.FencingToken || after.AcquiredAt != before.AcquiredAt {
			t.Errorf("holder after restart = %+v; want the same hold as before %+v", after, before)
		}
		if n := countEvents(ctx, t, ns, "Pod", "waiter", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("the waiter was granted the lock %d times while the holder ran", n)
		}
		setPhase(ctx, t, holder, corev1.PodSucceeded)
		waitLock(ctx, t, ns, "job", "passed to waiter", holderIs("waiter"))
	})
}

func TestARestartBetweenAcquiringAndRecordingAdoptsTheHold(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		first := startController(t, ns)
		newLock(ctx, t, ns, "crash", bc)
		holder := newPod(ctx, t, ns, "holder", "crash")
		rec := waitLock(ctx, t, ns, "crash", "held by holder", holderIs("holder")).Status.Holders[0]
		first.stop()

		// Forget the holder in status, as if the controller had crashed after
		// acquiring but before writing status.
		var lock locksv1alpha1.DistributedLock
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "crash"}, &lock); err != nil {
			t.Fatal(err)
		}
		lock.Status.Holders = nil
		if err := k8sClient.Status().Update(ctx, &lock); err != nil {
			t.Fatalf("clearing status: %v", err)
		}
		newPod(ctx, t, ns, "waiter", "crash")

		startController(t, ns)
		adopted := waitLock(ctx, t, ns, "crash", "held by holder again", holderIs("holder")).Status.Holders[0]
		if adopted.FencingToken != rec.FencingToken {
			t.Errorf("adopted token %d; want the original %d", adopted.FencingToken, rec.FencingToken)
		}
		waitEvent(ctx, t, ns, "DistributedLock", "crash", locksv1alpha1.ReasonAdopted)
		if n := countEvents(ctx, t, ns, "Pod", "waiter", locksv1alpha1.ReasonGranted); n != 0 {
			t.Errorf("the waiter was granted the lock while the holder ran")
		}
		setPhase(ctx, t, holder, corev1.PodSucceeded)
		waitLock(ctx, t, ns, "crash", "passed to waiter", holderIs("waiter"))
	})
}

func TestALostHoldIsReportedAndNotRegranted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "fragile", bc)
		holder := newPod(ctx, t, ns, "holder", "fragile")
		lock := waitLock(ctx, t, ns, "fragile", "held by holder", holderIs("holder"))
		newPod(ctx, t, ns, "waiter", "fragile")

		bc.dropHold(t, lock.Status.Key)
		waitLock(ctx, t, ns, "fragile", "reported lost", func(l *locksv1alpha1.DistributedLock) bool {
			return heldReason(locksv1alpha1.ReasonLost)(l) && len(l.Status.Holders) == 1 && l.Status.Holders[0].Lost
		})
		waitEvent(ctx, t, ns, "Pod", "holder", locksv1alpha1.ReasonLost)
		if got := getPod(ctx, t, holder).Annotations[locksv1alpha1.LostAnnotation]; got == "" {
			t.Errorf("the holder pod has no %s annotation", locksv1alpha1.LostAnnotation)
		}
		if n := countEvents(ctx, t, ns, "Pod", "waiter", locksv1alpha1.ReasonGranted); n != 0 {
			t.Fatalf("the waiter was granted the lock while the old holder still ran")
		}

		setPhase(ctx, t, holder, corev1.PodSucceeded)
		waitLock(ctx, t, ns, "fragile", "passed to waiter once the old holder ended", holderIs("waiter"))
	})
}

// annotateLock sets an annotation on a DistributedLock, as
// `kubectl annotate distributedlock NAME key=value` does.
func annotateLock(ctx context.Context, t *testing.T, ns, name, key, value string) {
	t.Helper()
	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)))
	lock := &locksv1alpha1.DistributedLock{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8sClient.Patch(ctx, lock, patch); err != nil {
		t.Fatalf("annotating lock %s with %s: %v", name, key, err)
	}
}

func TestAForceReleaseDeletesTheHolderAndPassesTheLockOnOnlyOnceItIsGone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "stuck", bc)
		hung := newPod(ctx, t, ns, "hung", "stuck", withFinalizer("test.distlock.io/hold-pod"))
		before := waitLock(ctx, t, ns, "stuck", "held by hung", holderIs("hung")).Status.Holders[0]
		newPod(ctx, t, ns, "next", "stuck")

		// kubectl annotate distributedlock stuck distlock.io/force-release="hung for an hour"
		annotateLock(ctx, t, ns, "stuck", locksv1alpha1.ForceReleaseAnnotation, "hung for an hour")
		note := waitEvent(ctx, t, ns, "DistributedLock", "stuck", locksv1alpha1.ReasonForceReleaseRequested)
		if !strings.Contains(note, "hung for an hour") {
			t.Errorf("ForceReleaseRequested event %q does not carry the operator's reason", note)
		}
		// The holder pod is being deleted, but its containers may still run
		// (a finalizer keeps it here, as a kubelet would while it stops): the
		// lock stays with it.
		waitPod(ctx, t, hung, "being deleted", func(p *corev1.Pod) bool { return !p.DeletionTimestamp.IsZero() })
		time.Sleep(time.Second) // a window in which the lock must not pass on
		waitLock(ctx, t, ns, "stuck", "still held by hung while its pod stops", holderIs("hung"))
		if n := countEvents(ctx, t, ns, "Pod", "next", locksv1alpha1.ReasonGranted); n != 0 {
			t.Fatalf("the next pod was granted the lock while the force-released holder still ran")
		}

		removeFinalizers(ctx, t, hung) // the pod has stopped and is gone
		after := waitLock(ctx, t, ns, "stuck", "passed to next and the annotation removed", func(l *locksv1alpha1.DistributedLock) bool {
			_, still := l.Annotations[locksv1alpha1.ForceReleaseAnnotation]
			return holderIs("next")(l) && !still
		}).Status.Holders[0]
		if after.FencingToken <= before.FencingToken {
			t.Errorf("token after the force-release %d; want > %d", after.FencingToken, before.FencingToken)
		}
		waitEvent(ctx, t, ns, "DistributedLock", "stuck", locksv1alpha1.ReasonForceReleased)
	})
}

func TestABreakPassesTheLockOnAtOnceAndTellsTheOldHolder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newLock(ctx, t, ns, "stuck", bc)
		hung := newPod(ctx, t, ns, "hung", "stuck")
		before := waitLock(ctx, t, ns, "stuck", "held by hung", holderIs("hung")).Status.Holders[0]
		newPod(ctx, t, ns, "next", "stuck")

		annotateLock(ctx, t, ns, "stuck", locksv1alpha1.BreakAnnotation, "node lost; the job is known dead")
		lock := waitLock(ctx, t, ns, "stuck", "passed to next, hung revoked, the annotation removed", func(l *locksv1alpha1.DistributedLock) bool {
			_, still := l.Annotations[locksv1alpha1.BreakAnnotation]
			return holderIs("next")(l) && !still && len(l.Status.Revoked) == 1
		})
		if rv := lock.Status.Revoked[0]; rv.PodUID != hung.UID || rv.Reason != locksv1alpha1.ReasonBroken {
			t.Errorf("revoked = %+v; want pod hung, reason Broken", rv)
		}
		if lock.Status.Holders[0].FencingToken <= before.FencingToken {
			t.Errorf("token after the break %d; want > %d", lock.Status.Holders[0].FencingToken, before.FencingToken)
		}
		note := waitEvent(ctx, t, ns, "Pod", "hung", locksv1alpha1.ReasonBroken)
		if !strings.Contains(note, "known dead") {
			t.Errorf("Broken event %q does not carry the operator's reason", note)
		}
		if got := getPod(ctx, t, hung).Annotations[locksv1alpha1.LostAnnotation]; got == "" {
			t.Errorf("the broken holder is not marked with %s", locksv1alpha1.LostAnnotation)
		}
		// Once the old holder stops, it leaves the revoked list.
		setPhase(ctx, t, hung, corev1.PodFailed)
		waitLock(ctx, t, ns, "stuck", "revoked list emptied", func(l *locksv1alpha1.DistributedLock) bool { return len(l.Status.Revoked) == 0 })
	})
}

func TestDeletingAHeldLockWaitsForTheHolderThenLeavesNothingInTheBackend(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		lock := newLock(ctx, t, ns, "doomed", bc)
		pod := newPod(ctx, t, ns, "holder", "doomed")
		held := waitLock(ctx, t, ns, "doomed", "held by holder", holderIs("holder"))
		key := held.Status.Key
		newPod(ctx, t, ns, "waiter", "doomed")
		if len(bc.leftovers(t, key)) == 0 {
			t.Fatalf("nothing in the backend under %q while held", key)
		}

		if err := k8sClient.Delete(ctx, lock); err != nil {
			t.Fatalf("deleting the lock: %v", err)
		}
		waitLock(ctx, t, ns, "doomed", "waiting for its holder before it goes", func(l *locksv1alpha1.DistributedLock) bool {
			c := meta.FindStatusCondition(l.Status.Conditions, locksv1alpha1.ConditionReady)
			return c != nil && c.Reason == locksv1alpha1.ReasonDeletionWaitsForHolder && strings.Contains(c.Message, "holder") &&
				holderIs("holder")(l)
		})
		note := waitEvent(ctx, t, ns, "DistributedLock", "doomed", locksv1alpha1.ReasonDeletionWaitsForHolder)
		if !strings.Contains(note, "holder") {
			t.Errorf("event %q does not name the holder pod", note)
		}
		// The hold outlives a lease while the holder runs: it is renewed.
		time.Sleep(testLease + time.Second) // the passage of a whole lease is the input under test
		if st := bc.leftovers(t, key); len(st) == 0 {
			t.Fatalf("the hold expired while the deleted lock waited for its holder")
		}
		if n := countEvents(ctx, t, ns, "Pod", "waiter", locksv1alpha1.ReasonGranted); n != 0 {
			t.Fatalf("a waiter was granted a lock that is being deleted")
		}

		setPhase(ctx, t, pod, corev1.PodSucceeded)
		deadline := time.Now().Add(waitTimeout)
		for {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(lock), &locksv1alpha1.DistributedLock{})
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the lock still exists %v after its holder finished (err %v)", waitTimeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if left := bc.leftovers(t, key); len(left) != 0 {
			t.Errorf("left in the backend after the lock was deleted: %v", left)
		}
	})
}

func TestAPodNamingAMissingLockGetsAnEventAndIsGrantedOnceItExists(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bc backendCase) {
		ctx := testContext(t)
		ns := newTestNamespace(ctx, t)
		startController(t, ns)
		newPod(ctx, t, ns, "early", "later")
		note := waitEvent(ctx, t, ns, "Pod", "early", locksv1alpha1.ReasonLockNotFound)
		if !strings.Contains(note, `"later"`) {
			t.Errorf("LockNotFound event %q does not name the missing lock", note)
		}
		newLock(ctx, t, ns, "later", bc)
		waitLock(ctx, t, ns, "later", "granted to early", holderIs("early"))
	})
}

func TestAHolderPastMaxHoldDurationIsStoppedAndTheLockPassesOn(t *testing.T) {
	bc := backendCases()[0]
	ctx := testContext(t)
	ns := newTestNamespace(ctx, t)
	startController(t, ns)
	newLock(ctx, t, ns, "bounded", bc, func(l *locksv1alpha1.DistributedLock) {
		l.Spec.MaxHoldDuration = &metav1.Duration{Duration: testLease}
	})
	newPod(ctx, t, ns, "slow", "bounded")
	acquired := waitLock(ctx, t, ns, "bounded", "held by slow", holderIs("slow")).Status.Holders[0].AcquiredAt
	newPod(ctx, t, ns, "next", "bounded")

	lock := waitLock(ctx, t, ns, "bounded", "passed to next after slow overstayed", holderIs("next"))
	if held := lock.Status.Holders[0].AcquiredAt.Sub(acquired.Time); held < testLease {
		t.Errorf("the lock passed on after %v; want no earlier than maxHoldDuration (%v)", held, testLease)
	}
	note := waitEvent(ctx, t, ns, "Pod", "slow", locksv1alpha1.ReasonMaxHoldExceeded)
	if !strings.Contains(note, "maxHoldDuration") {
		t.Errorf("MaxHoldExceeded event %q does not say why", note)
	}
	var gone corev1.Pod
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "slow"}, &gone); !apierrors.IsNotFound(err) {
		t.Errorf("the pod that overstayed still exists (err %v)", err)
	}
}
