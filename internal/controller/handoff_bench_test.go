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
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// BenchmarkHandoff measures how long the lock takes to pass from one holder
// to the next, on the local control plane (envtest) and real backends: from
// the moment the holder pod is reported Succeeded to the moment a watch on
// the DistributedLock shows the next pod as holder. For comparison, the
// "lease-leaderelection" case measures the same handoff with client-go's
// leader election on a coordination.k8s.io Lease (default timings 15s/10s/2s,
// release on cancel), the usual Kubernetes-native way to take turns.
//
//	hack/bench-handoff.sh   # runs this and prints the table with ratios
func BenchmarkHandoff(b *testing.B) {
	for _, bc := range backendCases() {
		b.Run("distlock-"+bc.name, func(b *testing.B) { benchmarkDistlockHandoff(b, bc) })
	}
	b.Run("lease-leaderelection", benchmarkLeaseHandoff)
}

func reportLatencies(b *testing.B, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.9), "p90-ms")
	b.ReportMetric(pct(1), "max-ms")
}

func benchmarkDistlockHandoff(b *testing.B, bc backendCase) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ns := benchNamespace(ctx, b)
	startController(b, ns)

	lock := &locksv1alpha1.DistributedLock{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"},
		Spec:       locksv1alpha1.DistributedLockSpec{Backend: bc.spec()},
	}
	if err := k8sClient.Create(ctx, lock); err != nil {
		b.Fatal(err)
	}
	pods := make([]*corev1.Pod, b.N+1)
	for i := range pods {
		pods[i] = &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("pod-%05d", i), Labels: map[string]string{locksv1alpha1.LockLabel: "bench"}},
			Spec:       corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "work", Image: "busybox"}}},
		}
		if err := k8sClient.Create(ctx, pods[i]); err != nil {
			b.Fatal(err)
		}
		if err := k8sClient.Status().Patch(ctx, pods[i], phasePatch(corev1.PodRunning)); err != nil {
			b.Fatal(err)
		}
	}
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: k8sClient.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := wc.Watch(ctx, &locksv1alpha1.DistributedLockList{}, client.InNamespace(ns))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	waitHolder := func(name string) {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				b.Fatalf("watch error: %v", ev.Object)
			}
			if l, ok := ev.Object.(*locksv1alpha1.DistributedLock); ok && len(l.Status.Holders) == 1 && l.Status.Holders[0].Pod == name {
				return
			}
		}
		b.Fatalf("watch ended before %s held the lock", name)
	}
	waitHolder(pods[0].Name)

	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := k8sClient.Status().Patch(ctx, pods[i], phasePatch(corev1.PodSucceeded)); err != nil {
			b.Fatal(err)
		}
		waitHolder(pods[i+1].Name)
		latencies = append(latencies, time.Since(start))
	}
	b.StopTimer()
	reportLatencies(b, latencies)
}

func benchmarkLeaseHandoff(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ns := benchNamespace(ctx, b)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	elect := func(ctx context.Context, id string, leading chan<- time.Time) {
		lock := &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: ns, Name: "bench"},
			Client:     cs.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		}
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   15 * time.Second,
			RenewDeadline:   10 * time.Second,
			RetryPeriod:     2 * time.Second,
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) { leading <- time.Now() },
				OnStoppedLeading: func() {},
			},
		})
	}
	latencies := make([]time.Duration, 0, b.N)
	holderCtx, stopHolder := context.WithCancel(ctx)
	leading := make(chan time.Time, 1)
	holderDone := make(chan struct{})
	go func() { defer close(holderDone); elect(holderCtx, "holder-0", leading) }()
	<-leading
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nextCtx, stopNext := context.WithCancel(ctx)
		nextLeading := make(chan time.Time, 1)
		nextDone := make(chan struct{})
		go func() { defer close(nextDone); elect(nextCtx, fmt.Sprintf("holder-%d", i+1), nextLeading) }()
		// Let the next candidate start waiting, as a queued pod would be.
		waitLeaseHolder(ctx, b, cs, ns, fmt.Sprintf("holder-%d", i))
		start := time.Now()
		stopHolder()
		<-holderDone
		got := <-nextLeading
		latencies = append(latencies, got.Sub(start))
		holderCtx, stopHolder, holderDone = nextCtx, stopNext, nextDone
	}
	b.StopTimer()
	stopHolder()
	<-holderDone
	reportLatencies(b, latencies)
}

func waitLeaseHolder(ctx context.Context, b *testing.B, cs kubernetes.Interface, ns, id string) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, "bench", metav1.GetOptions{})
		if err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == id {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("lease not held by %s within a minute", id)
}

func benchNamespace(ctx context.Context, b *testing.B) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}
