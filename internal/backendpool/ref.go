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
	"sync/atomic"

	"github.com/distlock/distlock/internal/backend"
)

// Ref is one counted reference to a pooled connection, returned by
// Pool.Get and Ref.Clone. The connection stays open at least until every
// Ref to it is closed (or the pool is closed). A Ref may be used from
// several goroutines; Close it once you are done.
type Ref struct {
	pool   *Pool
	conn   *conn
	closed atomic.Bool
}

// Locker returns the connection. It must not be used after Close.
func (r *Ref) Locker() backend.Locker { return r.conn.locker }

// Fingerprint returns the fingerprint the connection was dialled for, the
// one to pass to Pool.Forget.
func (r *Ref) Fingerprint() string { return r.conn.fingerprint }

// Clone returns another reference to the same connection, for a user that
// keeps it independently of r (a renewal loop). Each one must be closed.
// Cloning a closed Ref panics: the connection may be gone already.
func (r *Ref) Clone() *Ref {
	if r.closed.Load() {
		panic("backendpool: Clone of a closed Ref")
	}
	p := r.pool
	p.mu.Lock()
	r.conn.refs++
	p.mu.Unlock()
	return &Ref{pool: p, conn: r.conn}
}

// Close drops this reference. When it was the last one and the connection
// was forgotten, the connection is closed (on a goroutine of its own, so
// Close never waits for the backend); otherwise an unreferenced connection
// is closed after the pool's IdleTimeout. Close is idempotent.
func (r *Ref) Close() {
	if r.closed.Swap(true) {
		return
	}
	r.pool.release(r.conn)
}
