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

package waiter

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseOptions(t *testing.T) {
	downwardAPI := map[string]string{
		EnvLock: "nightly-report", EnvPodName: "report-xyz", EnvPodNamespace: "batch", EnvPodUID: "1234-abcd",
	}
	without := func(keys ...string) map[string]string {
		env := map[string]string{}
		for k, v := range downwardAPI {
			env[k] = v
		}
		for _, k := range keys {
			delete(env, k)
		}
		return env
	}

	tests := map[string]struct {
		args []string
		env  map[string]string
		want Options
		// wantErr is a part of the usage error's message.
		wantErr string
	}{
		"the environment alone is enough, with the default token file and no timeout": {
			env: downwardAPI,
			want: Options{Lock: "nightly-report", Namespace: "batch", PodName: "report-xyz", PodUID: "1234-abcd",
				TokenFile: "/distlock/fencing-token"},
		},
		"flags override the environment": {
			args: []string{"--lock=other", "--pod-name=p", "--pod-namespace=ns", "--pod-uid=u",
				"--token-file=/tmp/t", "--timeout=90s"},
			env:  downwardAPI,
			want: Options{Lock: "other", Namespace: "ns", PodName: "p", PodUID: "u", TokenFile: "/tmp/t", Timeout: 90 * time.Second},
		},
		"flags alone are enough": {
			args: []string{"-lock", "l", "-pod-name", "p", "-pod-namespace", "ns", "-pod-uid", "u"},
			env:  map[string]string{},
			want: Options{Lock: "l", Namespace: "ns", PodName: "p", PodUID: "u", TokenFile: DefaultTokenFile},
		},
		"no lock name is a usage error": {
			env:     without(EnvLock),
			wantErr: "no lock to wait for: set --lock or DISTLOCK_LOCK",
		},
		"an invalid lock name is a usage error": {
			args:    []string{"--lock=Nightly_Report"},
			env:     downwardAPI,
			wantErr: `"Nightly_Report" is not a valid DistributedLock name`,
		},
		"a pod without its UID is a usage error that names what is missing": {
			env:     without(EnvPodUID),
			wantErr: "the pod's identity is incomplete: missing POD_UID (--pod-uid);",
		},
		"a pod without any identity is a usage error that names all three": {
			env:     without(EnvPodName, EnvPodNamespace, EnvPodUID),
			wantErr: "missing POD_NAME (--pod-name), POD_NAMESPACE (--pod-namespace), POD_UID (--pod-uid);",
		},
		"a negative timeout is a usage error": {
			args:    []string{"--timeout=-1s"},
			env:     downwardAPI,
			wantErr: "--timeout must not be negative",
		},
		"an unknown flag is a usage error": {
			args:    []string{"--lokc=x"},
			env:     downwardAPI,
			wantErr: "flag provided but not defined: -lokc",
		},
		"a stray argument is a usage error": {
			args:    []string{"nightly-report"},
			env:     downwardAPI,
			wantErr: "unexpected arguments: nightly-report",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseOptions(flag.NewFlagSet("", flag.ContinueOnError), tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v (exit code %d), want a usage error (exit code %d) with %q", err, ExitCode(err), ExitUsage, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(Options{})); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseOptionsHelp(t *testing.T) {
	var out strings.Builder
	_, err := ParseOptions(flag.NewFlagSet("", flag.ContinueOnError), []string{"-h"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-lock", "-pod-uid", "-timeout", "-token-file", "Exit codes: 2 usage, 3 timeout, 4 hold lost"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the help does not mention %q:\n%s", want, out.String())
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := map[string]struct {
		err  error
		want int
	}{
		"no error is success":                {err: nil, want: 0},
		"an ExitError carries its code":      {err: &ExitError{Code: ExitLost, Message: "lost"}, want: 4},
		"a wrapped ExitError too":            {err: errors.Join(errors.New("x"), &ExitError{Code: ExitTimeout}), want: 3},
		"any other error is a plain failure": {err: errors.New("boom"), want: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ExitCode(tc.err); got != tc.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}
