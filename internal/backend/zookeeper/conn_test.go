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

package zookeeper_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/zookeeper"
	"github.com/distlock/distlock/internal/testservers"
)

func TestCredentials(t *testing.T) {
	t.Parallel()
	srv := sharedServer(t)
	ctx := ctxFor(t, 30*time.Second)
	const user, password = "distlock", "s3cret"
	owner := connect(t, srv, backend.Config{Username: user, Password: password})
	wrong := connect(t, srv, backend.Config{Username: user, Password: "wrong"})
	anonymous := connect(t, srv, backend.Config{})
	// A top-level path of its own, so that the owner creates the ancestors.
	parent := fmt.Sprintf("/distlock-credentials-%d/ns", keySeq.Add(1))
	key := parent + "/name"

	lease, err := owner.Acquire(ctx, key, "holder-a", 30*time.Second)
	if err != nil {
		t.Fatalf("Acquire with credentials: %v", err)
	}

	// The lock node and the hold are readable and writable by the owner's
	// identity only.
	authed := rawConn(t, srv, user+":"+password)
	node := key + "/" + lockChildren(t, authed, key)[0]
	for _, path := range []string{key, node} {
		acl, _, err := authed.GetACL(path)
		if err != nil {
			t.Fatalf("GetACL(%s): %v", path, err)
		}
		if want := zk.DigestACL(zk.PermAll, user, password); !slices.Equal(acl, want) {
			t.Errorf("ACL of %s = %+v; want %+v", path, acl, want)
		}
	}
	// The ancestors are shared: others may create their locks beside ours,
	// but not change the ancestors' ACL.
	acl, _, err := authed.GetACL(parent)
	if err != nil {
		t.Fatalf("GetACL(%s): %v", parent, err)
	}
	if want := append(zk.WorldACL(zk.PermRead|zk.PermCreate|zk.PermDelete), zk.DigestACL(zk.PermAll, user, password)...); !slices.Equal(acl, want) {
		t.Errorf("ACL of the ancestor %s = %+v; want %+v", parent, acl, want)
	}
	sibling, err := anonymous.Acquire(ctx, parent+"/other", "holder-b", testTTL)
	if err != nil {
		t.Fatalf("Acquire of a sibling lock without credentials: %v", err)
	}
	if err := anonymous.Release(ctx, sibling); err != nil {
		t.Fatalf("Release of the sibling lock: %v", err)
	}

	for name, l := range map[string]backend.Locker{"wrong password": wrong, "no credentials": anonymous} {
		t.Run(name, func(t *testing.T) {
			forged := lease
			if _, err := l.Renew(ctx, forged, 30*time.Second); !errors.Is(err, backend.ErrUnauthorized) {
				t.Errorf("Renew: err = %v; want ErrUnauthorized", err)
			}
			if err := l.Release(ctx, forged); !errors.Is(err, backend.ErrUnauthorized) {
				t.Errorf("Release: err = %v; want ErrUnauthorized", err)
			} else if !strings.Contains(err.Error(), "refused the credentials") {
				t.Errorf("Release error %q does not say the credentials were refused", err)
			}
			if _, err := l.Acquire(ctx, key, "holder-b", testTTL); !errors.Is(err, backend.ErrUnauthorized) {
				t.Errorf("Acquire: err = %v; want ErrUnauthorized", err)
			}
			if _, err := l.Inspect(ctx, key); !errors.Is(err, backend.ErrUnauthorized) {
				t.Errorf("Inspect: err = %v; want ErrUnauthorized", err)
			}
			if err := l.Purge(ctx, key); !errors.Is(err, backend.ErrUnauthorized) {
				t.Errorf("Purge: err = %v; want ErrUnauthorized", err)
			}
		})
	}
	// An outside program without the credentials cannot delete the hold.
	if err := rawConn(t, srv, "").Delete(node, -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("unauthenticated Delete(%s): err = %v; want zk.ErrNoAuth", node, err)
	}

	if st, err := owner.Inspect(ctx, key); err != nil || !st.Held || st.Holder != "holder-a" || st.Token != lease.Token {
		t.Fatalf("Inspect by the owner = %+v, %v; want still held by holder-a with token %d", st, err, lease.Token)
	}
	if _, err := owner.Renew(ctx, lease, 30*time.Second); err != nil {
		t.Fatalf("Renew by the owner: %v", err)
	}
	if err := owner.Release(ctx, lease); err != nil {
		t.Fatalf("Release by the owner: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]backend.Config{
		"no servers":             {},
		"password, no username":  {Servers: []string{"127.0.0.1:2181"}, Password: "x"},
		"colon in the username":  {Servers: []string{"127.0.0.1:2181"}, Username: "a:b", Password: "x"},
		"unresolvable host name": {Servers: []string{"no-such-host.invalid:2181"}},
		"unknown node naming":    {Servers: []string{"127.0.0.1:2181"}, NodeNames: "Python"},
	} {
		l, err := zookeeper.New(ctxFor(t, 10*time.Second), cfg)
		if err == nil {
			_ = l.Close()
			t.Errorf("New with %s succeeded; want an error", name)
		}
		if cfg.NodeNames != "" && (err == nil || !strings.Contains(err.Error(), `"Kazoo"`)) {
			t.Errorf("New with %s: error %v does not name the valid namings", name, err)
		}
	}
}

func TestNewUnreachable(t *testing.T) {
	t.Parallel()
	// A port that nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	start := time.Now()
	l, err := zookeeper.New(ctxFor(t, 10*time.Second), backend.Config{Servers: []string{addr}, DialTimeout: time.Second})
	if l != nil {
		_ = l.Close()
	}
	if !errors.Is(err, backend.ErrUnreachable) {
		t.Fatalf("New(%s) with nothing listening: err = %v; want ErrUnreachable", addr, err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the address %s", err, addr)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("New with nothing listening took %v; want it to fail after about a dial timeout", took)
	}

	// The caller's context bounds New too.
	start = time.Now()
	l, err = zookeeper.New(ctxFor(t, 300*time.Millisecond), backend.Config{Servers: []string{addr}, DialTimeout: time.Minute})
	if l != nil {
		_ = l.Close()
	}
	if !errors.Is(err, backend.ErrUnreachable) {
		t.Fatalf("New(%s) with a short context: err = %v; want ErrUnreachable", addr, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("New with a 300ms context took %v", took)
	}
}

func TestHungServerIsUnreachable(t *testing.T) {
	t.Parallel()
	srv := testservers.NewZooKeeper(t)
	ctx := ctxFor(t, 60*time.Second)
	l, key := connect(t, srv, backend.Config{}), newKey(t)
	lease, err := l.Acquire(ctx, key, "holder-a", 30*time.Second)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	t.Cleanup(func() {
		if paused {
			_ = srv.Resume()
		}
	})
	// A frozen server accepts connections but never answers: only the
	// context bounds the calls.
	for name, op := range map[string]func(context.Context) error{
		"Acquire": func(ctx context.Context) error { _, err := l.Acquire(ctx, key, "holder-a", 30*time.Second); return err },
		"Renew":   func(ctx context.Context) error { _, err := l.Renew(ctx, lease, 30*time.Second); return err },
		"Inspect": func(ctx context.Context) error { _, err := l.Inspect(ctx, key); return err },
	} {
		callCtx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		start := time.Now()
		err := op(callCtx)
		cancel()
		if !errors.Is(err, backend.ErrUnreachable) {
			t.Errorf("%s on a hung server: err = %v; want ErrUnreachable", name, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s on a hung server took %v; want it bounded by its 500ms context", name, took)
		}
	}

	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	paused = false
	deadline := time.Now().Add(30 * time.Second)
	for {
		renewed, err := l.Renew(ctx, lease, 30*time.Second)
		if err == nil {
			if renewed.Token != lease.Token {
				t.Fatalf("token after the server resumed = %d; want %d", renewed.Token, lease.Token)
			}
			break
		}
		if !errors.Is(err, backend.ErrUnreachable) || time.Now().After(deadline) {
			t.Fatalf("Renew after the server resumed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := l.Release(ctx, lease); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

func TestServerWithoutTTLNodes(t *testing.T) {
	t.Parallel()
	// zoo.cfg keys that ZooKeeper does not know become system properties
	// "zookeeper.<key>", overriding the test server's default.
	srv := testservers.NewZooKeeper(t, testservers.WithZooKeeperConfig("extendedTypesEnabled", "false"))
	ctx := ctxFor(t, 30*time.Second)
	l, observer, key := connect(t, srv, backend.Config{}), rawConn(t, srv, ""), newKey(t)

	_, err := l.Acquire(ctx, key, "holder-a", testTTL)
	if err == nil || errors.Is(err, backend.ErrNotAcquired) || errors.Is(err, backend.ErrUnreachable) {
		t.Fatalf("Acquire on a server without TTL nodes: err = %v; want a plain error", err)
	}
	if !strings.Contains(err.Error(), "extendedTypesEnabled") {
		t.Errorf("Acquire error %q does not say how to enable TTL nodes", err)
	}
	if exists(t, observer, key) {
		if children := lockChildren(t, observer, key); len(children) != 0 {
			t.Errorf("children after the failed Acquire = %q; want none", children)
		}
	}
}
