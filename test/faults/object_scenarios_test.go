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

package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// Scenario 6: the API objects.

func TestLockDeletedAndReappliedWhileHeld(t *testing.T) {
	scenario{name: "lock deleted and re-applied while held", holdFor: longerHolds, inject: func(ctx context.Context, ce *cell) error {
		run, err := ce.pickHolder(ctx)
		if err != nil {
			return err
		}
		lock := &locksv1alpha1.DistributedLock{ObjectMeta: metav1.ObjectMeta{Namespace: ce.ns, Name: run.lock}}
		if err := ce.c.Delete(ctx, lock); err != nil {
			return fmt.Errorf("deleting lock %s: %w", run.lock, err)
		}
		ce.fault("lock deleted")
		// The lock goes once its holder has ended; then it is applied again.
		for {
			err := ce.c.Get(ctx, client.ObjectKeyFromObject(lock), lock)
			if apierrors.IsNotFound(err) {
				break
			}
			if err := sleep(ctx, 20*time.Millisecond); err != nil {
				return fmt.Errorf("waiting for lock %s to go: %w", run.lock, err)
			}
		}
		ce.createLock(ctx, run.lock)
		ce.healAt("lock deleted", run.lock, time.Time{})
		return nil
	}}.run(t)
}

const (
	password        = "first-password"
	rotatedPassword = "second-password"
)

func TestCredentialsSecretDeletedAndRestored(t *testing.T) {
	scenario{name: "credentials Secret deleted past the lease, restored", spec: cellSpec{password: password},
		inject: func(ctx context.Context, ce *cell) error {
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ce.ns, Name: secretName}}
			if err := ce.c.Delete(ctx, secret); err != nil {
				return fmt.Errorf("deleting the Secret: %w", err)
			}
			ce.fault("Secret deleted")
			if err := sleep(ctx, pastTheLease); err != nil {
				return err
			}
			ce.writeSecret(ctx, password)
			ce.heal("Secret deleted")
			return nil
		}}.run(t)
}

func TestCredentialsSecretRotated(t *testing.T) {
	current := password
	scenario{name: "redis password rotated, then its Secret 2 s later", backends: redisOnly, spec: cellSpec{password: password},
		inject: func(ctx context.Context, ce *cell) error {
			next := rotatedPassword
			if current == rotatedPassword {
				next = password
			}
			admin := redis.NewClient(&redis.Options{Addr: ce.redis.Addr, Password: current})
			defer func() { _ = admin.Close() }()
			if err := admin.ConfigSet(ctx, "requirepass", next).Err(); err != nil {
				return fmt.Errorf("rotating the password: %w", err)
			}
			current = next
			ce.fault("password rotated")
			if err := sleep(ctx, 2*time.Second); err != nil {
				return err
			}
			ce.writeSecret(ctx, next)
			ce.heal("password rotated")
			return nil
		}}.run(t)
}
