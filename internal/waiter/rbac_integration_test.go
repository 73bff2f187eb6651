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
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// installerNamePrefix is config/default's namePrefix: the installer
// creates config/waiter's ClusterRole "waiter" as "distlock-waiter".
const installerNamePrefix = "distlock-"

// The waiter runs as the pod's ServiceAccount, which the sample RoleBinding
// binds to the ClusterRole distlock-waiter (config/waiter) in its own
// namespace only. These tests authenticate with a real ServiceAccount token
// (TokenRequest) against the RBAC objects read from the repository.
func TestWaiterWithOnlyTheWaiterRole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	role := readObjects[*rbacv1.ClusterRole](t, "..", "..", "config", "waiter", "role.yaml")[0]
	role.Name = installerNamePrefix + role.Name
	if err := k8sClient.Create(ctx, role); err != nil {
		t.Fatalf("creating ClusterRole %s: %v", role.Name, err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), role) })

	samples := readObjects[client.Object](t, "..", "..", "config", "samples", "waiter_service_account.yaml")

	tests := map[string]struct {
		withRoleBinding bool
	}{
		"a ServiceAccount bound to distlock-waiter by the sample RoleBinding waits and is granted the lock": {
			withRoleBinding: true,
		},
		"a ServiceAccount without the RoleBinding is refused and times out": {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			ns := newTestNamespace(ctx, t)
			var sa *corev1.ServiceAccount
			for _, obj := range samples {
				obj = obj.DeepCopyObject().(client.Object)
				obj.SetNamespace(ns)
				if _, isBinding := obj.(*rbacv1.RoleBinding); isBinding && !tc.withRoleBinding {
					continue
				}
				if s, isSA := obj.(*corev1.ServiceAccount); isSA {
					sa = s
				}
				if err := k8sClient.Create(ctx, obj); err != nil {
					t.Fatalf("creating %T %s from the sample: %v", obj, obj.GetName(), err)
				}
			}
			if sa == nil {
				t.Fatal("config/samples/waiter_service_account.yaml has no ServiceAccount")
			}
			saConfig := serviceAccountConfig(ctx, t, sa)
			createLock(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
				Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder("report-abc", 7, false)},
				Waiting: waiting(me), WaitingCount: 1,
			})

			opts := optionsFor(t, ns, me)
			if !tc.withRoleBinding {
				opts.Timeout = 2 * time.Second
				err := startWaiter(t, newWaiterClient(t, saConfig), opts).result(t)
				if ExitCode(err) != ExitTimeout || !strings.Contains(err.Error(), "no answer from the API server yet") ||
					!strings.Contains(err.Error(), "forbidden") {
					t.Fatalf("got %v (exit code %d), want a timeout that says the waiter was forbidden", err, ExitCode(err))
				}
				return
			}

			rw := startWaiter(t, newWaiterClient(t, saConfig), opts)
			rw.stdout.waitFor(t, "waiting for lock "+ns+"/nightly-report (redis): position 1 of 1, held by pod report-abc")
			setStatus(ctx, t, ns, locksv1alpha1.DistributedLockStatus{
				Backend: "redis", Holders: []locksv1alpha1.LockHolder{holder(me, 8, false)},
			})
			if err := rw.result(t); err != nil {
				t.Fatalf("the waiter failed as ServiceAccount %s: %v; stderr:\n%s", sa.Name, err, rw.stderr)
			}
			if got := rw.stderr.String(); got != "" {
				t.Errorf("the waiter reported errors:\n%s", got)
			}

			// The role reads locks in its namespace, and does nothing else.
			saClient := newWaiterClient(t, saConfig)
			var lock locksv1alpha1.DistributedLock
			if err := saClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: testLock}, &lock); err != nil {
				t.Fatalf("getting the lock as the ServiceAccount: %v", err)
			}
			lock.Status.Holders = nil
			if err := saClient.Status().Update(ctx, &lock); !apierrors.IsForbidden(err) {
				t.Errorf("updating the lock's status as the ServiceAccount: got %v, want forbidden", err)
			}
			var elsewhere locksv1alpha1.DistributedLockList
			if err := saClient.List(ctx, &elsewhere, client.InNamespace(metav1.NamespaceDefault)); !apierrors.IsForbidden(err) {
				t.Errorf("listing locks in another namespace as the ServiceAccount: got %v, want forbidden", err)
			}
		})
	}
}

// serviceAccountConfig is a client configuration that authenticates as sa
// with a token from the TokenRequest API, as a pod's projected token does.
func serviceAccountConfig(ctx context.Context, t *testing.T, sa *corev1.ServiceAccount) *rest.Config {
	t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
	if err := k8sClient.SubResource("token").Create(ctx, sa, req); err != nil {
		t.Fatalf("requesting a token for ServiceAccount %s/%s: %v", sa.Namespace, sa.Name, err)
	}
	c := rest.AnonymousClientConfig(cfg)
	c.BearerToken = req.Status.Token
	return c
}

// readObjects decodes the Kubernetes objects of a YAML file of the
// repository (documents separated by "---"), and returns those of type T.
func readObjects[T runtime.Object](t *testing.T, path ...string) []T {
	t.Helper()
	file := filepath.Join(path...)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	decoder := serializer.NewCodecFactory(scheme.Scheme).UniversalDeserializer()
	var objs []T
	for doc := range bytes.SplitSeq(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decoding %s: %v", file, err)
		}
		if o, ok := obj.(T); ok {
			objs = append(objs, o)
		}
	}
	if len(objs) == 0 {
		t.Fatalf("%s has no %T", file, *new(T))
	}
	return objs
}
