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

package redis

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/distlock/distlock/internal/backend"
)

// settings are the go-redis settings that must be the same in every mode.
type settings struct {
	Addrs                                  []string
	Username, Password                     string
	SentinelUsername, SentinelPassword     string
	MasterName, ClientName                 string
	DB                                     int
	TLS                                    *tls.Config
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
	MaxRetries, DialerRetries              int
	ContextTimeoutEnabled, MaintNotesOff   bool
}

// built returns the settings of the go-redis options that newClient passes
// to the client of mode m.
func built(t *testing.T, m mode, cfg backend.Config) settings {
	t.Helper()
	_, opts, err := clientOptions(cfg)
	if err != nil {
		t.Fatalf("clientOptions: %v", err)
	}
	switch m {
	case modeSentinel:
		o := opts.Failover()
		return settings{
			Addrs: o.SentinelAddrs, Username: o.Username, Password: o.Password,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			MasterName: o.MasterName, ClientName: o.ClientName, DB: o.DB, TLS: o.TLSConfig,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			MaxRetries: o.MaxRetries, DialerRetries: o.DialerRetries,
			// go-redis turns maintenance notifications off for Sentinel
			// clients itself.
			ContextTimeoutEnabled: o.ContextTimeoutEnabled, MaintNotesOff: true,
		}
	case modeCluster:
		o := opts.Cluster()
		return settings{
			Addrs: o.Addrs, Username: o.Username, Password: o.Password,
			ClientName: o.ClientName, TLS: o.TLSConfig,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			MaxRetries: o.MaxRetries, DialerRetries: o.DialerRetries,
			ContextTimeoutEnabled: o.ContextTimeoutEnabled, MaintNotesOff: o.MaintNotificationsConfig.Mode == maintnotifications.ModeDisabled,
		}
	default:
		o := opts.Simple()
		return settings{
			Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password,
			ClientName: o.ClientName, DB: o.DB, TLS: o.TLSConfig,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
			MaxRetries: o.MaxRetries, DialerRetries: o.DialerRetries,
			ContextTimeoutEnabled: o.ContextTimeoutEnabled, MaintNotesOff: o.MaintNotificationsConfig.Mode == maintnotifications.ModeDisabled,
		}
	}
}

func TestClientOptionsAreTheSameInEveryMode(t *testing.T) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: "redis.example"}
	common := settings{
		Username: "app", Password: "pw", ClientName: "distlock-0", TLS: tlsConfig,
		DialTimeout: 3 * time.Second, ReadTimeout: commandTimeout, WriteTimeout: commandTimeout,
		MaxRetries: maxRetries, DialerRetries: dialerRetries,
		ContextTimeoutEnabled: true, MaintNotesOff: true,
	}
	base := backend.Config{
		Username: "app", Password: "pw", ClientName: "distlock-0", TLS: tlsConfig, DialTimeout: 3 * time.Second,
	}
	tests := map[string]struct {
		cfg    func(backend.Config) backend.Config
		mode   mode
		adjust func(*settings)
	}{
		"one server: the first address, with its database": {
			cfg: func(c backend.Config) backend.Config {
				c.Servers, c.DB = []string{"r:6379", "ignored:6379"}, 3
				return c
			},
			mode:   modeSingle,
			adjust: func(s *settings) { s.Addrs, s.DB = []string{"r:6379"}, 3 },
		},
		"Sentinel: every Sentinel, contacted with the Sentinels' own credentials": {
			cfg: func(c backend.Config) backend.Config {
				c.Servers, c.SentinelMaster, c.DB = []string{"s0:26379", "s1:26379"}, "mymaster", 2
				c.SentinelUsername, c.SentinelPassword = "sentinel-user", "sentinel-pw"
				return c
			},
			mode: modeSentinel,
			adjust: func(s *settings) {
				s.Addrs, s.MasterName, s.DB = []string{"s0:26379", "s1:26379"}, "mymaster", 2
				s.SentinelUsername, s.SentinelPassword = "sentinel-user", "sentinel-pw"
			},
		},
		"Cluster: every seed node": {
			cfg: func(c backend.Config) backend.Config {
				c.Servers, c.Cluster = []string{"c0:6379", "c1:6379", "c2:6379"}, true
				return c
			},
			mode:   modeCluster,
			adjust: func(s *settings) { s.Addrs = []string{"c0:6379", "c1:6379", "c2:6379"} },
		},
		"no dial timeout: the default": {
			cfg: func(c backend.Config) backend.Config {
				c.Servers, c.DialTimeout = []string{"r:6379"}, 0
				return c
			},
			mode:   modeSingle,
			adjust: func(s *settings) { s.Addrs, s.DialTimeout = []string{"r:6379"}, DefaultDialTimeout },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := tc.cfg(base)
			m, _, err := clientOptions(cfg)
			if err != nil || m != tc.mode {
				t.Fatalf("clientOptions: mode %v, %v; want mode %v", m, err, tc.mode)
			}
			want := common
			tc.adjust(&want)
			if diff := cmp.Diff(want, built(t, m, cfg), cmp.Comparer(func(a, b *tls.Config) bool { return a == b })); diff != "" {
				t.Errorf("go-redis options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClientOptionsRefuseWhatCannotWork(t *testing.T) {
	tests := map[string]struct {
		cfg  backend.Config
		want string
	}{
		"no address":                           {backend.Config{}, "no server address"},
		"both a Sentinel and a cluster":        {backend.Config{Servers: []string{"x:1"}, SentinelMaster: "m", Cluster: true}, "choose one"},
		"a database other than 0 on a cluster": {backend.Config{Servers: []string{"x:1"}, Cluster: true, DB: 1}, "only database 0"},
	}
	for name, tc := range tests {
		if _, _, err := clientOptions(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: clientOptions(%+v) = %v; want an error saying %q", name, tc.cfg, err, tc.want)
		}
	}
}
