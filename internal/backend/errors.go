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

package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// Wrap adds the backend's name, the operation and the key to err, and the
// sentinel kind (ErrUnreachable, ErrUnauthorized, ...) when it is not nil,
// so that callers can test the outcome with errors.Is and still read what
// the library said.
func Wrap(name, op, key string, kind, err error) error {
	if kind != nil {
		return fmt.Errorf("%s: %s %q: %w: %w", name, op, key, kind, err)
	}
	return fmt.Errorf("%s: %s %q: %w", name, op, key, err)
}

// TransportFailure reports whether err is a failure of the connection
// rather than an answer of the server: a deadline, a refused, reset or
// closed connection, or any net.Error. Backends classify such errors as
// ErrUnreachable.
func TransportFailure(err error) bool {
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}
