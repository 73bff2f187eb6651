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

package zookeeper

import (
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/distlock/distlock/internal/backend"
)

// errUnimplemented is the message of the error by which go-zookeeper
// reports the server's UnimplementedException (code -6, which it has no
// sentinel for). A server without TTL nodes answers a TTL create with it.
var errUnimplemented = fmt.Sprintf("unknown error: %v", int32(-6))

// wrap adds the operation and key to err and, where it can tell, the
// backend sentinel that classifies it.
func wrap(op, key string, err error) error {
	return backend.Wrap("zookeeper", op, key, classify(err), err)
}

// wrapIf is wrap, or nil when err is nil.
func wrapIf(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return wrap(op, key, err)
}

// classify maps a go-zookeeper error to backend.ErrUnauthorized (the server
// refused the credentials, or the node's ACL does not admit them),
// backend.ErrUnreachable (no server answered, or not in time), or nil.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed):
		return backend.ErrUnauthorized
	case errors.Is(err, zk.ErrNoServer),
		errors.Is(err, zk.ErrConnectionClosed),
		errors.Is(err, zk.ErrSessionExpired),
		errors.Is(err, zk.ErrSessionMoved),
		errors.Is(err, zk.ErrClosing),
		backend.TransportFailure(err):
		return backend.ErrUnreachable
	}
	return nil
}
