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
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	goredis "github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
)

// granted, as what an accepted spec must lead to: a pod is granted the lock.
const granted = "granted"

// hostile is the world of TestHostileInput: an attacker's and a victim's
// namespace, served by one manager that allows custom keys (the more exposed
// setting). The victim holds a lock on each backend under its default keys
// and has a free lock whose name is as long as a label value may be.
type hostile struct {
	ctx              context.Context
	attacker, victim string
}

var victimLong = strings.Repeat("v", 63)

func TestHostileInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	h := &hostile{ctx: ctx, attacker: newTestNamespace(ctx, t), victim: newTestNamespace(ctx, t)}
	panicsBefore, _ := reconcilePanics(t)
	startManager(t, cfg, h.attacker, func(o *ctrl.Options) {
		o.Cache.DefaultNamespaces = map[string]cache.Config{h.attacker: {}, h.victim: {}}
	}, withCustomKeys())
	redisBC, zkBC := backendCases()[0], backendCases()[1]
	newLock(ctx, t, h.victim, "victim", redisBC)
	newLock(ctx, t, h.victim, "victim-zk", zkBC)
	newLock(ctx, t, h.victim, victimLong, redisBC)
	newPod(ctx, t, h.victim, "victim-holder", "victim")
	newPod(ctx, t, h.victim, "victim-zk-holder", "victim-zk")
	before := []*locksv1alpha1.DistributedLock{
		waitLock(ctx, t, h.victim, "victim", "held", holderIs("victim-holder")),
		waitLock(ctx, t, h.victim, "victim-zk", "held", holderIs("victim-zk-holder")),
	}

	t.Run("specs", h.specs)
	t.Run("keys", h.keys)
	t.Run("secrets", h.secrets)
	for _, l := range before {
		after := waitLock(ctx, t, h.victim, l.Name, "still held by its own pod", holderIs(l.Status.Holders[0].Pod))
		if got, want := after.Status.Holders[0].FencingToken, l.Status.Holders[0].FencingToken; got != want {
			t.Errorf("victim lock %s: fencing token %d, was %d: its hold changed hands", l.Name, got, want)
		}
	}
	t.Run("labels", h.labels)
	t.Run("a black-holed backend", h.blackhole)

	// The manager never crashed: no reconcile panicked (controller-runtime
	// recovers and counts them), every lock of the attacker shows a Ready
	// condition, none was cut short by a wrapped-around maxHoldDuration,
	// and a new lock is still granted.
	if n, counted := reconcilePanics(t); !counted || n != panicsBefore {
		t.Errorf("%v reconciles panicked (counted: %t)", n-panicsBefore, counted)
	}
	var locks locksv1alpha1.DistributedLockList
	if err := k8sClient.List(ctx, &locks, client.InNamespace(h.attacker)); err != nil {
		t.Fatal(err)
	}
	for i := range locks.Items {
		l := &locks.Items[i]
		if readyCondition(l) == nil {
			t.Errorf("lock %s was never handled: no Ready condition", l.Name)
		}
		if n := countEvents(ctx, t, h.attacker, "DistributedLock", l.Name, locksv1alpha1.ReasonMaxHoldExceeded); n != 0 {
			t.Errorf("lock %s stopped its holder for exceeding maxHoldDuration %v", l.Name, l.Spec.MaxHoldDuration)
		}
	}
	newLock(ctx, t, h.attacker, "after-all", redisBC)
	newPod(ctx, t, h.attacker, "after-all-pod", "after-all")
	waitLock(ctx, t, h.attacker, "after-all", "granted after all the hostile input", holderIs("after-all-pod"))
}

// specs creates locks from raw JSON, so that fields can have the wrong
// type. Each spec is either rejected with a message naming field, or
// accepted and then shows ifAccepted (granted, or a Ready reason).
func (h *hostile) specs(t *testing.T) {
	redis := fmt.Sprintf(`"backend":{"redis":{"address":%q}},"leaseDuration":"10s"`, redisServer.Addr)
	backend := func(b string) string { return `"backend":` + b + `,"leaseDuration":"10s"` }
	key := func(k string) string { return fmt.Sprintf(`%s,"key":%q`, redis, k) }
	own := h.attacker + ":"
	// No backend and both backends are in TestDistributedLockAdmissionRejectsMalformedSpecs.
	cases := []struct {
		name, lock        string
		spec              string // the JSON object's fields
		field, ifAccepted string
	}{
		{"a 253-character lock name", strings.Repeat("n", 253), redis, "metadata.name", locksv1alpha1.ReasonConnected},
		{"a 63-character lock name (the label limit)", strings.Repeat("n", 63), redis, "metadata.name", granted},
		{"leaseDuration given as a number", "", redis + `,"leaseDuration":30`, "spec.leaseDuration", granted},
		{"leaseDuration of a trillion hours", "", redis + `,"leaseDuration":"1000000000000h"`, "leaseDuration", granted},
		{"a negative leaseDuration", "", redis + `,"leaseDuration":"-30s"`, "leaseDuration", granted},
		{"a leaseDuration that is not a duration", "", redis + `,"leaseDuration":"soon"`, "leaseDuration", granted},
		{"a negative maxHoldDuration", "", redis + `,"maxHoldDuration":"-1h"`, "maxHoldDuration", granted},
		{"the longest maxHoldDuration Go can hold", "", redis + `,"maxHoldDuration":"2562047h"`, "maxHoldDuration", granted},
		{"a key given as a number", "", redis + `,"key":42`, "spec.key", granted},
		{"a 513-character key", "", key(own + strings.Repeat("k", 513-len(own))), "spec.key", granted},
		{"a 512-character key under the namespace prefix", "", key(own + strings.Repeat("k", 512-len(own))), "spec.key", granted},
		{"a key with CRLF and a Redis command in it", "", key(own + "x\r\nFLUSHALL\r\n"), "spec.key", granted},
		{"a redis db given as a string", "", strings.Replace(redis, "}}", `,"db":"0"}}`, 1), "spec.backend.redis.db", granted},
		{"zookeeper servers given as one string", "", backend(fmt.Sprintf(`{"zookeeper":{"servers":%q}}`, zkServer.Addr)),
			"spec.backend.zookeeper.servers", granted},
		{"a backend given as a string", "", backend(`"redis"`), "spec.backend", granted},
		{"a backend of an unknown kind (etcd)", "", backend(`{"etcd":{"endpoints":"x"}}`), "backend", granted},
		{"redis beside an explicit null zookeeper", "", strings.Replace(redis, "}}", `},"zookeeper":null}`, 1), "backend", granted},
		{"a redis port out of range (99999)", "", backend(`{"redis":{"address":"127.0.0.1:99999"}}`),
			"redis.address", locksv1alpha1.ReasonUnreachable},
		{"a 256-character redis host name", "", backend(`{"redis":{"address":"` + strings.Repeat("h", 256) + `:6379"}}`),
			"redis.address", locksv1alpha1.ReasonUnreachable},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.lock
			if name == "" {
				name = fmt.Sprintf("spec-%d", i)
			}
			u := &unstructured.Unstructured{}
			obj := fmt.Sprintf(`{"apiVersion":%q,"kind":"DistributedLock","metadata":{"namespace":%q,"name":%q},"spec":{%s}}`,
				locksv1alpha1.GroupVersion, h.attacker, name, tc.spec)
			if err := json.Unmarshal([]byte(obj), &u.Object); err != nil {
				t.Fatalf("the case's JSON: %v", err)
			}
			var outcome string
			switch err := k8sClient.Create(h.ctx, u); {
			case err != nil:
				outcome = "rejected: " + shorten(err.Error())
				if !strings.Contains(err.Error(), tc.field) {
					t.Errorf("rejected with %q; want a message naming %s", err, tc.field)
				}
			case tc.ifAccepted == granted && len(name) <= 63:
				pod := newPod(h.ctx, t, h.attacker, fmt.Sprintf("spec-%d-pod", i), name)
				l := waitLock(h.ctx, t, h.attacker, name, "granted", holderIs(pod.Name))
				outcome = fmt.Sprintf("accepted, granted (token %d, key of %d bytes)", l.Status.Holders[0].FencingToken, len(l.Status.Key))
			default:
				l := waitLock(h.ctx, t, h.attacker, name, "shows "+tc.ifAccepted, conditionReason(locksv1alpha1.ConditionReady, tc.ifAccepted))
				outcome = "accepted, " + readyOf(l)
			}
			t.Logf("%-50s -> %s", tc.name, outcome)
		})
	}
}

// keys tries keys that reach into the victim's namespace. The prefix check
// must refuse the plain ones; keys that only look like paths may be used
// as the literal keys they are. Either way nothing of the victim's in the
// backends changes.
func (h *hostile) keys(t *testing.T) {
	a, b := h.attacker, h.victim
	redisBC, zkBC := backendCases()[0], backendCases()[1]
	cases := []struct {
		name       string
		bc         backendCase
		key        string
		mustRefuse bool // by the prefix check, with KeyNotAllowed
	}{
		{"redis: the victim's prefix (victim/x)", redisBC, b + "/x", true},
		{"redis: the victim's ':' prefix (victim:x)", redisBC, b + ":x", true},
		{"redis: climbing up (../victim/x)", redisBC, "../" + b + "/x", true},
		{"redis: rooted (/victim/x)", redisBC, "/" + b + "/x", true},
		{"redis: own prefix, then ../victim/x", redisBC, a + "/../" + b + "/x", false},
		{"redis: own default space, then ../victim/victim", redisBC, "distlock/" + a + "/../" + b + "/victim", false},
		{"zookeeper: the victim's path (/victim/x)", zkBC, "/" + b + "/x", true},
		{"zookeeper: the victim's lock path", zkBC, "/distlock/" + b + "/victim-zk", true},
		{"zookeeper: own path, then /../victim/x", zkBC, "/" + a + "/../" + b + "/x", false},
		{"zookeeper: own default path, then ../victim-zk", zkBC, "/distlock/" + a + "/../" + b + "/victim-zk", false},
	}
	before := h.footprint(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("key-%d", i)
			lock := &locksv1alpha1.DistributedLock{
				ObjectMeta: metav1.ObjectMeta{Namespace: a, Name: name},
				Spec:       locksv1alpha1.DistributedLockSpec{Backend: tc.bc.spec(), Key: tc.key, LeaseDuration: duration(testLease)},
			}
			if err := k8sClient.Create(h.ctx, lock); err != nil {
				t.Logf("%-50s -> rejected: %s", tc.name, shorten(err.Error()))
				return
			}
			pod := newPod(h.ctx, t, a, name+"-pod", name)
			l := waitLock(h.ctx, t, a, name, "granted or refused", func(l *locksv1alpha1.DistributedLock) bool {
				c := readyCondition(l)
				return holderIs(pod.Name)(l) || (c != nil && c.Status != metav1.ConditionTrue)
			})
			outcome := readyOf(l)
			switch {
			case len(l.Status.Holders) > 0:
				outcome = fmt.Sprintf("granted on the literal key %q", l.Status.Key)
				if tc.mustRefuse || l.Status.Key != tc.key {
					t.Errorf("granted on key %q; want spec.key %q refused (must refuse: %t), or used exactly as written",
						l.Status.Key, tc.key, tc.mustRefuse)
				}
			case tc.mustRefuse && !conditionReason(locksv1alpha1.ConditionReady, locksv1alpha1.ReasonKeyNotAllowed)(l):
				t.Errorf("Ready is %s; want KeyNotAllowed", readyOf(l))
			default:
				outcome = "refused, " + outcome + ": " + shorten(readyCondition(l).Message)
			}
			if after := h.footprint(t); !slices.Equal(before, after) {
				t.Errorf("the victim's keys and znodes changed:\nbefore %q\nafter  %q", before, after)
			}
			t.Logf("%-50s -> %s", tc.name, outcome)
		})
	}
}

// footprint lists what the backends hold in the victim's name: Redis keys
// that name it (the attacker's own literal keys left out), and the znodes
// under /<victim> and /distlock/<victim>, with the victim's lock nodes.
func (h *hostile) footprint(t *testing.T) []string {
	t.Helper()
	keys, err := newRedisClient(t, redisServer.Addr).Keys(h.ctx, "*"+h.victim+"*").Result()
	if err != nil {
		t.Fatalf("listing redis keys: %v", err)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return strings.Contains(k, h.attacker) })
	conn := newZKConn(t)
	for _, p := range []string{"/" + h.victim, "/distlock/" + h.victim, "/distlock/" + h.victim + "/victim-zk"} {
		children, _, err := conn.Children(p)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			t.Fatalf("listing znode %s: %v", p, err)
		}
		for _, c := range children {
			keys = append(keys, p+"/"+c)
		}
	}
	slices.Sort(keys)
	return keys
}

// secrets points locks at a password-protected Redis through Secrets that
// are out of reach or hostile. The victim's Secret has the right password
// and allows every lock, so a lock that read it would be granted.
func (h *hostile) secrets(t *testing.T) {
	pw := testservers.NewRedis(t, testservers.WithRedisPassword("s3cret"))
	admin := goredis.NewClient(&goredis.Options{Addr: pw.Addr, Password: "s3cret"})
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.Set(h.ctx, "canary", "alive", 0).Err(); err != nil {
		t.Fatal(err)
	}
	newSecret(h.ctx, t, h.victim, "creds-b", map[string]string{"password": "s3cret"})
	newSecret(h.ctx, t, h.attacker, "crlf", map[string]string{"password": "x\r\nFLUSHALL\r\n"})
	newSecret(h.ctx, t, h.attacker, "huge", map[string]string{"password": strings.Repeat("p", 512<<10)})
	newSecret(h.ctx, t, h.attacker, "right", map[string]string{"password": "s3cret"})
	unreachable := locksv1alpha1.ReasonUnreachable
	const rejected = "rejected at admission"
	cases := []struct {
		name, ref string
		want      []string // the Ready reasons that may show
	}{
		{"a Secret that exists only in the victim namespace", "creds-b", []string{locksv1alpha1.ReasonCredentialsInvalid}},
		// A name that is not a Secret's name is refused at admission.
		{"a Secret name with the victim namespace in it", h.victim + "/creds-b", []string{rejected}},
		{"a Secret name climbing into the victim namespace", "../../" + h.victim + "/secrets/creds-b", []string{rejected}},
		{"a password with CRLF and FLUSHALL in it", "crlf", []string{locksv1alpha1.ReasonUnauthorized}},
		// Redis may drop an unauthenticated client that sends so much.
		{"a password of 512 KiB", "huge", []string{locksv1alpha1.ReasonUnauthorized, unreachable}},
	}
	lockWith := func(ref string) backendCase {
		return backendCase{spec: func() locksv1alpha1.BackendSpec {
			return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: pw.Addr,
				CredentialsSecretRef: &locksv1alpha1.SecretReference{Name: ref}}}
		}}
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("secret-%d", i)
			if slices.Equal(tc.want, []string{rejected}) {
				lock := &locksv1alpha1.DistributedLock{ObjectMeta: metav1.ObjectMeta{Namespace: h.attacker, Name: name},
					Spec: locksv1alpha1.DistributedLockSpec{Backend: lockWith(tc.ref).spec()}}
				err := k8sClient.Create(h.ctx, lock)
				if err == nil || !strings.Contains(err.Error(), "credentialsSecretRef.name") {
					t.Fatalf("creating a lock naming Secret %q: got %v; want it rejected at admission naming credentialsSecretRef.name", tc.ref, err)
				}
				t.Logf("%-50s -> rejected: %s", tc.name, shorten(err.Error()))
				return
			}
			newLock(h.ctx, t, h.attacker, name, lockWith(tc.ref))
			pod := newPod(h.ctx, t, h.attacker, name+"-pod", name)
			l := waitLock(h.ctx, t, h.attacker, name, fmt.Sprintf("Ready reason one of %q", tc.want), func(l *locksv1alpha1.DistributedLock) bool {
				c := readyCondition(l)
				return c != nil && c.Status == metav1.ConditionFalse && slices.Contains(tc.want, c.Reason) && c.Message != ""
			})
			if len(l.Status.Holders) > 0 || getPod(h.ctx, t, pod).Annotations[locksv1alpha1.GrantedAnnotation] != "" {
				t.Errorf("granted with the Secret %q: it reached a Secret it may not use", tc.ref)
			}
			t.Logf("%-50s -> %s: %s", tc.name, readyOf(l), shorten(readyCondition(l).Message))
		})
	}
	if n, err := admin.Exists(h.ctx, "canary").Result(); err != nil || n != 1 {
		t.Errorf("the canary key is gone (exists=%d, err %v): a password was run as a command", n, err)
	}
	// The failures above are remembered per configuration: a lock with the
	// right password on the same server is granted at once.
	newLock(h.ctx, t, h.attacker, "secret-right", lockWith("right"))
	newPod(h.ctx, t, h.attacker, "secret-right-pod", "secret-right")
	waitLockWithin(h.ctx, t, 5*time.Second, h.attacker, "secret-right", "granted with the right password", holderIs("secret-right-pod"))
}

// labels has pods of the attacker ask for locks that exist only in the
// victim's namespace. They are told the lock is not found, and are never
// granted, not even the victim's free lock, nor the held one once it is
// free.
func (h *hostile) labels(t *testing.T) {
	cases := []struct{ name, lock string }{
		{"a label naming a held lock of the victim", "victim"},
		{"a label naming a ZooKeeper lock of the victim", "victim-zk"},
		{"a label naming a free 63-char lock of the victim", victimLong},
	}
	pods := make([]*corev1.Pod, 0, len(cases))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := newPod(h.ctx, t, h.attacker, fmt.Sprintf("label-%d-pod", i), tc.lock)
			pods = append(pods, pod)
			note := waitEvent(h.ctx, t, h.attacker, "Pod", pod.Name, locksv1alpha1.ReasonLockNotFound)
			h.assertNeverListed(t, pod, tc.lock)
			t.Logf("%-50s -> %s: %s", tc.name, locksv1alpha1.ReasonLockNotFound, shorten(note))
		})
	}
	holder := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: h.victim, Name: "victim-holder"}}
	setPhase(h.ctx, t, holder, corev1.PodSucceeded)
	waitLock(h.ctx, t, h.victim, "victim", "free once its holder finished", heldReason(locksv1alpha1.ReasonFree))
	for i, pod := range pods {
		h.assertNeverListed(t, pod, cases[i].lock)
	}
}

// assertNeverListed fails when the victim's lock lists the attacker's pod,
// or the pod carries a grant.
func (h *hostile) assertNeverListed(t *testing.T, pod *corev1.Pod, lockName string) {
	t.Helper()
	var l locksv1alpha1.DistributedLock
	if err := k8sClient.Get(h.ctx, client.ObjectKey{Namespace: h.victim, Name: lockName}, &l); err != nil {
		t.Fatal(err)
	}
	listed := slices.ContainsFunc(l.Status.Holders, func(x locksv1alpha1.LockHolder) bool { return x.PodUID == pod.UID }) ||
		slices.ContainsFunc(l.Status.Waiting, func(x locksv1alpha1.WaitingPod) bool { return x.PodUID == pod.UID })
	if listed {
		t.Errorf("victim lock %s lists the attacker's pod %s: %+v", lockName, pod.Name, l.Status)
	}
	if g := getPod(h.ctx, t, pod).Annotations[locksv1alpha1.GrantedAnnotation]; g != "" {
		t.Errorf("the attacker's pod %s carries a grant of %q", pod.Name, g)
	}
}

// blackhole points five of the attacker's locks at an address that
// accepts connections and never answers, and measures handoffs of a healthy
// Redis lock in the victim's namespace meanwhile.
func (h *hostile) blackhole(t *testing.T) {
	bh := testservers.NewBlackhole(t)
	sick := make([]string, 0, 5)
	for i := range 5 {
		name := fmt.Sprintf("sick-%d", i)
		spec := redisAt(bh.Addr)
		if i%2 == 1 {
			spec = zkAt(bh.Addr)
		}
		newLock(h.ctx, t, h.attacker, name, backendCase{spec: func() locksv1alpha1.BackendSpec { return spec }})
		newPod(h.ctx, t, h.attacker, name+"-pod", name)
		sick = append(sick, name)
	}
	stuck := conditionReason(locksv1alpha1.ConditionBackendReachable, locksv1alpha1.ReasonUnreachable)
	for _, name := range sick {
		l := waitLock(h.ctx, t, h.attacker, name, "reported unreachable", stuck)
		t.Logf("%-50s -> %s", fmt.Sprintf("a %s lock at a black hole (%s)", l.Status.Backend, name), readyOf(l))
	}

	newLock(h.ctx, t, h.victim, "healthy", backendCases()[0])
	for i := range 4 {
		newPod(h.ctx, t, h.victim, fmt.Sprintf("healthy-%d", i), "healthy")
	}
	var worst time.Duration
	for range 3 {
		l := waitLock(h.ctx, t, h.victim, "healthy", "held", func(l *locksv1alpha1.DistributedLock) bool { return len(l.Status.Holders) == 1 })
		current := l.Status.Holders[0].Pod
		start := time.Now()
		setPhase(h.ctx, t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: h.victim, Name: current}}, corev1.PodSucceeded)
		waitLock(h.ctx, t, h.victim, "healthy", "handed over", func(l *locksv1alpha1.DistributedLock) bool {
			return len(l.Status.Holders) == 1 && l.Status.Holders[0].Pod != current && !l.Status.Holders[0].Lost
		})
		worst = max(worst, time.Since(start))
	}
	for _, name := range sick {
		waitLock(h.ctx, t, h.attacker, name, "still stuck while the healthy lock was handed over", stuck)
	}
	t.Logf("%-50s -> slowest of 3 handoffs %v", "a healthy lock beside 5 black-holed ones", worst.Round(time.Millisecond))
	if worst >= 2*time.Second {
		t.Errorf("a handoff of the healthy lock took %v beside five black-holed locks; want < 2s", worst)
	}
}

func readyCondition(l *locksv1alpha1.DistributedLock) *metav1.Condition {
	return meta.FindStatusCondition(l.Status.Conditions, locksv1alpha1.ConditionReady)
}

// readyOf describes a lock's Ready condition, as "Ready=False KeyNotAllowed".
func readyOf(l *locksv1alpha1.DistributedLock) string {
	c := readyCondition(l)
	if c == nil {
		return "no Ready condition"
	}
	return fmt.Sprintf("Ready=%s %s", c.Status, c.Reason)
}

// shorten keeps what follows "is invalid: " in an API error, cut for the outcome table.
func shorten(s string) string {
	if _, rest, ok := strings.Cut(s, " is invalid: "); ok {
		s = rest
	}
	if s = strings.ReplaceAll(s, "\n", " "); len(s) > 110 {
		s = s[:110] + "…"
	}
	return s
}

// reconcilePanics is the number of reconciles that panicked in this process
// (controller-runtime recovers and counts them), and whether they are counted
// at all (only once a controller has started).
func reconcilePanics(t *testing.T) (float64, bool) {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	var n float64
	counted := false
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if f.GetName() == "controller_runtime_reconcile_panics_total" {
				n, counted = n+m.GetCounter().GetValue(), true
			}
		}
	}
	return n, counted
}
