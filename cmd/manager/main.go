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

// Command manager runs the distlock controller manager.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"

	// Import all Kubernetes client auth plugins (e.g. Azure, GCP, OIDC, etc.)
	// to ensure that exec-entrypoint and run can make use of them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	locksv1alpha1 "github.com/distlock/distlock/api/v1alpha1"
	"github.com/distlock/distlock/internal/backendpool"
	"github.com/distlock/distlock/internal/controller"
	"github.com/distlock/distlock/internal/eventbudget"
	"github.com/distlock/distlock/internal/holder"
	"github.com/distlock/distlock/internal/leader"
	"github.com/distlock/distlock/internal/metrics"

	// The backends register themselves.
	_ "github.com/distlock/distlock/internal/backend/redis"
	_ "github.com/distlock/distlock/internal/backend/zookeeper"
	// +kubebuilder:scaffold:imports
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(locksv1alpha1.AddToScheme(scheme))
	// +kubebuilder:scaffold:scheme
}

func main() {
	var metricsAddr string
	var enableLeaderElection bool
	var probeAddr string
	var secureMetrics bool
	var enableHTTP2 bool
	var tlsOpts []func(*tls.Config)
	var clusterID string
	var allowCustomKeys bool
	var leaderElectionNamespace string
	var watchNamespaces string
	var allowedBackendAddresses string
	var eventQPS float64
	var eventBurst int
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false,
		"Enable leader election for controller manager. "+
			"Enabling this will ensure there is only one active controller manager.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "",
		"Namespace of the leader-election Lease. Defaults to the namespace the manager runs in; "+
			"required with --leader-elect outside a cluster.")
	flag.StringVar(&watchNamespaces, "watch-namespace", "",
		"Comma-separated namespaces whose DistributedLocks this manager handles; empty means every namespace.")
	flag.StringVar(&allowedBackendAddresses, "allowed-backend-addresses", "",
		"Comma-separated host:port patterns (with * wildcards, e.g. '*.redis.svc:6379') of the only backends "+
			"DistributedLocks may name; empty allows any. Set it in clusters whose tenants must not make the "+
			"manager connect to arbitrary addresses.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS. Use --metrics-secure=false to use HTTP instead.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"If set, HTTP/2 will be enabled for the metrics server")
	flag.StringVar(&clusterID, "cluster-id", "",
		"Identifies this cluster in the holder identities stored in backends, so that clusters sharing a backend "+
			"tell their holds apart. Must stay the same across restarts. Defaults to the UID of the kube-system namespace.")
	flag.BoolVar(&allowCustomKeys, "allow-custom-keys", false,
		"Let DistributedLocks name their own backend key (spec.key), e.g. to share a lock with programs outside the cluster. "+
			"Keys must start with the lock's namespace (\"<ns>/\", \"<ns>:\", \"/<ns>/\") or a prefix that an administrator "+
			"lists in the Namespace annotation distlock.io/allowed-key-prefixes.")
	flag.Float64Var(&eventQPS, "event-qps", eventbudget.DefaultQPS,
		"Events of each type (Normal, Warning) the manager writes per second after a burst of --event-burst; "+
			"the rest are dropped and counted in distlock_events_dropped_total. 0 means no limit.")
	flag.IntVar(&eventBurst, "event-burst", eventbudget.DefaultBurst,
		"Events of each type the manager may write at once before --event-qps applies.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	// HTTP/2 stays off unless asked for: it exposes the metrics server to the
	// HTTP/2 Stream Cancellation and Rapid Reset CVEs.
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) {
			setupLog.Info("disabling http/2")
			c.NextProtos = []string{"http/1.1"}
		})
	}

	metricsServerOptions := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if secureMetrics {
		// Only authenticated and authorized clients may read metrics; the RBAC
		// for it is in config/rbac.
		metricsServerOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	ctx := ctrl.SetupSignalHandler()
	restConfig := ctrl.GetConfigOrDie()
	if clusterID == "" {
		id, err := controller.DetectClusterID(ctx, restConfig)
		if err != nil {
			setupLog.Error(err, "unable to detect the cluster id; set --cluster-id")
			os.Exit(1)
		}
		clusterID = id
	}
	if err := holder.ValidateClusterID(clusterID); err != nil {
		setupLog.Error(err, "invalid --cluster-id")
		os.Exit(1)
	}
	setupLog.Info("holder identities name this cluster", "clusterID", clusterID)

	elector, err := newElector(restConfig, enableLeaderElection, leaderElectionNamespace)
	if err != nil {
		setupLog.Error(err, "unable to set up leader election")
		os.Exit(1)
	}

	cacheOptions := controller.CacheOptions()
	if watchNamespaces != "" {
		cacheOptions.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range splitList(watchNamespaces) {
			cacheOptions.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cacheOptions,
		Metrics:                metricsServerOptions,
		HealthProbeBindAddress: probeAddr,
		// Leader election is the elector's (internal/leader): it keeps
		// renewals of holds going through an API server outage, fails over
		// within about 5s, and the caches of a standby stay warm.
		LeaderElection: false,
	})
	if err != nil {
		setupLog.Error(err, "unable to start manager")
		os.Exit(1)
	}
	if err := mgr.Add(elector); err != nil {
		setupLog.Error(err, "unable to add the leader elector")
		os.Exit(1)
	}

	backends := &backendpool.Pool{}
	defer backends.Close()
	reconciler := &controller.DistributedLockReconciler{
		Client:                  mgr.GetClient(),
		Scheme:                  mgr.GetScheme(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                eventbudget.New(mgr.GetEventRecorder("distlock"), eventQPS, eventBurst, metrics.EventsDroppedTotal),
		Backends:                backends,
		Leader:                  elector,
		ClientName:              clientName(elector.Identity()),
		ClusterID:               clusterID,
		AllowCustomKeys:         allowCustomKeys,
		AllowedBackendAddresses: splitList(allowedBackendAddresses),
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create controller", "controller", "DistributedLock")
		os.Exit(1)
	}
	// A replica that starts leading looks at every lock at once (renewing the
	// holds of the replica it replaces); one that another replica deposed
	// stops renewing, leaving the holds to the new leader.
	elector.OnStartedLeading(func() {
		if err := reconciler.EnqueueAll(ctx); err != nil {
			setupLog.Error(err, "enqueueing every lock after taking over")
		}
	})
	elector.OnDeposed(func(holder string) {
		setupLog.Info("another replica leads now; leaving the holds to it", "leader", holder)
		reconciler.Keeper.DropAll()
	})
	// +kubebuilder:scaffold:builder

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("starting manager", "identity", elector.Identity(), "leaderElection", elector.String())
	if err := mgr.Start(ctx); err != nil {
		setupLog.Error(err, "problem running manager")
		os.Exit(1)
	}
}

// newElector returns the leader elector: a real election on a Lease with
// --leader-elect, else one that always leads.
func newElector(restConfig *rest.Config, enabled bool, namespace string) (*leader.Elector, error) {
	cfg := leader.Config{Disabled: !enabled, Namespace: namespace, Logger: ctrl.Log.WithName("leader")}
	if enabled && namespace == "" {
		ns, err := leader.InClusterNamespace()
		if err != nil {
			return nil, fmt.Errorf("--leader-election-namespace is needed outside a cluster: %w", err)
		}
		cfg.Namespace = ns
	}
	return leader.New(restConfig, cfg)
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// clientName names this replica's backend connections: "distlock-manager"
// and the replica's election identity, with characters Redis refuses in a
// client name replaced.
func clientName(identity string) string {
	name := "distlock-manager"
	if identity != "" {
		name += ":" + identity
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, name)
}
