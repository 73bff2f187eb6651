#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# test-e2e.sh runs the end-to-end tests: it builds the images without Docker,
# brings up a real single-node cluster in its own network namespace
# (hack/local-cluster.sh), runs ./test/e2e inside that namespace, and tears
# the cluster down again, whatever happened.
#
#   hack/test-e2e.sh                      # what `make test-e2e` runs
#   E2E_KEEP_CLUSTER=1 hack/test-e2e.sh   # leave the cluster up afterwards

set -o errexit
set -o nounset
set -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/e2e.sh"

# The test binary is built here, outside the cluster's network namespace,
# which has no route to the Go module proxy.
(cd "${DISTLOCK_ROOT}" && go test -c -o "${E2E_OUT}/e2e.test" ./test/e2e)
distlock::e2e::prepare

distlock::e2e::log "running ./test/e2e inside the cluster's network namespace"
distlock::e2e::run_in_cluster "${DISTLOCK_ROOT}/test/e2e" \
  "${E2E_OUT}/e2e.test" -test.v -test.count=1 -test.timeout=40m 2>&1 | tee "${E2E_OUT}/e2e.log"
