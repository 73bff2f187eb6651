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

package waiter

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// The sample Jobs are what users copy: check that they gate each pod on the
// sample lock of their backend through this waiter, and that the API server
// accepts them.
func TestSampleJobsAreGatedByTheWaiter(t *testing.T) {
	samples := filepath.Join("..", "..", "config", "samples")
	sa := readObjects[*corev1.ServiceAccount](t, samples, "waiter_service_account.yaml")[0]

	for _, sample := range []struct {
		backend string
		pods    int32
	}{{"redis", 3}, {"zookeeper", 3}, {"semaphore", 6}} {
		backend := sample.backend
		t.Run("the "+backend+" Job waits for the "+backend+" sample lock", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			lock := readObjects[*locksv1alpha1.DistributedLock](t, samples, "locks_v1alpha1_distributedlock_"+backend+".yaml")[0]
			job := readObjects[*batchv1.Job](t, samples, "locks_v1alpha1_job_gated_"+backend+".yaml")[0]
			pod := job.Spec.Template.Spec

			if got := job.Spec.Template.Labels[locksv1alpha1.LockLabel]; got != lock.Name {
				t.Errorf("pod label %s=%q, want the sample lock %q", locksv1alpha1.LockLabel, got, lock.Name)
			}
			if p, c := job.Spec.Parallelism, job.Spec.Completions; p == nil || *p != sample.pods || c == nil || *c != sample.pods {
				t.Errorf("parallelism %v, completions %v: want %d and %d", p, c, sample.pods, sample.pods)
			}
			if pod.ServiceAccountName != sa.Name {
				t.Errorf("serviceAccountName %q, want %q (waiter_service_account.yaml)", pod.ServiceAccountName, sa.Name)
			}
			if len(pod.InitContainers) != 1 || pod.InitContainers[0].Name != "wait-for-lock" {
				t.Fatalf("init containers %v, want one named wait-for-lock", pod.InitContainers)
			}
			init := pod.InitContainers[0]
			if init.Image != "controller:latest" || !slices.Equal(init.Command, []string{"/waiter"}) {
				t.Errorf("init container runs %q %q, want controller:latest (the manager's image) with /waiter", init.Image, init.Command)
			}

			// The waiter, started with the container's arguments and the
			// environment the kubelet would give it, waits for the lock.
			env := map[string]string{}
			fieldValues := map[string]string{"metadata.name": "pod-0", "metadata.namespace": "ns", "metadata.uid": "uid-0"}
			for _, e := range init.Env {
				switch {
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				case e.ValueFrom.FieldRef != nil:
					env[e.Name] = fieldValues[e.ValueFrom.FieldRef.FieldPath]
				}
			}
			opts, err := ParseOptions(flag.NewFlagSet("", flag.ContinueOnError), init.Args, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("the waiter refuses the init container's arguments and environment: %v", err)
			}
			wantOpts := Options{Lock: lock.Name, Namespace: "ns", PodName: "pod-0", PodUID: "uid-0", TokenFile: DefaultTokenFile}
			if diff := cmp.Diff(wantOpts, opts, cmpopts.IgnoreUnexported(Options{})); diff != "" {
				t.Errorf("the init container's waiter options (-want +got):\n%s", diff)
			}

			// The token's volume is shared by the waiter and the main container.
			volume := ""
			for _, m := range init.VolumeMounts {
				if m.MountPath == filepath.Dir(DefaultTokenFile) {
					volume = m.Name
				}
			}
			isEmptyDir := slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == volume && v.EmptyDir != nil })
			if volume == "" || !isEmptyDir {
				t.Errorf("the init container mounts no emptyDir volume at %s", filepath.Dir(DefaultTokenFile))
			}
			for _, c := range pod.Containers {
				if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
					return m.Name == volume && m.MountPath == filepath.Dir(DefaultTokenFile)
				}) {
					t.Errorf("container %s does not mount the token volume at %s", c.Name, filepath.Dir(DefaultTokenFile))
				}
			}

			// The API server accepts the lock and the Job as they are.
			ns := newTestNamespace(ctx, t)
			for _, obj := range []client.Object{lock, job} {
				obj.SetNamespace(ns)
				if err := k8sClient.Create(ctx, obj, client.DryRunAll); err != nil {
					t.Errorf("the API server refuses %s: %v", obj.GetName(), err)
				}
			}
		})
	}
}

// Every manifest in config/samples is listed in its kustomization.yaml, so
// `kubectl apply -k config/samples` applies them all.
func TestSamplesKustomizationListsEverySample(t *testing.T) {
	dir := filepath.Join("..", "..", "config", "samples")
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("parsing kustomization.yaml: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if name := filepath.Base(f); name != "kustomization.yaml" && !slices.Contains(k.Resources, name) {
			t.Errorf("config/samples/%s is not listed in config/samples/kustomization.yaml", name)
		}
	}
}
