#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# demo.sh shows distlock gating Jobs on a real single-node cluster: it builds
# what it needs, brings the cluster up in its own network namespace, starts
# Redis and ZooKeeper there, installs distlock with config/default, runs gated
# Jobs for each backend and shows, as they run, who holds each lock and who
# waits. Then it tears everything down.
#
#   make demo                    # or hack/demo.sh
#   DEMO_HOLD=10m make demo      # keep everything up for 10m (Ctrl-C ends it)

set -o errexit
set -o nounset
set -o pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/e2e.sh"

distlock::e2e::prepare ./hack/demo
distlock::e2e::run_in_cluster "${DISTLOCK_ROOT}" env DEMO_HOLD="${DEMO_HOLD:-0}" "${E2E_OUT}/demo"
