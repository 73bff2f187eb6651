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
	"errors"
	"testing"
)

// The slots were read from a real redis-server 7.0 with CLUSTER KEYSLOT.
func TestKeySlotMatchesClusterKeyslot(t *testing.T) {
	tests := map[string]struct {
		key  string
		slot int
	}{
		"a short key":       {"foo", 12182},
		"another short key": {"bar", 5061},
		"the CRC16 check string of the specification": {"123456789", 12739},
		"the default key layout":                      {"distlock/ns/reports", 13448},
		"the default layout's cluster counter":        {"{distlock/ns/reports}:fencing", 13448},
		"a key with a hash tag":                       {"locks:{reports}:nightly", 5152},
		"the tagged key's counter":                    {"locks:{reports}:nightly:fencing", 5152},
		"an empty tag hashes the whole key":           {"a{}b", 13694},
		"a '{' without a '}' hashes the whole key":    {"a{b", 13340},
		"a '}' before the first '{' is no tag":        {"a}b{c}", 7365},
		"the tag ends at the first '}' after the '{'": {"{a}b}", 15495},
		"only the first tag counts":                   {"x{y}z{w}", 12222},
		"the example of the specification":            {"{user1000}.following", 3443},
		"the same slot as the tag alone":              {"user1000", 3443},
		"bytes beyond ASCII":                          {"ünïcode", 6051},
		"'{}' alone":                                  {"{}", 15257},
		"a key with '}' and no tag":                   {"a}b", 7866},
		"an unclosed tag at the start":                {"{a", 10276},
	}
	for name, tc := range tests {
		if got := keySlot(tc.key); got != tc.slot {
			t.Errorf("%s: keySlot(%q) = %d; want %d (CLUSTER KEYSLOT)", name, tc.key, got, tc.slot)
		}
	}
}

func TestCRC16IsXMODEM(t *testing.T) {
	// The check value of CRC-16/XMODEM, and of the reference implementation
	// in the Redis Cluster specification.
	if got := crc16("123456789"); got != 0x31c3 {
		t.Fatalf("crc16(%q) = %#04x; want 0x31c3", "123456789", got)
	}
}

func TestCounterKey(t *testing.T) {
	tests := map[string]struct {
		key     string
		cluster bool
		want    string
		wantErr error
	}{
		"a single server keeps the layout existing locks have": {
			key: "distlock/ns/reports", want: "distlock/ns/reports:fencing",
		},
		"a single server keeps it even for a key no cluster could use": {
			key: "a}b", want: "a}b:fencing",
		},
		"on a cluster, a key without a hash tag becomes the counter's tag": {
			key: "distlock/ns/reports", cluster: true, want: "{distlock/ns/reports}:fencing",
		},
		"on a cluster, a key with a hash tag keeps the usual suffix": {
			key: "locks:{reports}:nightly", cluster: true, want: "locks:{reports}:nightly:fencing",
		},
		"on a cluster, a tag after a stray '}' still counts": {
			key: "a}b{c}", cluster: true, want: "a}b{c}:fencing",
		},
		"on a cluster, an unclosed '{' is wrapped whole": {
			key: "a{b", cluster: true, want: "{a{b}:fencing",
		},
		"on a cluster, an empty tag is no tag, and the key has no other '}'": {
			key: "a{}", cluster: true, wantErr: ErrClusterKeyWithoutHashTag,
		},
		"on a cluster, a '}' without a tag leaves no counter in the key's slot": {
			key: "a}b", cluster: true, wantErr: ErrClusterKeyWithoutHashTag,
		},
		"on a cluster, an empty tag followed by a real one is still no tag": {
			key: "a{}b{c}", cluster: true, wantErr: ErrClusterKeyWithoutHashTag,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := counterKey(tc.key, tc.cluster)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || got != "" {
					t.Fatalf("counterKey(%q, %v) = %q, %v; want %v", tc.key, tc.cluster, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("counterKey(%q, %v) = %q, %v; want %q", tc.key, tc.cluster, got, err, tc.want)
			}
			if tc.cluster && keySlot(got) != keySlot(tc.key) {
				t.Fatalf("counter %q is in slot %d, the key %q in slot %d", got, keySlot(got), tc.key, keySlot(tc.key))
			}
		})
	}
}
