#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# bench.sh is `make bench`: it prints one markdown table comparing distlock
# with the anchors, each row measured in the same run on the same servers:
#
#   - the handoff latency (BenchmarkHandoff in internal/controller, via
#     hack/bench-handoff.sh) beside client-go leader election on a Lease;
#   - the backends' acquire+release throughput and latency at 1, 8 and 64
#     clients beside bsm/redislock, redsync and go-zookeeper's zk.Lock
#     (hack/bench, internal/backend/bench);
#   - the scale run (hack/bench/scale, docs/scale.md): LOCKS (default 100)
#     x PODS (default 10) on Redis and a 3-node ZooKeeper ensemble, its drain
#     set against the API server's ceiling measured in the same run.
#
# The table goes to stdout, progress and details (requests per cycle by
# type, CPU per attempt) to stderr.
#
#   make bench
#   BENCH_DURATION=5s BENCH_REPS=5 N=300 LEASE_N=30 make bench
#   BENCH_ONLY=redis make bench        # backend rows of one backend, no handoffs, no scale
#   LOCKS=1000 PODS=10 make bench      # the full scale run (about 6 more minutes)
#
# BENCH_DURATION (default 3s) is the length of each measurement, BENCH_REPS
# (default 3) their repetitions; N (default 200) the handoffs per distlock
# backend and LEASE_N (default 20) those of the Lease, which take ~4 s each.

set -o errexit
set -o nounset
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
export BENCH_DURATION="${BENCH_DURATION:-3s}"
export BENCH_REPS="${BENCH_REPS:-3}"
N="${N:-200}"
LEASE_N="${LEASE_N:-20}"
BENCH_ONLY="${BENCH_ONLY:-}"
LOCKS="${LOCKS:-100}"
PODS="${PODS:-10}"

"${ROOT}/hack/install-test-deps.sh"

raw="$(mktemp)"
scale="$(mktemp)"
trap 'rm -f "${raw}" "${scale}"' EXIT
args=()
scale_status=0
if [[ -z "${BENCH_ONLY}" ]]; then
  # Installs the control plane's binaries itself (hack/kube-binaries.sh).
  N="${N}" LEASE_N="${LEASE_N}" HANDOFF_RAW="${raw}" "${ROOT}/hack/bench-handoff.sh" >/dev/null
  args+=(-handoff "${raw}")
  echo "running the scale benchmark: ${LOCKS} locks x ${PODS} pods (its report: stderr)..." >&2
  go run ./hack/bench/scale -locks "${LOCKS}" -pods "${PODS}" -backends redis,zookeeper \
    -calibrate "$((LOCKS * 3))" -summary "${scale}" >&2 || scale_status=$?
  args+=(-scale "${scale}")
else
  args+=(-only "${BENCH_ONLY}")
fi

echo "load before the backend runs: $(uptime)" >&2
go run ./hack/bench "${args[@]}"
echo "load after: $(uptime)" >&2
# A scale run that lost a hold or did not finish fails make bench, after the
# table (its "holds lost" row says which).
exit "${scale_status}"
