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
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// writeTokenFile writes token in decimal and a newline to path, atomically:
// into a temporary file in the same directory, which is then renamed over
// path, so a reader sees either no file or the whole token. The file is
// readable by all, since the pod's main containers may run as another user.
func writeTokenFile(path string, token int64) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the token file's directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating a temporary token file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.WriteString(strconv.FormatInt(token, 10) + "\n"); err != nil {
		return fmt.Errorf("writing the token file: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("setting the token file's mode: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing the token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing the token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming the token file into place: %w", err)
	}
	return nil
}
