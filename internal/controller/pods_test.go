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
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

func TestNotReadyReason(t *testing.T) {
	lock := &locksv1alpha1.DistributedLock{ObjectMeta: metav1.ObjectMeta{Name: "report"}}
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	waiting := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}
	pod := func(mutate ...func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u"},
			Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
		for _, m := range mutate {
			m(p)
		}
		return p
	}
	withInit := func(c corev1.Container, state corev1.ContainerState) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.InitContainers = append(p.Spec.InitContainers, c)
			p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, corev1.ContainerStatus{Name: c.Name, State: state})
		}
	}
	envWaiter := corev1.Container{Name: "wait", Env: []corev1.EnvVar{{Name: locksv1alpha1.WaiterLockEnv, Value: "report"}}}
	flagWaiter := corev1.Container{Name: "wait", Command: []string{"/waiter"}, Args: []string{"--lock", "report"}}
	other := corev1.Container{Name: "setup"}

	for name, tc := range map[string]struct {
		pod     *corev1.Pod
		revoked bool
		want    string // "" for ready; else a part of the reason
	}{
		"a running pod on a node can use the lock":               {pod: pod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning })},
		"a pod not scheduled to a node cannot":                   {pod: pod(func(p *corev1.Pod) { p.Spec.NodeName = "" }), want: "not scheduled"},
		"a gated pod whose waiter runs can (found by env)":       {pod: pod(withInit(envWaiter, running))},
		"a gated pod whose waiter runs can (found by --lock)":    {pod: pod(withInit(flagWaiter, running))},
		"a gated pod whose waiter image cannot be pulled cannot": {pod: pod(withInit(flagWaiter, waiting)), want: "waiter (init container wait) is not running"},
		"a pod whose setup runs before the waiter cannot yet": {
			pod: pod(withInit(other, running), withInit(envWaiter, waiting)), want: "waiter"},
		"a pod without a recognisable waiter can once an init container runs": {pod: pod(withInit(other, running))},
		"a pod without a recognisable waiter cannot before anything runs":     {pod: pod(withInit(other, waiting)), want: "none of its containers runs"},
		"a pod that holds another lock cannot": {
			pod: pod(func(p *corev1.Pod) {
				p.Status.Phase = corev1.PodRunning
				p.Annotations = map[string]string{locksv1alpha1.GrantedAnnotation: "other"}
			}), want: `holds lock "other"`},
		"a pod whose hold was taken away cannot": {
			pod: pod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }), revoked: true, want: "taken away"},
	} {
		t.Run(name, func(t *testing.T) {
			revoked := map[types.UID]bool{}
			if tc.revoked {
				revoked[tc.pod.UID] = true
			}
			got := notReadyReason(lock, tc.pod, revoked)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("notReadyReason = %q; want %q", got, tc.want)
			}
		})
	}
}
