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
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backendpool"
)

// Secret keys the controller reads.
const (
	secretKeyUsername = "username"
	secretKeyPassword = "password"
	secretKeyCA       = "ca.crt"
	// The Redis Sentinels' own credentials (requirepass or an ACL user in
	// sentinel.conf), with redis.sentinel.
	secretKeySentinelUsername = "sentinelUsername"
	secretKeySentinelPassword = "sentinelPassword"
)

// Errors of a lock's configuration; backendReason maps them to condition
// reasons.
var (
	// errCredentials marks a problem with the Secret a lock's backend refers to.
	errCredentials = errors.New("credentials")
	// errCredentialsNotAllowed: the Secret does not allow the lock to use it.
	errCredentialsNotAllowed = errors.New("credentials not allowed")
	// errKeyNotAllowed: spec.key is refused.
	errKeyNotAllowed = errors.New("key not allowed")
	// errBackendNotAllowed: the backend address is outside the allowed ones.
	errBackendNotAllowed = errors.New("backend address not allowed")
)

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

// connect returns a reference to the backend connection of a lock, after
// checking that the lock may use its key, its backend address and its
// Secrets. The caller closes the reference.
func (r *DistributedLockReconciler) connect(ctx context.Context, lock *locksv1alpha1.DistributedLock) (*backendpool.Ref, string, error) {
	if err := r.checkKey(ctx, lock); err != nil {
		return nil, "", err
	}
	if err := checkAddresses(r.AllowedBackendAddresses, lock.Spec.Backend.Servers()); err != nil {
		return nil, "", err
	}
	cfg, fingerprint, err := r.backendConfig(ctx, lock)
	if err != nil {
		return nil, "", err
	}
	callCtx, cancel := r.backendContext(ctx)
	defer cancel()
	ref, err := r.Backends.Get(callCtx, fingerprint, lock.Spec.Backend.Name(), cfg)
	if err != nil {
		return nil, "", err
	}
	return ref, fingerprint, nil
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
		cfg.Cluster = b.Redis.Cluster != nil
		cfg.DB = int(b.Redis.DB)
		credsRef, tlsSpec = b.Redis.CredentialsSecretRef, b.Redis.TLS
	case b.ZooKeeper != nil:
		cfg.Servers = b.Servers()
		if b.ZooKeeper.SessionTimeout != nil {
			cfg.SessionTimeout = b.ZooKeeper.SessionTimeout.Duration
		}
		cfg.NodeNames = b.ZooKeeper.NodeNames
		credsRef = b.ZooKeeper.CredentialsSecretRef
	default:
		return cfg, "", errors.New("spec.backend names no backend")
	}
	cfg.DialTimeout = r.backendTimeout()
	cfg.ClientName = r.ClientName

	fp := sha256.New()
	fmt.Fprintf(fp, "%s\x00%s\x00%s\x00%t\x00%d\x00%s\x00%s\x00", lock.Spec.Backend.Name(), strings.Join(cfg.Servers, ","),
		cfg.SentinelMaster, cfg.Cluster, cfg.DB, cfg.SessionTimeout, cfg.NodeNames)
	if credsRef != nil {
		secret, err := r.secret(ctx, lock, credsRef.Name)
		if err != nil {
			return cfg, "", err
		}
		if err := readCredentials(&cfg, lock.Spec.Backend.Name(), secret.Data); err != nil {
			return cfg, "", fmt.Errorf("%w: Secret %s/%s %w", errCredentials, lock.Namespace, credsRef.Name, err)
		}
		fmt.Fprintf(fp, "%s\x00%s\x00%s\x00%s\x00", cfg.Username, cfg.Password, cfg.SentinelUsername, cfg.SentinelPassword)
	}
	if tlsSpec != nil {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: tlsSpec.ServerName}
		fmt.Fprintf(fp, "tls\x00%s\x00", tlsSpec.ServerName)
		if tlsSpec.CASecretRef != nil {
			secret, err := r.secret(ctx, lock, tlsSpec.CASecretRef.Name)
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

// readCredentials sets the credentials of cfg from the data of a
// credentials Secret, for the backend named backendName, and says what is
// missing: "password" (unless a Sentinel setup authenticates only to its
// Sentinels, with "sentinelPassword"), "username" for ZooKeeper's digest
// scheme, and "sentinelPassword" beside a "sentinelUsername". The
// Sentinel keys are read only when cfg.SentinelMaster is set.
func readCredentials(cfg *backend.Config, backendName string, data map[string][]byte) error {
	cfg.Username = string(data[secretKeyUsername])
	cfg.Password = string(data[secretKeyPassword])
	if cfg.SentinelMaster != "" {
		cfg.SentinelUsername = string(data[secretKeySentinelUsername])
		cfg.SentinelPassword = string(data[secretKeySentinelPassword])
	}
	switch {
	case cfg.Password == "" && cfg.SentinelPassword == "" && cfg.SentinelMaster != "":
		return fmt.Errorf("has neither a %q nor a %q key", secretKeyPassword, secretKeySentinelPassword)
	case cfg.Password == "" && cfg.SentinelMaster == "":
		return fmt.Errorf("has no %q key", secretKeyPassword)
	case cfg.Username != "" && cfg.Password == "":
		return fmt.Errorf("has a %q but no %q key", secretKeyUsername, secretKeyPassword)
	case cfg.SentinelUsername != "" && cfg.SentinelPassword == "":
		return fmt.Errorf("has a %q but no %q key", secretKeySentinelUsername, secretKeySentinelPassword)
	case backendName == locksv1alpha1.BackendZooKeeper && cfg.Username == "":
		return fmt.Errorf("has no %q key (ZooKeeper digest auth needs one)", secretKeyUsername)
	}
	return nil
}

// secret reads a Secret straight from the API server (the manager does not
// cache Secrets, so it needs no list or watch permission on them) and checks
// that it allows the lock to use it.
func (r *DistributedLockReconciler) secret(ctx context.Context, lock *locksv1alpha1.DistributedLock, name string) (*corev1.Secret, error) {
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: lock.Namespace, Name: name}, &secret)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w: Secret %s/%s not found", errCredentials, lock.Namespace, name)
	case err != nil:
		return nil, fmt.Errorf("reading Secret %s/%s: %w", lock.Namespace, name, err)
	}
	if !secretAllows(&secret, lock.Name) {
		return nil, fmt.Errorf("%w: Secret %s/%s does not allow DistributedLock %s to use it; if it should, "+
			"annotate it: kubectl annotate secret %s %s=%s (a comma-separated list of lock names, or *)",
			errCredentialsNotAllowed, lock.Namespace, name, lock.Name, name, locksv1alpha1.AllowedLocksAnnotation, lock.Name)
	}
	return &secret, nil
}

// secretAllows reports whether a Secret's distlock.io/allowed-locks
// annotation lists lock (or "*").
func secretAllows(secret *corev1.Secret, lock string) bool {
	for _, name := range strings.Split(secret.Annotations[locksv1alpha1.AllowedLocksAnnotation], ",") {
		if name = strings.TrimSpace(name); name == "*" || name == lock {
			return true
		}
	}
	return false
}

// checkAddresses checks every backend address against the allowed patterns
// (path.Match syntax on "host:port"); no patterns allow everything.
func checkAddresses(patterns, servers []string) error {
	if len(patterns) == 0 {
		return nil
	}
	for _, server := range servers {
		allowed := false
		for _, p := range patterns {
			if ok, _ := path.Match(p, server); ok {
				allowed = true
				break
			}
		}
		if !allowed {
			return fmt.Errorf("%w: %s matches none of the addresses this manager may connect to (%s); "+
				"ask the cluster administrator", errBackendNotAllowed, capValue(server), strings.Join(patterns, ", "))
		}
	}
	return nil
}
