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
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/distlock/distlock/internal/backend"
)

// fenceSep separates the holder from the fencing token in the value of a
// lock key.
const fenceSep = ";fence="

// locker is the backend.Locker of the Redis backend.
type locker struct {
	client goredis.UniversalClient
	// cluster is set on a Redis Cluster, where a lock's counter is named
	// to share the lock key's hash slot (see counterKey).
	cluster bool
	// reload, when not nil, has the client learn the cluster's slot map
	// again (in the background). go-redis does so by itself on MOVED and
	// ASK, but a primary that crashed answers nothing: without a reload,
	// the client would keep dialling it until its periodic refresh.
	reload func(ctx context.Context)
}

var _ backend.Locker = (*locker)(nil)

// Acquire implements backend.Locker. With backend.WithLimit(n), n >= 2,
// it takes a permit of the semaphore at key (see acquireSemaphore);
// otherwise the mutex. With backend.WithMinToken, the fencing counter is
// first raised to the floor when it is below it, in the same script, so
// that a new hold's token exceeds the floor; a hold the holder already has
// keeps its token. The Queue option is ignored: Redis keeps no line, and a
// lock held by another holder gives the zero Lease.
func (l *locker) Acquire(ctx context.Context, key, holder string, ttl time.Duration, opts ...backend.AcquireOption) (backend.Lease, error) {
	if err := validate(key, holder, ttl); err != nil {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q: %w", key, err)
	}
	counter, err := counterKey(key, l.cluster)
	if err != nil {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q: %w", key, err)
	}
	o := backend.NewAcquireOptions(opts...)
	floor := max(o.MinToken, 0)
	if o.Limit >= 2 {
		return l.acquireSemaphore(ctx, key, counter, holder, ttl, floor, o.Limit)
	}
	reply, err := acquireScript.Run(ctx, l.client,
		[]string{key, counter}, holder+fenceSep, ttl.Milliseconds(), strconv.FormatInt(floor, 10)).Slice()
	if err != nil {
		return backend.Lease{}, l.wrap(ctx, "acquire", key, err)
	}
	taken, value, n, err := acquireReply(reply)
	if err != nil {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q: %w", key, err)
	}
	switch taken {
	case 1:
		return leaseOf(key, holder, value, n)
	case 0:
		return backend.Lease{}, fmt.Errorf("redis: acquire %q for %q: %s: %w",
			key, holder, describe(parseValue(value, n)), backend.ErrNotAcquired)
	case -1:
		return backend.Lease{}, regressed(key, holder, floor)
	case -2:
		return backend.Lease{}, fmt.Errorf("redis: acquire %q for %q: held by a semaphore with %d holds: %w",
			key, holder, n, backend.ErrNotAcquired)
	}
	return backend.Lease{}, fmt.Errorf("redis: acquire %q: unexpected reply %v", key, reply)
}

// acquireReply splits the {status, value, number} reply of an acquire
// script.
func acquireReply(reply []any) (status int64, value string, n int64, err error) {
	if len(reply) != 3 {
		return 0, "", 0, fmt.Errorf("unexpected reply %v", reply)
	}
	status, ok1 := reply[0].(int64)
	value, ok2 := reply[1].(string)
	n, ok3 := reply[2].(int64)
	if !ok1 || !ok2 || !ok3 {
		return 0, "", 0, fmt.Errorf("unexpected reply %v", reply)
	}
	return status, value, n, nil
}

// leaseOf is the Lease of a hold just taken or confirmed, from the value
// (or semaphore member) the script wrote and its TTL in milliseconds.
func leaseOf(key, holder, value string, ttlMillis int64) (backend.Lease, error) {
	st := parseValue(value, ttlMillis)
	if st.Holder != holder || st.Token <= 0 {
		return backend.Lease{}, fmt.Errorf("redis: acquire %q: unexpected value %q", key, value)
	}
	return backend.Lease{Key: key, Holder: holder, Token: st.Token, TTL: st.TTL}, nil
}

// regressed is the error of an acquire script that could hand out no token
// above floor.
func regressed(key, holder string, floor int64) error {
	return fmt.Errorf("redis: acquire %q for %q: the fencing counter is at its maximum (MinToken %d): %w",
		key, holder, floor, backend.ErrFencingRegressed)
}

// Renew implements backend.Locker.
func (l *locker) Renew(ctx context.Context, lease backend.Lease, ttl time.Duration) (backend.Lease, error) {
	renewals := []backend.Renewal{{Lease: lease, TTL: ttl}}
	l.RenewBatch(ctx, renewals)
	return renewals[0].Renewed, renewals[0].Err
}

var _ backend.BatchRenewer = (*locker)(nil)

// RenewBatch implements backend.BatchRenewer: one pipeline of renew scripts,
// one round trip for the whole batch (on a Redis Cluster, go-redis splits
// the pipeline into one per node and follows redirections).
func (l *locker) RenewBatch(ctx context.Context, renewals []backend.Renewal) {
	cmds := make([]*goredis.Cmd, len(renewals))
	// queue adds the renewal of renewals[i] to pipe, by the script's SHA
	// or, with whole set, by its source.
	queue := func(pipe goredis.Pipeliner, i int, whole bool) {
		r := &renewals[i]
		keys, args := []string{r.Lease.Key}, []any{leaseValue(r.Lease), r.TTL.Milliseconds()}
		if whole {
			cmds[i] = renewScript.Eval(ctx, pipe, keys, args...)
		} else {
			cmds[i] = renewScript.EvalSha(ctx, pipe, keys, args...)
		}
	}
	pipe := l.client.Pipeline()
	for i := range renewals {
		r := &renewals[i]
		if err := validate(r.Lease.Key, r.Lease.Holder, r.TTL); err != nil {
			r.Err = fmt.Errorf("redis: renew %q: %w", r.Lease.Key, err)
			continue
		}
		queue(pipe, i, false)
	}
	if pipe.Len() == 0 {
		return
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	// A server that does not know the script (after a restart; a cluster
	// node that never ran it) answers NOSCRIPT: send the script whole to it
	// once.
	var resend goredis.Pipeliner
	for i, cmd := range cmds {
		if cmd != nil && goredis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			if resend == nil {
				resend = l.client.Pipeline()
			}
			queue(resend, i, true)
		}
	}
	if resend != nil {
		_, _ = resend.Exec(ctx)
	}
	for i, cmd := range cmds {
		if cmd != nil {
			renewals[i].Renewed, renewals[i].Err = l.renewResult(ctx, renewals[i], cmd)
		}
	}
}

// renewResult reads the outcome of one renew script.
func (l *locker) renewResult(ctx context.Context, r backend.Renewal, cmd *goredis.Cmd) (backend.Lease, error) {
	pttl, err := cmd.Int64()
	if err != nil {
		return backend.Lease{}, l.wrap(ctx, "renew", r.Lease.Key, err)
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
		return l.wrap(ctx, "release", lease.Key, err)
	}
	return nil
}

// Inspect implements backend.Locker. On a semaphore it lists every hold
// (see parseHolds).
func (l *locker) Inspect(ctx context.Context, key string) (backend.State, error) {
	return l.inspect(ctx, "inspect", key)
}

// inspect runs the inspect script for the operation op (for errors).
func (l *locker) inspect(ctx context.Context, op, key string) (backend.State, error) {
	if key == "" {
		return backend.State{}, fmt.Errorf("redis: %s: empty key", op)
	}
	reply, err := inspectScript.Run(ctx, l.client, []string{key}).Slice()
	if err != nil {
		return backend.State{}, l.wrap(ctx, op, key, err)
	}
	switch len(reply) {
	case 0:
		return backend.State{}, nil
	case 1:
		if pairs, ok := reply[0].([]any); ok {
			if st, err := parseHolds(pairs); err == nil {
				return st, nil
			}
		}
	case 2:
		value, ok1 := reply[0].(string)
		pttl, ok2 := reply[1].(int64)
		if ok1 && ok2 {
			return parseValue(value, pttl), nil
		}
	}
	return backend.State{}, fmt.Errorf("redis: %s %q: unexpected reply %v", op, key, reply)
}

// Purge implements backend.Locker. It keeps the fencing counter: once a lock
// and its record are gone, the counter is the only memory of the highest
// token handed out on the key, and a pod or a protected resource may still
// remember that token. A lock created again on the key goes on counting
// from it. The counter is one small key; delete it by hand only when the
// key is retired for good. Purge refuses a held mutex or a semaphore with a
// live hold; a semaphore whose holds have all expired is pruned away.
func (l *locker) Purge(ctx context.Context, key string) error {
	st, err := l.inspect(ctx, "purge", key)
	if err != nil {
		return err
	}
	if st.Held {
		return fmt.Errorf("redis: purge %q: the lock is %s: %w", key, describe(st), backend.ErrNotAcquired)
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
	if len(st.Holds) > 0 {
		fmt.Fprintf(&b, "held by a semaphore with %d holds, the first ", len(st.Holds))
	}
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
