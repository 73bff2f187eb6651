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

package holder

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIdentityNamingItsLockRoundTrips(t *testing.T) {
	id := Identity{Cluster: "c1", Namespace: "batch", Lock: "report", LockUID: "9d1c-77",
		Pod: "report-x7k2p", UID: "0b9e5d1c-1111-4111-8111-111111111111"}
	s := id.String()
	if want := "distlock:v2:c1:batch:report:9d1c-77:report-x7k2p:0b9e5d1c-1111-4111-8111-111111111111"; s != want {
		t.Fatalf("String() = %q; want %q", s, want)
	}
	got, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	if diff := cmp.Diff(id, got); diff != "" {
		t.Errorf("Parse(String()) differs (-want +got):\n%s", diff)
	}
	if got.Legacy() {
		t.Errorf("an identity naming its lock reports Legacy()")
	}
}

func TestValidateClusterID(t *testing.T) {
	for id, ok := range map[string]bool{
		"6f1c2d1e-0000-4000-8000-000000000001": true,
		"prod-eu/1":                            true,
		"":                                     false,
		"a:b":                                  false,
		"has space":                            false,
		"tab\there":                            false,
		"é":                                    false,
		string(make([]byte, MaxClusterIDLength+1)): false,
	} {
		if err := ValidateClusterID(id); (err == nil) != ok {
			t.Errorf("ValidateClusterID(%q) = %v; want ok=%v", id, err, ok)
		}
	}
}

func TestIdentityRoundTrips(t *testing.T) {
	id := Identity{Cluster: "6f1c2d1e-0000-4000-8000-000000000001", Namespace: "batch", Pod: "report-x7k2p", UID: "0b9e5d1c-1111-4111-8111-111111111111"}
	s := id.String()
	if want := "distlock:v1:6f1c2d1e-0000-4000-8000-000000000001:batch:report-x7k2p:0b9e5d1c-1111-4111-8111-111111111111"; s != want {
		t.Fatalf("String() = %q; want %q", s, want)
	}
	got, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	if diff := cmp.Diff(id, got); diff != "" {
		t.Errorf("Parse(String()) differs (-want +got):\n%s", diff)
	}
}

func TestParseRejectsValuesNotMadeByDistlock(t *testing.T) {
	for name, value := range map[string]string{
		"a redsync-style random value":       "q2V0dGVyIGZvciBtZSB0byBiZQ==",
		"an empty value":                     "",
		"a prefix with too few parts":        "distlock:v1:cluster:ns:pod",
		"a prefix with too many parts":       "distlock:v1:cluster:ns:pod:uid:extra",
		"a prefix with an empty part":        "distlock:v1:cluster::pod:uid",
		"a v2 identity with v1's part count": "distlock:v2:cluster:ns:pod:uid",
		"a v2 identity with an empty lock":   "distlock:v2:cluster:ns::luid:pod:uid",
		"a future format version":            "distlock:v3:cluster:ns:lock:luid:pod:uid",
		"a Curator node's data (an address)": "10.0.0.7",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(value); !errors.Is(err, ErrNotOurs) {
				t.Errorf("Parse(%q) error = %v; want ErrNotOurs", value, err)
			}
		})
	}
}

func TestValidateRejectsSeparatorsInParts(t *testing.T) {
	id := Identity{Cluster: "a:b", Namespace: "ns", Pod: "p", UID: "u"}
	if err := id.Validate(); err == nil {
		t.Fatalf("Validate() accepted a cluster id with a colon")
	}
}
