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
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backend"
)

// Secret keys the controller reads.
const (
	secretKeyUsername = "username"
	secretKeyPassword = "password"
	secretKeyCA       = "ca.crt"
)

// errCredentials marks a problem with the Secret a lock's backend refers to.
var errCredentials = errors.New("credentials")

// lockKey returns the backend key of a lock: spec.key, or a key derived from
// its namespace and name under a fixed prefix.
func lockKey(lock *locksv1alpha1.DistributedLock) string {
	if lock.Spec.Key != "" {
		return lock.Spec.Key
	}
	key := "distlock/" + lock.Namespace + "/" + lock.Name
	if lock.Spec.Backend.Name() == locksv1alpha1.BackendZooKeeper {
		return "/" + key
	}
	return key
}

// backendConfig turns a lock's spec and the Secrets it names into a
// backend.Config, and a fingerprint that changes whenever the config does.
func (r *DistributedLockReconciler) backendConfig(
	ctx context.Context, lock *locksv1alpha1.DistributedLock,
) (backend.Config, string, error) {
	var cfg backend.Config
	var credsRef *locksv1alpha1.SecretReference
	var tlsSpec *locksv1alpha1.TLSConfig
	switch b := lock.Spec.Backend; {
	case b.Redis != nil:
		cfg.Servers = b.Servers()
		if b.Redis.Sentinel != nil {
			cfg.SentinelMaster = b.Redis.Sentinel.MasterName
		}
		cfg.DB = int(b.Redis.DB)
		credsRef, tlsSpec = b.Redis.CredentialsSecretRef, b.Redis.TLS
	case b.ZooKeeper != nil:
		cfg.Servers = b.Servers()
		if b.ZooKeeper.SessionTimeout != nil {
			cfg.SessionTimeout = b.ZooKeeper.SessionTimeout.Duration
		}
		credsRef = b.ZooKeeper.CredentialsSecretRef
	default:
		return cfg, "", errors.New("spec.backend names no backend")
	}
	cfg.DialTimeout = r.dialTimeout()

	fp := sha256.New()
	fmt.Fprintf(fp, "%s\x00%s\x00%s\x00%d\x00%s\x00",
		lock.Spec.Backend.Name(), strings.Join(cfg.Servers, ","), cfg.SentinelMaster, cfg.DB, cfg.SessionTimeout)
	if credsRef != nil {
		secret, err := r.secret(ctx, lock.Namespace, credsRef.Name)
		if err != nil {
			return cfg, "", err
		}
		cfg.Username = string(secret.Data[secretKeyUsername])
		cfg.Password = string(secret.Data[secretKeyPassword])
		if cfg.Password == "" {
			return cfg, "", fmt.Errorf("%w: Secret %s/%s has no %q key", errCredentials, lock.Namespace, credsRef.Name, secretKeyPassword)
		}
		if lock.Spec.Backend.Name() == locksv1alpha1.BackendZooKeeper && cfg.Username == "" {
			return cfg, "", fmt.Errorf("%w: Secret %s/%s has no %q key (ZooKeeper digest auth needs one)",
				errCredentials, lock.Namespace, credsRef.Name, secretKeyUsername)
		}
		fmt.Fprintf(fp, "%s\x00%s\x00", cfg.Username, cfg.Password)
	}
	if tlsSpec != nil {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: tlsSpec.ServerName}
		fmt.Fprintf(fp, "tls\x00%s\x00", tlsSpec.ServerName)
		if tlsSpec.CASecretRef != nil {
			secret, err := r.secret(ctx, lock.Namespace, tlsSpec.CASecretRef.Name)
			if err != nil {
				return cfg, "", err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(secret.Data[secretKeyCA]) {
				return cfg, "", fmt.Errorf("%w: Secret %s/%s has no PEM certificates under %q",
					errCredentials, lock.Namespace, tlsSpec.CASecretRef.Name, secretKeyCA)
			}
			cfg.TLS.RootCAs = pool
			fp.Write(secret.Data[secretKeyCA])
		}
	}
	return cfg, hex.EncodeToString(fp.Sum(nil)), nil
}

// secret reads a Secret straight from the API server: the manager does not
// cache Secrets, so it needs no list or watch permission on them.
func (r *DistributedLockReconciler) secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &secret)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w: Secret %s/%s not found", errCredentials, namespace, name)
	case err != nil:
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	return &secret, nil
}
