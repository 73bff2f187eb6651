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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/distlock/distlock/internal/podqueue"
)

// podEvents keeps line up to date from pod events and asks for a reconcile
// of the lock each pod asks for (both locks when a pod is relabelled). The
// line is updated before the reconcile is queued, in the same handler, so a
// reconcile never misses the change that queued it.
func podEvents(line *podqueue.Index) handler.EventHandler {
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	enqueue := func(q queue, obj client.Object) {
		if pod, ok := obj.(*corev1.Pod); ok {
			if lock, ok := line.LockOf(pod); ok {
				q.Add(reconcile.Request{NamespacedName: lock})
			}
		}
	}
	set := func(obj client.Object) {
		if pod, ok := obj.(*corev1.Pod); ok {
			line.Set(pod)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q queue) {
			set(e.Object)
			enqueue(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			set(e.ObjectNew)
			enqueue(q, e.ObjectOld)
			enqueue(q, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) {
			line.Delete(e.Object.GetUID())
			enqueue(q, e.Object)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q queue) {
			set(e.Object)
			enqueue(q, e.Object)
		},
	}
}
