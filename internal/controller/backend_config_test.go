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
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backend"
)

func TestReadCredentials(t *testing.T) {
	const redis, zookeeper = locksv1alpha1.BackendRedis, locksv1alpha1.BackendZooKeeper
	tests := map[string]struct {
		backend  string
		sentinel bool
		data     map[string]string
		want     backend.Config // only the credentials
		wantErr  string
	}{
		"a Redis password": {
			backend: redis, data: map[string]string{"password": "pw"},
			want: backend.Config{Password: "pw"},
		},
		"a Redis ACL user": {
			backend: redis, data: map[string]string{"username": "app", "password": "pw"},
			want: backend.Config{Username: "app", Password: "pw"},
		},
		"a Redis Secret without a password": {
			backend: redis, data: map[string]string{"username": "app"}, wantErr: `has no "password" key`,
		},
		"Sentinel keys are ignored without Sentinels": {
			backend: redis, data: map[string]string{"password": "pw", "sentinelPassword": "spw"},
			want: backend.Config{Password: "pw"},
		},
		"Sentinels with a password of their own": {
			backend: redis, sentinel: true, data: map[string]string{"password": "pw", "sentinelPassword": "spw"},
			want: backend.Config{Password: "pw", SentinelPassword: "spw"},
		},
		"Sentinels with an ACL user of their own": {
			backend: redis, sentinel: true,
			data: map[string]string{"password": "pw", "sentinelUsername": "sentinel-user", "sentinelPassword": "spw"},
			want: backend.Config{Password: "pw", SentinelUsername: "sentinel-user", SentinelPassword: "spw"},
		},
		"only the Sentinels need a password": {
			backend: redis, sentinel: true, data: map[string]string{"sentinelPassword": "spw"},
			want: backend.Config{SentinelPassword: "spw"},
		},
		"a Sentinel Secret with no password at all": {
			backend: redis, sentinel: true, data: map[string]string{"username": "app"},
			wantErr: `has neither a "password" nor a "sentinelPassword" key`,
		},
		"a Sentinel ACL user without its password": {
			backend: redis, sentinel: true, data: map[string]string{"password": "pw", "sentinelUsername": "sentinel-user"},
			wantErr: `has a "sentinelUsername" but no "sentinelPassword" key`,
		},
		"a Redis user without a password beside a Sentinel password": {
			backend: redis, sentinel: true, data: map[string]string{"username": "app", "sentinelPassword": "spw"},
			wantErr: `has a "username" but no "password" key`,
		},
		"ZooKeeper digest credentials": {
			backend: zookeeper, data: map[string]string{"username": "app", "password": "pw"},
			want: backend.Config{Username: "app", Password: "pw"},
		},
		"ZooKeeper without a username": {
			backend: zookeeper, data: map[string]string{"password": "pw"},
			wantErr: `has no "username" key (ZooKeeper digest auth needs one)`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var cfg backend.Config
			if tc.sentinel {
				cfg.SentinelMaster = "mymaster"
				tc.want.SentinelMaster = "mymaster"
			}
			data := map[string][]byte{}
			for k, v := range tc.data {
				data[k] = []byte(v)
			}
			err := readCredentials(&cfg, tc.backend, data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("readCredentials = %v; want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("readCredentials: %v", err)
			}
			if diff := cmp.Diff(tc.want, cfg); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
		})
	}
}
