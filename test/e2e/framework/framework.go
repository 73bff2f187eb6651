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

// Package framework holds what the end-to-end tests and the cluster demo
// share: installing distlock on the local cluster with config/default, and
// Jobs gated by the waiter.
package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// Settings come from hack/test-e2e.sh and hack/demo.sh, which build the
// images and bring the cluster up.
type Settings struct {
	Kubectl     string // DISTLOCK_E2E_KUBECTL
	Kustomize   string // DISTLOCK_E2E_KUSTOMIZE
	NodeIP      string // DISTLOCK_E2E_NODE_IP: the node address pods can reach
	Image       string // DISTLOCK_E2E_IMAGE: manager and waiter
	WorkerImage string // DISTLOCK_E2E_WORKER_IMAGE: the critical section
	RecordDir   string // DISTLOCK_E2E_RECORD_DIR: where workers record their sections
	Root        string // the repository
}

// SettingsFromEnv reads the settings; it fails naming the first one missing.
func SettingsFromEnv(root string) (Settings, error) {
	s := Settings{Root: root}
	for _, v := range []struct {
		name string
		dst  *string
	}{
		{"DISTLOCK_E2E_KUBECTL", &s.Kubectl}, {"DISTLOCK_E2E_KUSTOMIZE", &s.Kustomize},
		{"DISTLOCK_E2E_NODE_IP", &s.NodeIP}, {"DISTLOCK_E2E_IMAGE", &s.Image},
		{"DISTLOCK_E2E_WORKER_IMAGE", &s.WorkerImage}, {"DISTLOCK_E2E_RECORD_DIR", &s.RecordDir},
	} {
		*v.dst = os.Getenv(v.name)
		if *v.dst == "" {
			return s, fmt.Errorf("%s is not set: run through `make test-e2e` or `make demo`", v.name)
		}
	}
	return s, nil
}

// NewClient returns a client for the cluster in $KUBECONFIG that knows the
// distlock API.
func NewClient() (client.Client, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(locksv1alpha1.AddToScheme(scheme))
	cfg, err := config.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating a client: %w", err)
	}
	return c, nil
}

// Run runs a command (kubectl, kustomize) with stdin and returns its output.
func Run(ctx context.Context, stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Deploy installs distlock with config/default, the manifests a user
// applies, with the image replaced by the locally built one, and waits for
// the manager to be available.
func (s Settings) Deploy(ctx context.Context) error {
	// kustomize accepts only relative resource paths: the overlay lives in
	// bin/ (ignored by git) and points at config/default relatively.
	overlay := filepath.Join(s.Root, "bin", "e2e", "overlay")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return fmt.Errorf("creating the overlay: %w", err)
	}
	base, err := filepath.Rel(overlay, filepath.Join(s.Root, "config", "default"))
	if err != nil {
		return fmt.Errorf("locating config/default: %w", err)
	}
	name, tag := s.Image[:strings.LastIndex(s.Image, ":")], s.Image[strings.LastIndex(s.Image, ":")+1:]
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
`, base, name, tag)
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		return fmt.Errorf("writing the overlay: %w", err)
	}
	manifests, err := Run(ctx, nil, s.Kustomize, "build", overlay)
	if err != nil {
		return err
	}
	if _, err := Run(ctx, []byte(manifests), s.Kubectl, "apply", "--server-side", "-f", "-"); err != nil {
		return err
	}
	_, err = Run(ctx, nil, s.Kubectl, "-n", "distlock-system", "rollout", "status",
		"deployment/distlock-controller-manager", "--timeout=3m")
	return err
}

// waiterAccount is the ServiceAccount of gated pods, and the name of the
// ClusterRole (installed by config/default) it is bound to.
const waiterAccount = "distlock-waiter"

// PrepareNamespace creates ns with the waiter's ServiceAccount bound to the
// distlock-waiter ClusterRole, as a namespace owner would.
func PrepareNamespace(ctx context.Context, c client.Client, ns string) error {
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: waiterAccount}},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: waiterAccount},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: waiterAccount},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: waiterAccount, Namespace: ns}},
		},
	} {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

// GatedJob is a Job whose pods wait for the lock in an init container (the
// waiter, from the distlock image) and then run the worker for hold, which
// records its critical section in recordDir on the node.
func (s Settings) GatedJob(ns, name, lockName, recordDir string, parallelism, completions int32, hold time.Duration) *batchv1.Job {
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	podEnv := []corev1.EnvVar{
		fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace"), fieldEnv("POD_UID", "metadata.uid"),
	}
	tokenMount := corev1.VolumeMount{Name: "distlock", MountPath: "/distlock"}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: batchv1.JobSpec{
			Parallelism:  ptr.To(parallelism),
			Completions:  ptr.To(completions),
			BackoffLimit: ptr.To[int32](6),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{locksv1alpha1.LockLabel: lockName}},
				Spec: corev1.PodSpec{
					ServiceAccountName:            waiterAccount,
					RestartPolicy:                 corev1.RestartPolicyNever,
					TerminationGracePeriodSeconds: ptr.To[int64](10),
					InitContainers: []corev1.Container{{
						Name:            "wait-for-lock",
						Image:           s.Image,
						ImagePullPolicy: corev1.PullNever,
						Command:         []string{"/waiter"},
						Args:            []string{"--lock", lockName, "--timeout", "10m"},
						Env:             podEnv,
						VolumeMounts:    []corev1.VolumeMount{tokenMount},
					}},
					Containers: []corev1.Container{{
						Name:            "work",
						Image:           s.WorkerImage,
						ImagePullPolicy: corev1.PullNever,
						Command:         []string{"/worker", "--hold", hold.String()},
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

// JobDone reports whether the Job has all its completions, and an error if
// it failed.
func JobDone(ctx context.Context, c client.Client, ns, name string) (bool, error) {
	var job batchv1.Job
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &job); err != nil {
		return false, fmt.Errorf("reading job %s: %w", name, err)
	}
	for _, cond := range job.Status.Conditions {
		if cond.Type == batchv1.JobFailed && cond.Status == corev1.ConditionTrue {
			return false, fmt.Errorf("job %s failed: %s", name, cond.Message)
		}
	}
	return job.Spec.Completions != nil && job.Status.Succeeded >= *job.Spec.Completions, nil
}
