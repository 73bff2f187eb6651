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

package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/backend"
	"github.com/distlock/distlock/internal/backend/conformance"
	"github.com/distlock/distlock/internal/backend/redis"
	"github.com/distlock/distlock/internal/testservers"
)

// The credentials of the Sentinel setups of these tests: the data servers'
// password, and the Sentinels' own password and ACL user.
const (
	dataPassword         = "data-s3cret"
	sentinelPassword     = "sentinel-s3cret"
	sentinelUser         = "distlock-sentinel"
	sentinelUserPassword = "sentinel-user-s3cret"
)

// newSentinelSetup starts a master, a replica and three Sentinels that all
// require credentials; dataOpts are added to the data servers' options.
func newSentinelSetup(t *testing.T, dataOpts ...testservers.RedisOption) *testservers.RedisSentinel {
	t.Helper()
	return testservers.NewRedisSentinel(t,
		testservers.WithSentinelDataOptions(append([]testservers.RedisOption{testservers.WithRedisPassword(dataPassword)}, dataOpts...)...),
		testservers.WithSentinelOptions(
			testservers.WithRedisPassword(sentinelPassword),
			testservers.WithRedisACLUser(sentinelUser, sentinelUserPassword),
		),
	)
}

// sentinelConfig is the backend.Config of s with the right credentials.
func sentinelConfig(s *testservers.RedisSentinel) backend.Config {
	return backend.Config{
		Servers:          s.SentinelAddrs(),
		SentinelMaster:   s.MasterName,
		Password:         s.Password,
		SentinelPassword: s.Sentinels[0].Password,
	}
}

func TestSentinelConformance(t *testing.T) {
	t.Parallel()
	s := newSentinelSetup(t,
		testservers.WithRedisConfig("appendonly", "yes"),
		testservers.WithRedisConfig("appendfsync", "always"),
	)
	conformance.Run(t, conformance.Harness{
		NewLocker: func(t *testing.T) backend.Locker {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := redis.New(ctx, sentinelConfig(s))
			if err != nil {
				t.Fatalf("New(sentinels %v): %v", s.SentinelAddrs(), err)
			}
			return l
		},
		KeyPrefix:   "distlock/",
		Server:      s,
		TTL:         testTTL,
		ExpiryGrace: time.Second,
	})
}

func TestSentinelCredentials(t *testing.T) {
	t.Parallel()
	s := newSentinelSetup(t)
	tests := map[string]struct {
		adjust  func(*backend.Config)
		wantErr error
	}{
		"the Sentinels' password and the servers' password": {adjust: func(*backend.Config) {}},
		"the Sentinels' ACL user": {adjust: func(c *backend.Config) {
			c.SentinelUsername, c.SentinelPassword = sentinelUser, sentinelUserPassword
		}},
		"a wrong Sentinel password": {
			adjust:  func(c *backend.Config) { c.SentinelPassword = "wrong-sentinel-pw" },
			wantErr: backend.ErrUnauthorized,
		},
		"no Sentinel password": {
			adjust:  func(c *backend.Config) { c.SentinelPassword = "" },
			wantErr: backend.ErrUnauthorized,
		},
		"the Sentinel ACL user with a wrong password": {
			adjust:  func(c *backend.Config) { c.SentinelUsername, c.SentinelPassword = sentinelUser, "wrong-user-pw" },
			wantErr: backend.ErrUnauthorized,
		},
		"the Sentinels' password but a wrong server password": {
			adjust:  func(c *backend.Config) { c.Password = "wrong-data-pw" },
			wantErr: backend.ErrUnauthorized,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := ctxFor(t, 20*time.Second)
			cfg := sentinelConfig(s)
			tc.adjust(&cfg)
			l, err := redis.New(ctx, cfg)
			if tc.wantErr != nil {
				if l != nil {
					_ = l.Close()
				}
				if !errors.Is(err, tc.wantErr) || errors.Is(err, backend.ErrUnreachable) {
					t.Fatalf("New: err = %v; want %v (and not ErrUnreachable)", err, tc.wantErr)
				}
				msg := err.Error()
				if !strings.Contains(msg, s.MasterName) || !strings.Contains(msg, "refused the credentials") {
					t.Errorf("New: error %q does not name the master and the refusal", msg)
				}
				for _, secret := range []string{cfg.Password, cfg.SentinelPassword} {
					if secret != "" && strings.Contains(msg, secret) {
						t.Errorf("New: error %q contains a password", msg)
					}
				}
				t.Logf("New: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer l.Close()
			lease, err := l.Acquire(ctx, newKey(t), "holder-a", testTTL)
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			if err := l.Release(ctx, lease); err != nil {
				t.Fatalf("Release: %v", err)
			}
		})
	}
}

// sentinelCounter reads fencing counters (key+":fencing") straight from the
// master of s.
func sentinelCounter(t *testing.T, s *testservers.RedisSentinel) func(ctx context.Context, key string) (int64, error) {
	var raw *goredis.Client
	return func(ctx context.Context, key string) (int64, error) {
		if raw == nil {
			raw = goredis.NewFailoverClient(&goredis.FailoverOptions{
				MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(),
				SentinelPassword: s.Sentinels[0].Password, Password: s.Password,
			})
			t.Cleanup(func() { _ = raw.Close() })
		}
		n, err := raw.Get(ctx, key+":fencing").Int64()
		if errors.Is(err, goredis.Nil) {
			return 0, nil
		}
		return n, err
	}
}

func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	tests := map[string]func(s *testservers.RedisSentinel) failover{
		"SENTINEL FAILOVER (the old master keeps running)": func(s *testservers.RedisSentinel) failover {
			return failover{
				start: func(ctx context.Context) (string, error) {
					from, to, err := s.Failover(ctx)
					if err != nil {
						return "", err
					}
					return fmt.Sprintf("SENTINEL FAILOVER: %s -> %s", from.Addr, to.Addr), nil
				},
				settle:  s.WaitHealthy,
				counter: sentinelCounter(t, s),
			}
		},
		"the master killed (kill -9) and the replica promoted": func(s *testservers.RedisSentinel) failover {
			var killed *testservers.Redis
			return failover{
				start: func(ctx context.Context) (string, error) {
					var err error
					if killed, err = s.KillPrimary(ctx); err != nil {
						return "", err
					}
					return "kill -9 of master " + killed.Addr, nil
				},
				settle: func(ctx context.Context) error {
					_, err := s.WaitNewPrimary(ctx, killed)
					return err
				},
				counter: sentinelCounter(t, s),
			}
		},
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newSentinelSetup(t)
			l, err := redis.New(ctxFor(t, 10*time.Second), sentinelConfig(s))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() { _ = l.Close() })
			report := runFailover(t, l, "distlock/failover/", f(s))
			t.Logf("Redis Sentinel, %s: %s", name, report)
		})
	}
}
