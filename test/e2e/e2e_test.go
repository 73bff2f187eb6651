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

// Package e2e runs distlock on a real single-node cluster (kubelet,
// containerd, real init containers) brought up by hack/local-cluster.sh, and
// checks from an independent record that Jobs gated by the waiter never ran
// their critical sections at the same time.
//
// Run it with `make test-e2e`, which builds the images, brings the cluster
// up inside its own network namespace, runs this package there and tears
// everything down.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/testservers"
)

// env reads a required setting, provided by hack/test-e2e.sh.
func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the end-to-end tests with `make test-e2e`", name)
	}
	return v
}

type suite struct {
	c           client.Client
	kubectl     string
	kustomize   string
	nodeIP      string
	image       string
	workerImage string
	recordDir   string
	root        string
}

func newSuite(t *testing.T) *suite {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(locksv1alpha1.AddToScheme(scheme))
	cfg, err := config.GetConfig()
	if err != nil {
		t.Fatalf("loading the kubeconfig: %v", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("creating a client: %v", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return &suite{
		c:           c,
		kubectl:     env(t, "DISTLOCK_E2E_KUBECTL"),
		kustomize:   env(t, "DISTLOCK_E2E_KUSTOMIZE"),
		nodeIP:      env(t, "DISTLOCK_E2E_NODE_IP"),
		image:       env(t, "DISTLOCK_E2E_IMAGE"),
		workerImage: env(t, "DISTLOCK_E2E_WORKER_IMAGE"),
		recordDir:   env(t, "DISTLOCK_E2E_RECORD_DIR"),
		root:        root,
	}
}

func (s *suite) run(t *testing.T, stdin []byte, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// deploy installs distlock with config/default, the manifests a user
// applies, with the image replaced by the locally built one.
func (s *suite) deploy(t *testing.T) {
	// kustomize accepts only relative resource paths: the overlay lives in
	// bin/ (ignored by git) and points at config/default relatively.
	overlay := filepath.Join(s.root, "bin", "e2e", "overlay")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Rel(overlay, filepath.Join(s.root, "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- %s
images:
- name: controller
  newName: %s
  newTag: %s
patches:
- target: {kind: Deployment, name: distlock-controller-manager}
  patch: |-
    - op: add
      path: /spec/template/spec/containers/0/imagePullPolicy
      value: Never
    # The image assembled without Docker names no USER; the Deployment
    # requires a non-root one, as distroless's nonroot user is.
    - op: add
      path: /spec/template/spec/securityContext/runAsUser
      value: 65532
`, base, imageName(s.image), imageTag(s.image))
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		t.Fatal(err)
	}
	manifests := s.run(t, nil, s.kustomize, "build", overlay)
	s.run(t, []byte(manifests), s.kubectl, "apply", "--server-side", "-f", "-")
	s.run(t, nil, s.kubectl, "-n", "distlock-system", "rollout", "status", "deployment/distlock-controller-manager", "--timeout=3m")
}

func imageName(ref string) string { return ref[:strings.LastIndex(ref, ":")] }
func imageTag(ref string) string  { return ref[strings.LastIndex(ref, ":")+1:] }

type backendCase struct {
	name string
	spec func() locksv1alpha1.BackendSpec
}

func TestJobsGatedByALockTakeTurns(t *testing.T) {
	s := newSuite(t)
	s.deploy(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	redis := testservers.NewRedis(t, testservers.WithRedisHost(s.nodeIP))
	zk := testservers.NewZooKeeper(t, testservers.WithZooKeeperHost(s.nodeIP))
	cases := []backendCase{
		{"redis", func() locksv1alpha1.BackendSpec {
			return locksv1alpha1.BackendSpec{Redis: &locksv1alpha1.RedisBackend{Address: redis.Addr}}
		}},
		{"zookeeper", func() locksv1alpha1.BackendSpec {
			return locksv1alpha1.BackendSpec{ZooKeeper: &locksv1alpha1.ZooKeeperBackend{Servers: []string{zk.Addr}}}
		}},
	}
	for _, bc := range cases {
		t.Run(bc.name, func(t *testing.T) { s.jobsTakeTurns(ctx, t, bc) })
	}
}

func (s *suite) jobsTakeTurns(ctx context.Context, t *testing.T, bc backendCase) {
	ns := "e2e-" + bc.name
	s.mustCreate(ctx, t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	t.Cleanup(func() {
		_ = s.c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	s.mustCreate(ctx, t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "distlock-waiter"}})
	s.mustCreate(ctx, t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "distlock-waiter"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "distlock-waiter"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "distlock-waiter", Namespace: ns}},
	})
	s.mustCreate(ctx, t, &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report"},
		Spec: locksv1alpha1.DistributedLockSpec{
			Backend:       bc.spec(),
			LeaseDuration: &metav1.Duration{Duration: 10 * time.Second},
		},
	})
	recordDir := filepath.Join(s.recordDir, bc.name)
	if err := os.MkdirAll(recordDir, 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(recordDir, "record.log"))

	jobs := map[string]int32{"nightly": 4, "adhoc": 2}
	for name, completions := range jobs {
		s.mustCreate(ctx, t, s.gatedJob(ns, name, "report", recordDir, completions))
	}

	// While one pod holds the lock the others wait in Init: show it.
	lock := s.waitLock(ctx, t, ns, "report", "held with pods waiting", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Holders) == 1 && l.Status.WaitingCount >= 2
	})
	// Show it once the holder is inside its critical section.
	s.waitRecord(ctx, t, recordDir, "start", lock.Status.Holders[0].Pod)
	t.Logf("kubectl get distributedlocks -n %s:\n%s", ns, s.run(t, nil, s.kubectl, "get", "distributedlocks", "-n", ns, "-o", "wide"))
	t.Logf("kubectl get pods -n %s:\n%s", ns, s.run(t, nil, s.kubectl, "get", "pods", "-n", ns, "-o", "wide"))
	pods := s.run(t, nil, s.kubectl, "get", "pods", "-n", ns)
	if !strings.Contains(pods, "Init:0/1") {
		t.Errorf("no pod waits in its init container while %s holds the lock:\n%s", lock.Status.Holders[0].Pod, pods)
	}

	// A waiting pod is deleted: the others carry on.
	waiter := lock.Status.Waiting[len(lock.Status.Waiting)-1].Pod
	s.deletePod(ctx, t, ns, waiter)
	// The holder is deleted in its critical section: the lock passes on once
	// it has stopped.
	holder := s.waitLock(ctx, t, ns, "report", "held by a fresh holder", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Holders) == 1 && l.Status.Holders[0].Pod != lock.Status.Holders[0].Pod
	}).Status.Holders[0].Pod
	s.waitRecord(ctx, t, recordDir, "start", holder)
	s.deletePod(ctx, t, ns, holder)

	for name, completions := range jobs {
		s.waitJobComplete(ctx, t, ns, name, completions)
	}
	s.waitLock(ctx, t, ns, "report", "free after every Job completed", func(l *locksv1alpha1.DistributedLock) bool {
		return len(l.Status.Holders) == 0 && l.Status.WaitingCount == 0
	})

	sections := readRecord(t, filepath.Join(recordDir, "record.log"))
	checkNoOverlap(t, sections)
	var total int32
	for _, c := range jobs {
		total += c
	}
	if int32(len(sections)) < total {
		t.Errorf("%d critical sections recorded; want at least %d (one per completion)", len(sections), total)
	}
	t.Logf("%d critical sections, none overlapping; fencing tokens in order: %v", len(sections), tokens(sections))
}

func (s *suite) mustCreate(ctx context.Context, t *testing.T, obj client.Object) {
	t.Helper()
	if err := s.c.Create(ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// gatedJob is a Job whose pods wait for the lock in an init container (the
// waiter, from the distlock image) and then run the worker.
func (s *suite) gatedJob(ns, name, lockName, recordDir string, completions int32) *batchv1.Job {
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	podEnv := []corev1.EnvVar{fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace"), fieldEnv("POD_UID", "metadata.uid")}
	tokenMount := corev1.VolumeMount{Name: "distlock", MountPath: "/distlock"}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: batchv1.JobSpec{
			Parallelism:  ptr.To[int32](2),
			Completions:  ptr.To(completions),
			BackoffLimit: ptr.To[int32](6),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{locksv1alpha1.LockLabel: lockName}},
				Spec: corev1.PodSpec{
					ServiceAccountName:            "distlock-waiter",
					RestartPolicy:                 corev1.RestartPolicyNever,
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					InitContainers: []corev1.Container{{
						Name:            "wait-for-lock",
						Image:           s.image,
						ImagePullPolicy: corev1.PullNever,
						Command:         []string{"/waiter"},
						Args:            []string{"--lock", lockName, "--timeout", "10m"},
						Env:             podEnv,
						VolumeMounts:    []corev1.VolumeMount{tokenMount},
					}},
					Containers: []corev1.Container{{
						Name:            "work",
						Image:           s.workerImage,
						ImagePullPolicy: corev1.PullNever,
						Command:         []string{"/worker", "--hold", "3s"},
						Env:             podEnv,
						VolumeMounts:    []corev1.VolumeMount{tokenMount, {Name: "record", MountPath: "/record"}},
					}},
					Volumes: []corev1.Volume{
						{Name: "distlock", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "record", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
							Path: recordDir, Type: ptr.To(corev1.HostPathDirectory),
						}}},
					},
				},
			},
		},
	}
}

func (s *suite) waitLock(ctx context.Context, t *testing.T, ns, name, what string, cond func(*locksv1alpha1.DistributedLock) bool) *locksv1alpha1.DistributedLock {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var lock locksv1alpha1.DistributedLock
		err := s.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &lock)
		if err == nil && cond(&lock) {
			return &lock
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock %s/%s not %s within 3m (err %v); status %+v\npods:\n%s", ns, name, what, err, lock.Status,
				s.run(t, nil, s.kubectl, "get", "pods", "-n", ns, "-o", "wide"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *suite) deletePod(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := s.c.Delete(ctx, pod); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting pod %s: %v", name, err)
	}
	t.Logf("deleted pod %s", name)
}

func (s *suite) waitJobComplete(ctx context.Context, t *testing.T, ns, name string, completions int32) {
	t.Helper()
	deadline := time.Now().Add(8 * time.Minute)
	for {
		var job batchv1.Job
		if err := s.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &job); err != nil {
			t.Fatalf("reading job %s: %v", name, err)
		}
		if job.Status.Succeeded >= completions {
			return
		}
		for _, c := range job.Status.Conditions {
			if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
				t.Fatalf("job %s failed: %s", name, c.Message)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %d of %d completions after 8m\npods:\n%s", name, job.Status.Succeeded, completions,
				s.run(t, nil, s.kubectl, "get", "pods", "-n", ns, "-o", "wide"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitRecord waits until the record has a line of kind what for pod.
func (s *suite) waitRecord(ctx context.Context, t *testing.T, dir, what, pod string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for ctx.Err() == nil {
		data, _ := os.ReadFile(filepath.Join(dir, "record.log"))
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) == 4 && f[0] == what && f[2] == pod {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q record for pod %s within 3m; record:\n%s", what, pod, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// section is one critical section as the worker recorded it.
type section struct {
	pod        string
	token      int64
	start, end time.Time
}

func readRecord(t *testing.T, path string) []section {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening the record: %v", err)
	}
	defer f.Close()
	open := map[string]*section{}
	var done []section
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 {
			t.Fatalf("malformed record line %q", sc.Text())
		}
		ns, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			t.Fatalf("malformed time in %q", sc.Text())
		}
		token, err := strconv.ParseInt(fields[3], 10, 64)
		if err != nil {
			t.Fatalf("malformed fencing token in %q", sc.Text())
		}
		at, pod := time.Unix(0, ns), fields[2]
		switch fields[0] {
		case "start":
			open[pod] = &section{pod: pod, token: token, start: at}
		case "end":
			sec, ok := open[pod]
			if !ok {
				t.Fatalf("end without start for pod %s", pod)
			}
			sec.end = at
			done = append(done, *sec)
			delete(open, pod)
		}
	}
	for pod := range open {
		t.Errorf("pod %s started a critical section and never ended it", pod)
	}
	sort.Slice(done, func(i, j int) bool { return done[i].start.Before(done[j].start) })
	return done
}

// checkNoOverlap fails the test if any two critical sections overlapped or
// if fencing tokens did not increase from one section to the next.
func checkNoOverlap(t *testing.T, sections []section) {
	t.Helper()
	for i := 1; i < len(sections); i++ {
		prev, cur := sections[i-1], sections[i]
		if cur.start.Before(prev.end) {
			t.Errorf("critical sections overlap: %s [%s, %s] and %s [%s, %s]",
				prev.pod, prev.start.Format(time.StampMicro), prev.end.Format(time.StampMicro),
				cur.pod, cur.start.Format(time.StampMicro), cur.end.Format(time.StampMicro))
		}
		if cur.token <= prev.token {
			t.Errorf("fencing token of %s (%d) is not above that of %s before it (%d)", cur.pod, cur.token, prev.pod, prev.token)
		}
	}
}

func tokens(sections []section) []int64 {
	out := make([]int64, len(sections))
	for i, s := range sections {
		out[i] = s.token
	}
	return out
}
