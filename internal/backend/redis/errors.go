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
	"context"
	"errors"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/backend"
)

// wrap adds the operation and key to err and, where it can tell, the
// backend sentinel that classifies it. When the server could not be
// reached, it has a cluster client look for the slots' primaries again
// (a failover may have moved them).
func (l *locker) wrap(ctx context.Context, op, key string, err error) error {
	kind := classify(err)
	if errors.Is(kind, backend.ErrUnreachable) && l.reload != nil {
		l.reload(ctx)
	}
	return backend.Wrap("redis", op, key, kind, err)
}

// classify maps a go-redis error to backend.ErrUnauthorized (a server or a
// Sentinel refused the credentials or the user's permissions),
// backend.ErrUnreachable (the server could not be reached, did not answer in
// time, or cannot serve yet), or nil.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case goredis.IsAuthError(err), goredis.IsPermissionError(err):
		// NOAUTH, WRONGPASS, NOPERM.
		return backend.ErrUnauthorized
	case goredis.IsLoadingError(err), // still loading its data set
		goredis.IsMasterDownError(err),  // a replica that lost its master
		goredis.IsReadOnlyError(err),    // a former master, during a failover
		goredis.IsClusterDownError(err), // a cluster with slots not served, during a failover
		goredis.IsTryAgainError(err):
		return backend.ErrUnreachable
	case errors.Is(err, goredis.ErrPoolTimeout), backend.TransportFailure(err):
		return backend.ErrUnreachable
	}
	// go-redis reports failed Sentinels with an error of its own, which
	// joins (above) what each Sentinel answered.
	if strings.Contains(err.Error(), "sentinels specified in configuration are unreachable") {
		return backend.ErrUnreachable
	}
	return nil
}
