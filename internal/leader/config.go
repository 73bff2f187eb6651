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

package leader

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/leaderelection"
)

// Defaults of Config.
const (
	DefaultLeaseDuration = 3 * time.Second
	DefaultRenewDeadline = 2 * time.Second
	DefaultRetryPeriod   = 500 * time.Millisecond
	// DefaultLeaseName is the election Lease's name. It is the name the
	// manager used with controller-runtime's leader election, so that during
	// a rolling upgrade old and new replicas exclude each other.
	DefaultLeaseName = "manager.distlock.io"
)

// inClusterNamespaceFile holds the namespace of a pod's service account.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ErrInvalidConfig is wrapped by every error of Config.Validate.
var ErrInvalidConfig = errors.New("leader: invalid configuration")

// Config configures an Elector. The zero value of every field but Namespace
// (and Disabled) has a default; see WithDefaults.
type Config struct {
	// Disabled turns leader election off, for a single replica and for
	// tests: Leading and MayRenewHolds are always true, no Lease is used and
	// every other field is ignored.
	Disabled bool

	// Namespace of the election Lease. Required: in a pod, InClusterNamespace
	// gives the pod's own namespace.
	Namespace string
	// Name of the election Lease; DefaultLeaseName if empty.
	Name string
	// Identity of this replica in the Lease; unique per process. Empty means
	// DefaultIdentity.
	Identity string

	// LeaseDuration is how long a standby waits, after it last saw the Lease
	// change, before it takes the Lease over. A whole number of seconds,
	// because the Lease stores it in seconds.
	LeaseDuration time.Duration
	// RenewDeadline is how long after its last successful renewal a leader
	// stays Leading; it must be shorter than LeaseDuration, and the
	// difference is the margin for writes in flight and clock-rate skew.
	RenewDeadline time.Duration
	// RetryPeriod is the pause between attempts (jittered by up to 1.2×
	// while not leading).
	RetryPeriod time.Duration
	// APICallTimeout bounds each call on the Lease, so that an API server
	// that accepts connections but does not answer is noticed in time
	// (MayRenewHolds relies on a fresh answer). Default:
	// (RenewDeadline − 2.2×RetryPeriod) / 3, 300ms with the default timings;
	// it must stay below (RenewDeadline − 2.2×RetryPeriod) / 2.
	APICallTimeout time.Duration

	// Logger receives the elector's role changes and client-go's election
	// messages. The zero Logger leaves client-go's messages to klog and
	// drops the elector's own.
	Logger logr.Logger
}

// WithDefaults returns c with every unset field given its default. It fails
// only if the host name, for the default identity, cannot be read.
func (c Config) WithDefaults() (Config, error) {
	if c.Disabled {
		return c, nil
	}
	if c.Name == "" {
		c.Name = DefaultLeaseName
	}
	if c.Identity == "" {
		id, err := DefaultIdentity()
		if err != nil {
			return c, err
		}
		c.Identity = id
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.RenewDeadline == 0 {
		c.RenewDeadline = DefaultRenewDeadline
	}
	if c.RetryPeriod == 0 {
		c.RetryPeriod = DefaultRetryPeriod
	}
	if c.APICallTimeout == 0 {
		c.APICallTimeout = (c.RenewDeadline - maxRetryInterval(c.RetryPeriod)) / 3
	}
	return c, nil
}

// Validate reports every problem of c (after WithDefaults), each wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Disabled {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Namespace == "" {
		bad("the Lease namespace is required (outside a cluster set --leader-election-namespace)")
	} else if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		bad("namespace %q: %s", c.Namespace, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(c.Name); len(msgs) > 0 {
		bad("Lease name %q: %s", c.Name, strings.Join(msgs, "; "))
	}
	if strings.TrimSpace(c.Identity) == "" {
		bad("the identity is empty")
	}
	if c.LeaseDuration < time.Second || c.LeaseDuration%time.Second != 0 {
		bad("leaseDuration %s must be a whole number of seconds, at least 1s (the Lease stores seconds)", c.LeaseDuration)
	}
	if c.RenewDeadline <= 0 || c.RenewDeadline >= c.LeaseDuration {
		bad("renewDeadline %s must be positive and shorter than leaseDuration %s", c.RenewDeadline, c.LeaseDuration)
	}
	if c.RetryPeriod <= 0 {
		bad("retryPeriod %s must be positive", c.RetryPeriod)
	}
	if c.APICallTimeout <= 0 {
		bad("apiCallTimeout %s must be positive (renewDeadline %s is too short for retryPeriod %s)",
			c.APICallTimeout, c.RenewDeadline, c.RetryPeriod)
	} else if limit := maxRetryInterval(c.RetryPeriod) + 2*c.APICallTimeout; c.RenewDeadline <= limit {
		bad("renewDeadline %s must exceed 2.2×retryPeriod + 2×apiCallTimeout = %s, so that an answer is never older than renewDeadline",
			c.RenewDeadline, limit)
	}
	return errors.Join(errs...)
}

// FailoverBound is the longest a standby takes to lead after the leader's
// last successful renewal when the leader dies without releasing (kill -9,
// node loss), plus API latency: the standby notices the last renewal up to
// one jittered retry interval (2.2×RetryPeriod) after it, waits
// LeaseDuration from then, and tries again up to one more interval later.
// 5.2s with the default timings.
func (c Config) FailoverBound() time.Duration {
	return c.LeaseDuration + 2*maxRetryInterval(c.RetryPeriod)
}

// StepDownDelay is how long a leader that is shutting down keeps the
// election Lease, no longer Leading, before it releases it: the margin
// LeaseDuration − RenewDeadline that a renewal failure leaves for writes in
// flight, given to a shutdown too. 1s with the default timings.
func (c Config) StepDownDelay() time.Duration {
	return c.LeaseDuration - c.RenewDeadline
}

// HandoverBound is the longest a standby takes to lead after the leader's
// context is cancelled (a graceful shutdown), plus API latency: the step-down
// delay, then up to one jittered retry interval. 2.1s with the default timings.
func (c Config) HandoverBound() time.Duration {
	return c.StepDownDelay() + maxRetryInterval(c.RetryPeriod)
}

// maxRetryInterval is the longest pause client-go makes between attempts to
// acquire: RetryPeriod jittered by up to JitterFactor.
func maxRetryInterval(retryPeriod time.Duration) time.Duration {
	return time.Duration(float64(retryPeriod) * (1 + leaderelection.JitterFactor))
}

// DefaultIdentity returns the host name, "_" and a random UUID: unique per
// process, so a restarted replica never mistakes its predecessor's term for
// its own.
func DefaultIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader: reading the host name for the identity: %w", err)
	}
	return host + "_" + uuid.NewString(), nil
}

// InClusterNamespace returns the namespace of the pod this process runs in,
// from its service account; an error outside a cluster.
func InClusterNamespace() (string, error) {
	data, err := os.ReadFile(inClusterNamespaceFile)
	if err != nil {
		return "", fmt.Errorf("leader: not running in a cluster, so the Lease namespace must be given: %w", err)
	}
	ns := strings.TrimSpace(string(data))
	if ns == "" {
		return "", fmt.Errorf("leader: %s is empty", inClusterNamespaceFile)
	}
	return ns, nil
}
