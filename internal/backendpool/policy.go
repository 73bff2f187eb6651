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

// The pool's decisions, kept free of locks, clocks and I/O so that each
// can be table-tested.

// getAction is what Get does for a fingerprint.
type getAction int

const (
	// useConn hands out another reference to the open connection.
	useConn getAction = iota
	// joinDial waits for the dial in flight.
	joinDial
	// failFast returns the remembered dial failure.
	failFast
	// startDial dials.
	startDial
)

func (a getAction) String() string {
	switch a {
	case useConn:
		return "useConn"
	case joinDial:
		return "joinDial"
	case failFast:
		return "failFast"
	case startDial:
		return "startDial"
	}
	return fmt.Sprintf("getAction(%d)", int(a))
}

// decideGet chooses what Get does for a fingerprint that has an open
// connection (hasConn), a dial in flight (dialing), and a remembered dial
// failure until retryAt (zero when there is none).
func decideGet(hasConn, dialing bool, retryAt, now time.Time) getAction {
	switch {
	case hasConn:
		return useConn
	case dialing:
		return joinDial
	case now.Before(retryAt):
		return failFast
	default:
		return startDial
	}
}

// backoff returns how long the failures-th failed dial in a row is
// remembered: minB, doubled for every earlier failure, at most maxB, then
// shortened by up to a fifth as r (in [0, 1)) says, so that fingerprints
// that failed together do not retry in step.
func backoff(failures int, minB, maxB time.Duration, r float64) time.Duration {
	d := min(minB, maxB)
	for i := 1; i < failures && d < maxB; i++ {
		d = min(2*d, maxB)
	}
	return d - time.Duration(r*float64(d)/5)
}

// shouldClose reports whether a connection is to be closed: only when
// nobody holds a reference, and then once it was forgotten or has gone
// unreferenced for idleTimeout. (Pool.Close closes everything regardless.)
func shouldClose(refs int, forgotten bool, idleFor, idleTimeout time.Duration) bool {
	return refs == 0 && (forgotten || idleFor >= idleTimeout)
}
