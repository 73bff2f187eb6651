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

// Package backendpool keeps one backend connection per distinct server
// configuration, shared by every DistributedLock that uses it, and closes
// connections that no lock has used for a while.
package backendpool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/distlock/distlock/internal/backend"
)

// DefaultIdleTimeout is how long an unused connection stays open.
const DefaultIdleTimeout = 10 * time.Minute

type entry struct {
	locker   backend.Locker
	lastUsed time.Time
}

// Pool caches backend.Lockers by a caller-supplied fingerprint of their
// configuration. It is safe for concurrent use.
type Pool struct {
	// IdleTimeout closes connections unused for this long; zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

func (p *Pool) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Get returns the Locker for fingerprint, connecting with the factory
// registered as name when there is none yet. The fingerprint must change
// whenever anything in cfg changes (addresses, credentials, TLS material).
func (p *Pool) Get(ctx context.Context, fingerprint, name string, cfg backend.Config) (backend.Locker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeIdleLocked()
	if e, ok := p.entries[fingerprint]; ok {
		e.lastUsed = p.now()
		return e.locker, nil
	}
	factory, ok := backend.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("no backend registered as %q (registered: %v)", name, backend.Names())
	}
	// Connecting holds the pool's lock: connects are bounded by ctx and
	// rare, and this keeps two reconciles from opening the same connection.
	locker, err := factory(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s %v: %w", name, cfg.Servers, err)
	}
	if p.entries == nil {
		p.entries = map[string]*entry{}
	}
	p.entries[fingerprint] = &entry{locker: locker, lastUsed: p.now()}
	return locker, nil
}

// Forget closes and drops the Locker for fingerprint, so that the next Get
// connects afresh (after the server refused the credentials, say).
func (p *Pool) Forget(fingerprint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.entries[fingerprint]; ok {
		_ = e.locker.Close()
		delete(p.entries, fingerprint)
	}
}

func (p *Pool) closeIdleLocked() {
	idle := p.IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	now := p.now()
	for fp, e := range p.entries {
		if now.Sub(e.lastUsed) > idle {
			_ = e.locker.Close()
			delete(p.entries, fp)
		}
	}
}

// Close closes every connection. It does not release holds.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for fp, e := range p.entries {
		_ = e.locker.Close()
		delete(p.entries, fp)
	}
}
