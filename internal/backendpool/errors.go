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

package backendpool

import (
	"fmt"
	"time"
)

// DialError is a failed dial. The Get that made the dial, the Gets that
// shared it, and every Get for the same fingerprint until RetryAt return
// the same *DialError, so its message stays the same for the whole back-off
// period. It wraps the backend's error: errors.Is(err,
// backend.ErrUnreachable) and errors.Is(err, backend.ErrUnauthorized) work
// on it.
type DialError struct {
	// Backend is the registered backend name, e.g. "redis".
	Backend string
	// Servers are the addresses from the backend.Config.
	Servers []string
	// Err is the factory's error.
	Err error
	// Failures counts the failed dials in a row for the fingerprint, this
	// one included.
	Failures int
	// RetryAt is when the next dial will be made: Gets before it fail at
	// once with this error (unless the fingerprint is forgotten).
	RetryAt time.Time
}

func (e *DialError) Error() string {
	return fmt.Sprintf("backendpool: connecting to %s %v: %v (failed %d time(s) in a row; next attempt at %s)",
		e.Backend, e.Servers, e.Err, e.Failures, e.RetryAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
}

func (e *DialError) Unwrap() error { return e.Err }
