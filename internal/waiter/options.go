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

package waiter

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
)

// Exit codes of the waiter. An init container that exits with anything but
// ExitGranted fails its pod's start; the codes tell an operator why.
const (
	// ExitGranted: the lock was granted to this pod and the token file written.
	ExitGranted = 0
	// ExitFailed: an unexpected error, such as an unwritable token file, or a
	// signal that stopped the wait.
	ExitFailed = 1
	// ExitUsage: bad flags or environment (no lock name, no pod identity).
	ExitUsage = 2
	// ExitTimeout: --timeout expired before the lock was granted.
	ExitTimeout = 3
	// ExitLost: the controller recorded this pod's hold as lost; the pod
	// must not run its work, and the lock will not be granted to it again.
	ExitLost = 4
)

// Environment variables the waiter reads. The pod's identity comes from the
// downward API (fieldRef metadata.name, metadata.namespace, metadata.uid).
const (
	EnvLock         = locksv1alpha1.WaiterLockEnv
	EnvPodName      = "POD_NAME"
	EnvPodNamespace = "POD_NAMESPACE"
	EnvPodUID       = "POD_UID"
)

// DefaultTokenFile is where the fencing token is written unless --token-file
// says otherwise: a volume shared with the pod's main containers.
const DefaultTokenFile = "/distlock/fencing-token"

// ExitError is an error that ends the waiter with a given exit code.
type ExitError struct {
	// Code is the process exit code, one of the Exit constants.
	Code int
	// Message says what happened, in one line.
	Message string
}

func (e *ExitError) Error() string { return e.Message }

// ExitCode is the process exit code for the result of ParseOptions or Run:
// ExitGranted for nil, the code of an *ExitError, ExitFailed otherwise.
func ExitCode(err error) int {
	if err == nil {
		return ExitGranted
	}
	if exitErr, ok := errors.AsType[*ExitError](err); ok {
		return exitErr.Code
	}
	return ExitFailed
}

func usageError(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Message: fmt.Sprintf(format, args...)}
}

// Options configure one wait for a lock.
type Options struct {
	// Lock is the name of the DistributedLock, in the pod's namespace.
	Lock string
	// Namespace is the pod's namespace, and so the lock's.
	Namespace string
	// PodName is the name of the pod that waits.
	PodName string
	// PodUID is the UID of the pod that waits: the grant is recognised by it.
	PodUID types.UID
	// TokenFile receives the fencing token (decimal, then a newline) once the
	// lock is granted.
	TokenFile string
	// Timeout bounds the wait; zero waits forever.
	Timeout time.Duration
	// WatchTimeout is how long one watch request stays open before the
	// server closes it and the waiter opens the next; zero means five
	// minutes. Bounding it keeps idle connections from being cut silently
	// by proxies and load balancers.
	WatchTimeout time.Duration

	// Hooks for the tests of this package.
	// onWatch is called with the resourceVersion of every watch the waiter
	// opens, after the server accepted it.
	onWatch func(resourceVersion string)
	// firstWatchFrom, when set, replaces the resourceVersion of the first
	// watch (to make the server answer 410 Gone).
	firstWatchFrom string
}

// ParseOptions defines the waiter's flags on fs (a new FlagSet, to which
// the caller may have added others, such as controller-runtime's
// --kubeconfig), parses args with defaults from the environment (getenv),
// and validates the result. Errors are *ExitError with code ExitUsage, or
// flag.ErrHelp for -h; usage and help go to output.
func ParseOptions(fs *flag.FlagSet, args []string, getenv func(string) string, output io.Writer) (Options, error) {
	var opts Options
	var podUID string
	fs.Init("waiter", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage: waiter [flags]\n\n"+
			"Waits until the DistributedLock named by --lock is granted to this pod, writes the\n"+
			"fencing token to --token-file and exits 0. Exit codes: %d usage, %d timeout, %d hold lost,\n"+
			"%d other errors.\n\nFlags:\n", ExitUsage, ExitTimeout, ExitLost, ExitFailed)
		fs.PrintDefaults()
	}
	fs.StringVar(&opts.Lock, "lock", getenv(EnvLock),
		"Name of the DistributedLock to wait for, in the pod's namespace (default $"+EnvLock+").")
	fs.StringVar(&opts.PodName, "pod-name", getenv(EnvPodName), "Name of this pod (default $"+EnvPodName+").")
	fs.StringVar(&opts.Namespace, "pod-namespace", getenv(EnvPodNamespace),
		"Namespace of this pod and of the lock (default $"+EnvPodNamespace+").")
	fs.StringVar(&podUID, "pod-uid", getenv(EnvPodUID), "UID of this pod (default $"+EnvPodUID+").")
	fs.StringVar(&opts.TokenFile, "token-file", DefaultTokenFile,
		"File that receives the fencing token once the lock is granted; written atomically.")
	fs.DurationVar(&opts.Timeout, "timeout", 0,
		fmt.Sprintf("Give up after this long, with exit code %d; 0 waits forever.", ExitTimeout))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Options{}, flag.ErrHelp
		}
		return Options{}, usageError("%v", err)
	}
	if fs.NArg() > 0 {
		return Options{}, usageError("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	opts.PodUID = types.UID(podUID)
	if err := opts.validate(); err != nil {
		return Options{}, err
	}
	return opts, nil
}

// validate checks that opts name a lock and a pod; errors are *ExitError
// with code ExitUsage.
func (o *Options) validate() error {
	if o.Lock == "" {
		return usageError("no lock to wait for: set --lock or %s to the name of a DistributedLock", EnvLock)
	}
	if errs := validation.IsDNS1123Subdomain(o.Lock); len(errs) > 0 {
		return usageError("%q is not a valid DistributedLock name: %s", o.Lock, strings.Join(errs, "; "))
	}
	var missing []string
	if o.PodName == "" {
		missing = append(missing, EnvPodName+" (--pod-name)")
	}
	if o.Namespace == "" {
		missing = append(missing, EnvPodNamespace+" (--pod-namespace)")
	}
	if o.PodUID == "" {
		missing = append(missing, EnvPodUID+" (--pod-uid)")
	}
	if len(missing) > 0 {
		return usageError("the pod's identity is incomplete: missing %s; "+
			"pass metadata.name, metadata.namespace and metadata.uid through the downward API", strings.Join(missing, ", "))
	}
	if o.TokenFile == "" {
		return usageError("--token-file must not be empty")
	}
	if o.Timeout < 0 {
		return usageError("--timeout must not be negative, got %v", o.Timeout)
	}
	if o.WatchTimeout < 0 {
		return usageError("the watch timeout must not be negative, got %v", o.WatchTimeout)
	}
	return nil
}
