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

// Package redis is the Redis lock backend: the classic single-instance
// recipe (SET NX PX, compare-and-delete) with fencing tokens, in the style
// of bsm/redislock.
//
// The lock key K holds, with an expiry of the lease TTL, the value
//
//	<holder>;fence=<token>
//
// where token is the fencing token: an INCR of the counter key K+":fencing",
// taken in the same script that sets K, and only when the lock is actually
// taken. Every operation is one Lua script, so it is atomic on the server
// and safe to repeat.
//
// The counter lives in the server's memory: a restart without persistence,
// or a failover that loses writes, starts it again from nothing. The
// caller that remembers the highest token it has seen passes it as
// backend.WithMinToken; the acquire script then raises the counter to that
// floor before it increments it, so a new hold's token is always above it.
// Redis keeps no queue: backend.WithQueue is ignored.
//
// Programs outside the cluster can share a lock with distlock by using the
// same recipe on the same key: take it with `SET K <unique value> NX PX
// <ttl>` and release it with a compare-and-delete script (`if GET K ==
// value then DEL K`). They then exclude distlock's holders and are excluded
// by them. Inspect reports such a hold with Holder set to the raw value and
// Token 0. A value that happens to have the form "<x>;fence=<digits>" is
// taken to be distlock's hold for holder x.
//
// The backend talks to a single Redis server, or to the master that a set of
// Sentinels monitor. It does not support Redis Cluster: K and its counter
// key may hash to different slots.
//
// The package registers itself as backend "redis" in an init function.
package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/distlock/distlock/internal/backend"
)

const (
	// DefaultDialTimeout bounds a connection attempt when
	// backend.Config.DialTimeout is zero.
	DefaultDialTimeout = 2 * time.Second
	// commandTimeout bounds each socket read and write, so that calls fail
	// fast when the server hangs.
	commandTimeout = 2 * time.Second
	// maxRetries is how often go-redis retries a command after a network
	// error. Every script is safe to repeat.
	maxRetries = 1
	// dialerRetries is how often go-redis dials before it gives up on one
	// connection.
	dialerRetries = 2

	// fenceSep separates the holder from the fencing token in the value of
	// a lock key.
	fenceSep = ";fence="
	// counterSuffix is appended to a lock key to name its fencing counter.
	counterSuffix = ":fencing"
)

var (
	//go:embed acquire.lua
	acquireSrc string
	//go:embed renew.lua
	renewSrc string
	//go:embed release.lua
	releaseSrc string
	//go:embed inspect.lua
	inspectSrc string

	acquireScript = goredis.NewScript(acquireSrc)
	renewScript   = goredis.NewScript(renewSrc)
	releaseScript = goredis.NewScript(releaseSrc)
	inspectScript = goredis.NewScript(inspectSrc)
)

func init() { backend.Register("redis", New) }

// New connects to the Redis server described by cfg and returns a Locker
// for it. It is the backend.Factory of the "redis" backend.
//
// cfg.Servers[0] is the server address; when cfg.SentinelMaster is set,
// cfg.Servers are the Sentinel addresses instead and the Locker follows the
// master they report (the Sentinels themselves are contacted without
// credentials). cfg.DB, cfg.Username, cfg.Password, cfg.TLS and
// cfg.DialTimeout (default DefaultDialTimeout) are used as given.
//
// New checks the connection with PING. When that fails, the error wraps
// backend.ErrUnauthorized if the server refused the credentials and
// backend.ErrUnreachable otherwise.
func New(ctx context.Context, cfg backend.Config) (backend.Locker, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("redis: connect: no server address configured")
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = DefaultDialTimeout
	}

	var client goredis.UniversalClient
	var target string
	if cfg.SentinelMaster != "" {
		target = fmt.Sprintf("master %q via sentinels %s", cfg.SentinelMaster, strings.Join(cfg.Servers, ","))
		client = goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:            cfg.SentinelMaster,
			SentinelAddrs:         cfg.Servers,
			Username:              cfg.Username,
			Password:              cfg.Password,
			ClientName:            cfg.ClientName,
			DB:                    cfg.DB,
			TLSConfig:             cfg.TLS,
			DialTimeout:           dialTimeout,
			DialerRetries:         dialerRetries,
			ReadTimeout:           commandTimeout,
			WriteTimeout:          commandTimeout,
			MaxRetries:            maxRetries,
			ContextTimeoutEnabled: true,
		})
	} else {
		target = cfg.Servers[0]
		client = goredis.NewClient(&goredis.Options{
			Addr:                  cfg.Servers[0],
			Username:              cfg.Username,
			Password:              cfg.Password,
			ClientName:            cfg.ClientName,
			DB:                    cfg.DB,
			TLSConfig:             cfg.TLS,
			DialTimeout:           dialTimeout,
			DialerRetries:         dialerRetries,
			ReadTimeout:           commandTimeout,
			WriteTimeout:          commandTimeout,
			MaxRetries:            maxRetries,
			ContextTimeoutEnabled: true,
			// Not used by a lock client; leaving it on makes go-redis probe
			// the server for a command that most servers do not have.
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		})
	}

	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		kind := classify(err)
		if kind == nil {
			kind = backend.ErrUnreachable
		}
		return nil, fmt.Errorf("redis: connect to %s: %w: %w", target, kind, err)
	}
	return &locker{client: client}, nil
}

// locker is the backend.Locker of the Redis backend.
type locker struct {
	client goredis.UniversalClient
}

var _ backend.Locker = (*locker)(nil)

// Acquire implements backend.Locker. With backend.WithMinToken, the
// fencing counter is first raised to the floor when it is below it, in the
// same script, so that a new hold's token exceeds the floor; a hold the
// holder already has keeps its token. The Queue option is ignored: Redis
// keeps no line, and a lock held by another holder gives the zero Lease.
func (l *locker) Acquire(ctx context.Context, key, holder string, ttl time.Duration, opts ...backend.AcquireOption) (backend.Lease, error) {
	if err := validate(key, holder, ttl); err != nil {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q: %w", key, err)
	}
	floor := max(backend.NewAcquireOptions(opts...).MinToken, 0)
	reply, err := acquireScript.Run(ctx, l.client,
		[]string{key, key + counterSuffix}, holder+fenceSep, ttl.Milliseconds(), strconv.FormatInt(floor, 10)).Slice()
	if err != nil {
		return backend.Lease{}, wrap("acquire", key, err)
	}
	if len(reply) != 3 {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q: unexpected reply %v", key, reply)
	}
	taken, _ := reply[0].(int64)
	value, _ := reply[1].(string)
	pttl, _ := reply[2].(int64)
	if taken == -1 {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q for %q: the fencing counter is at its maximum (MinToken %d): %w",
			key, holder, floor, backend.ErrFencingRegressed)
	}
	if taken != 1 {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q for %q: %s: %w",
			key, holder, describe(parseValue(value, pttl)), backend.ErrNotAcquired)
	}
	st := parseValue(value, pttl)
	if st.Holder != holder || st.Token <= 0 {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q: unexpected value %q", key, value)
	}
	return backend.Lease{Key: key, Holder: holder, Token: st.Token, TTL: st.TTL}, nil
}

// Renew implements backend.Locker.
func (l *locker) Renew(ctx context.Context, lease backend.Lease, ttl time.Duration) (backend.Lease, error) {
	renewals := []backend.Renewal{{Lease: lease, TTL: ttl}}
	l.RenewBatch(ctx, renewals)
	return renewals[0].Renewed, renewals[0].Err
}

var _ backend.BatchRenewer = (*locker)(nil)

// RenewBatch implements backend.BatchRenewer: one pipeline of renew scripts,
// one round trip for the whole batch.
func (l *locker) RenewBatch(ctx context.Context, renewals []backend.Renewal) {
	cmds := make([]*goredis.Cmd, len(renewals))
	valid := 0
	pipe := l.client.Pipeline()
	for i := range renewals {
		r := &renewals[i]
		if err := validate(r.Lease.Key, r.Lease.Holder, r.TTL); err != nil {
			r.Err = fmt.Errorf("redis: renew %q: %w", r.Lease.Key, err)
			continue
		}
		cmds[i] = renewScript.EvalSha(ctx, pipe, []string{r.Lease.Key}, leaseValue(r.Lease), r.TTL.Milliseconds())
		valid++
	}
	if valid == 0 {
		return
	}
	_, err := pipe.Exec(ctx)
	if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		// The server forgot the script (a restart): send it whole once.
		pipe = l.client.Pipeline()
		for i := range renewals {
			if cmds[i] != nil {
				r := &renewals[i]
				cmds[i] = renewScript.Eval(ctx, pipe, []string{r.Lease.Key}, leaseValue(r.Lease), r.TTL.Milliseconds())
			}
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
	}
	for i, cmd := range cmds {
		if cmd != nil {
			renewals[i].Renewed, renewals[i].Err = renewResult(renewals[i], cmd)
		}
	}
}

// renewResult reads the outcome of one renew script.
func renewResult(r backend.Renewal, cmd *goredis.Cmd) (backend.Lease, error) {
	pttl, err := cmd.Int64()
	if err != nil {
		return backend.Lease{}, wrap("renew", r.Lease.Key, err)
	}
	if pttl <= 0 {
		return backend.Lease{}, fmt.Errorf("redis: renew %q for %q (token %d): %w",
			r.Lease.Key, r.Lease.Holder, r.Lease.Token, backend.ErrNotHeld)
	}
	lease := r.Lease
	lease.TTL = time.Duration(pttl) * time.Millisecond
	return lease, nil
}

// Release implements backend.Locker.
func (l *locker) Release(ctx context.Context, lease backend.Lease) error {
	if lease.Key == "" {
		return errors.New("redis: release: empty key")
	}
	if err := releaseScript.Run(ctx, l.client, []string{lease.Key}, leaseValue(lease)).Err(); err != nil {
		return wrap("release", lease.Key, err)
	}
	return nil
}

// Inspect implements backend.Locker.
func (l *locker) Inspect(ctx context.Context, key string) (backend.State, error) {
	if key == "" {
		return backend.State{}, errors.New("redis: inspect: empty key")
	}
	reply, err := inspectScript.Run(ctx, l.client, []string{key}).Slice()
	if err != nil {
		return backend.State{}, wrap("inspect", key, err)
	}
	switch len(reply) {
	case 0:
		return backend.State{}, nil
	case 2:
		value, _ := reply[0].(string)
		pttl, _ := reply[1].(int64)
		return parseValue(value, pttl), nil
	default:
		return backend.State{}, fmt.Errorf("redis: inspect %q: unexpected reply %v", key, reply)
	}
}

// Purge implements backend.Locker. It keeps the fencing counter: once a lock
// and its record are gone, the counter is the only memory of the highest
// token handed out on the key, and a pod or a protected resource may still
// remember that token. A lock created again on the key goes on counting
// from it. The counter is one small key; delete it by hand only when the
// key is retired for good.
func (l *locker) Purge(ctx context.Context, key string) error {
	if key == "" {
		return errors.New("redis: purge: empty key")
	}
	n, err := l.client.Exists(ctx, key).Result()
	if err != nil {
		return wrap("purge", key, err)
	}
	if n != 0 {
		return fmt.Errorf("redis: purge %q: the lock is held: %w", key, backend.ErrNotAcquired)
	}
	return nil
}

// Close implements backend.Locker.
func (l *locker) Close() error {
	if err := l.client.Close(); err != nil {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

// validate checks the arguments shared by Acquire and Renew.
func validate(key, holder string, ttl time.Duration) error {
	switch {
	case key == "":
		return errors.New("empty key")
	case holder == "":
		return errors.New("empty holder")
	case ttl < time.Millisecond:
		return fmt.Errorf("TTL %v is below Redis's resolution of 1ms", ttl)
	}
	return nil
}

// leaseValue is the value that the lock key holds for lease.
func leaseValue(lease backend.Lease) string {
	return lease.Holder + fenceSep + strconv.FormatInt(lease.Token, 10)
}

// parseValue turns the value and PTTL of a held lock key into a State. A
// value not of the form "<holder>;fence=<token>" is an outside program's:
// its Holder is the raw value and its Token 0.
func parseValue(value string, pttl int64) backend.State {
	st := backend.State{Held: true, Holder: value}
	if pttl > 0 {
		st.TTL = time.Duration(pttl) * time.Millisecond
	}
	i := strings.LastIndex(value, fenceSep)
	if i < 0 {
		return st
	}
	digits := value[i+len(fenceSep):]
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return st
	}
	token, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || token <= 0 {
		return st
	}
	st.Holder, st.Token = value[:i], token
	return st
}

// describe says who holds a lock, for error messages.
func describe(st backend.State) string {
	var b strings.Builder
	if st.Token > 0 {
		fmt.Fprintf(&b, "held by %q with fencing token %d", st.Holder, st.Token)
	} else {
		fmt.Fprintf(&b, "held by an outside program with value %q", st.Holder)
	}
	if st.TTL > 0 {
		fmt.Fprintf(&b, ", expiring in %v", st.TTL)
	} else {
		b.WriteString(", without expiry")
	}
	return b.String()
}

// wrap adds the operation and key to err and, where it can tell, the
// backend sentinel that classifies it.
func wrap(op, key string, err error) error {
	return backend.Wrap("redis", op, key, classify(err), err)
}

// classify maps a go-redis error to backend.ErrUnauthorized (the server
// refused the credentials or the user's permissions), backend.ErrUnreachable
// (the server could not be reached, did not answer in time, or cannot serve
// yet), or nil.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case goredis.IsAuthError(err), goredis.IsPermissionError(err):
		// NOAUTH, WRONGPASS, NOPERM.
		return backend.ErrUnauthorized
	case goredis.IsLoadingError(err), // still loading its data set
		goredis.IsMasterDownError(err), // a replica that lost its master
		goredis.IsReadOnlyError(err),   // a former master, during a failover
		goredis.IsTryAgainError(err):
		return backend.ErrUnreachable
	case errors.Is(err, goredis.ErrPoolTimeout), backend.TransportFailure(err):
		return backend.ErrUnreachable
	}
	// go-redis reports failed Sentinels with an unwrapped error.
	if strings.Contains(err.Error(), "sentinels specified in configuration are unreachable") {
		return backend.ErrUnreachable
	}
	return nil
}
