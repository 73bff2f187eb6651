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
	"os"
	"path/filepath"
	"testing"
)

func TestWriteTokenFile(t *testing.T) {
	tests := map[string]struct {
		// existing is the file's content before, if any.
		existing string
		token    int64
		want     string
	}{
		"a new file holds the decimal token and a newline": {token: 42, want: "42\n"},
		"an existing file is replaced whole":               {existing: "123456789\n", token: 7, want: "7\n"},
		"a large token is written in full":                 {token: 7340032000001, want: "7340032000001\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "distlock")
			path := filepath.Join(dir, "fencing-token")
			if tc.existing != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(tc.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := writeTokenFile(path, tc.token); err != nil {
				t.Fatalf("writeTokenFile: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.want {
				t.Errorf("the file holds %q (%v), want %q", got, err, tc.want)
			}
			if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o644 {
				t.Errorf("the file's mode is %v (%v), want -rw-r--r-- so that other users can read it", info.Mode(), err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 1 {
				t.Errorf("the directory holds %v (%v), want only the token file: no temporary file left", entries, err)
			}
		})
	}
}

func TestWriteTokenFileFailsWithoutLeavingATemporaryFile(t *testing.T) {
	dir := t.TempDir()
	// The token file's path is a directory: the rename must fail.
	path := filepath.Join(dir, "fencing-token")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeTokenFile(path, 1); err == nil {
		t.Fatal("writeTokenFile over a non-empty directory succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("the directory holds %v (%v), want only what was there", entries, err)
	}
}
