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

package leader

import (
	"context"
	"testing"
	"time"
)

func TestADisabledElectorAlwaysLeadsAndAnnouncesItOnce(t *testing.T) {
	e, err := New(nil, Config{Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if !e.Leading() || !e.MayRenewHolds() || e.NeedLeaderElection() {
		t.Fatalf("before Start: %s", e)
	}
	started := make(chan struct{}, 2)
	e.OnStartedLeading(func() { started <- struct{}{} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Start(ctx) }()
	receive(t, started, 5*time.Second, "OnStartedLeading")
	if err := e.Start(ctx); err == nil {
		t.Error("a second Start succeeded")
	}
	cancel()
	if err := receive(t, done, 5*time.Second, "Start returns"); err != nil {
		t.Errorf("Start: %v", err)
	}
	if !e.Leading() || !e.MayRenewHolds() || e.Status().Role != RoleDisabled {
		t.Errorf("after Start: %s", e)
	}
	if len(started) != 0 {
		t.Error("OnStartedLeading ran twice")
	}
	if got, want := e.String(), "disabled: leader election is off; this replica acts as the only leader"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
