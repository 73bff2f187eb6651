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
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestConfigDefaults(t *testing.T) {
	got, err := Config{Namespace: "ns"}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if !strings.HasPrefix(got.Identity, host+"_") || len(got.Identity) != len(host)+1+36 {
		t.Errorf("identity %q, want %q followed by _ and a UUID", got.Identity, host)
	}
	want := Config{
		Namespace:      "ns",
		Name:           "manager.distlock.io",
		LeaseDuration:  3 * time.Second,
		RenewDeadline:  2 * time.Second,
		RetryPeriod:    500 * time.Millisecond,
		APICallTimeout: 300 * time.Millisecond,
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Config{}, "Identity", "Logger")); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the defaults are invalid: %v", err)
	}
	again, _ := Config{Namespace: "ns"}.WithDefaults()
	if again.Identity == got.Identity {
		t.Errorf("two default identities are equal: %q", got.Identity)
	}
	for name, c := range map[string]struct{ got, want time.Duration }{
		"failover bound: L + 2×2.2×R":   {got.FailoverBound(), 5200 * time.Millisecond},
		"step-down delay: L − D":        {got.StepDownDelay(), time.Second},
		"handover bound: L − D + 2.2×R": {got.HandoverBound(), 2100 * time.Millisecond},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", name, c.got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func(mutate func(*Config)) Config {
		c, err := Config{Namespace: "ns", Identity: "me"}.WithDefaults()
		if err != nil {
			t.Fatal(err)
		}
		mutate(&c)
		return c
	}
	cases := map[string]struct {
		config Config
		// want is part of the error message; empty for a valid config.
		want string
	}{
		"the defaults are valid": {
			config: valid(func(*Config) {}),
		},
		"controller-runtime's timings are valid": {
			config: valid(func(c *Config) {
				c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
				c.APICallTimeout = 0
				*c, _ = c.WithDefaults()
			}),
		},
		"a disabled elector needs nothing": {
			config: Config{Disabled: true},
		},
		"the namespace is required": {
			config: valid(func(c *Config) { c.Namespace = "" }),
			want:   "--leader-election-namespace",
		},
		"the namespace must be a DNS label": {
			config: valid(func(c *Config) { c.Namespace = "Not_A_Label" }),
			want:   `namespace "Not_A_Label"`,
		},
		"the Lease name must be a DNS subdomain": {
			config: valid(func(c *Config) { c.Name = "a/b" }),
			want:   `Lease name "a/b"`,
		},
		"the identity must not be blank": {
			config: valid(func(c *Config) { c.Identity = " " }),
			want:   "identity is empty",
		},
		"the lease duration must be whole seconds": {
			config: valid(func(c *Config) { c.LeaseDuration = 3500 * time.Millisecond }),
			want:   "whole number of seconds",
		},
		"the renew deadline must be shorter than the lease duration": {
			config: valid(func(c *Config) { c.RenewDeadline = 3 * time.Second }),
			want:   "shorter than leaseDuration",
		},
		"the retry period must be positive": {
			config: valid(func(c *Config) { c.RetryPeriod = -time.Second }),
			want:   "retryPeriod -1s must be positive",
		},
		"answers must come more often than the renew deadline": {
			config: valid(func(c *Config) { c.APICallTimeout = 500 * time.Millisecond }),
			want:   "must exceed 2.2×retryPeriod + 2×apiCallTimeout",
		},
		"a retry period too long for the renew deadline leaves no call time-out": {
			config: valid(func(c *Config) {
				c.RetryPeriod, c.APICallTimeout = time.Second, 0
				*c, _ = c.WithDefaults()
			}),
			want: "apiCallTimeout",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.config.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("no error, want one containing %q", tc.want)
			case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig)):
				t.Errorf("error %q, want one wrapping ErrInvalidConfig and containing %q", err, tc.want)
			}
		})
	}
}

func TestNewRejectsAnInvalidConfig(t *testing.T) {
	if _, err := New(apiConfig, Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New without a namespace: %v, want ErrInvalidConfig", err)
	}
	if _, err := New(nil, Config{Namespace: "ns"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New without a REST config: %v, want ErrInvalidConfig", err)
	}
}
