#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# bench-handoff.sh measures how fast a lock passes from one holder to the
# next, for distlock (Redis and ZooKeeper backends) and, in the same run and
# on the same local control plane, for client-go leader election on a Lease
# (the usual Kubernetes-native way to take turns). It prints a table with
# each case's latency and its ratio to the Lease.
#
#   hack/bench-handoff.sh          # 20 handoffs per case
#   N=50 hack/bench-handoff.sh
#   N=200 LEASE_N=20 hack/bench-handoff.sh   # fewer for the Lease (~4 s each)
#
# HANDOFF_RAW=<file> also writes the raw benchmark lines there (make bench
# merges them into its table: hack/bench.sh).

set -o errexit
set -o nounset
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
N="${N:-20}"
LEASE_N="${LEASE_N:-${N}}"

"${ROOT}/hack/install-test-deps.sh"
ASSETS="$("${ROOT}/hack/kube-binaries.sh" kube-apiserver etcd kubectl)"

# run_bench PATTERN COUNT runs the sub-benchmarks of BenchmarkHandoff that
# PATTERN matches, COUNT handoffs each.
run_bench() {
  DISTLOCK_TEST_LOG=off KUBEBUILDER_ASSETS="${ASSETS}" go test ./internal/controller/ -run '^$' \
    -bench "^BenchmarkHandoff\$/$1" -benchtime "$2x" -count 1 -timeout 60m 2>/dev/null
}
if [[ "${LEASE_N}" == "${N}" ]]; then
  echo "running BenchmarkHandoff, ${N} handoffs per case (the Lease case takes ~4s per handoff)..." >&2
  out="$(run_bench '' "${N}")"
else
  echo "running BenchmarkHandoff, ${N} handoffs per distlock case, ${LEASE_N} for the Lease (~4s each)..." >&2
  out="$(run_bench '^distlock-' "${N}")"
  lease="$(run_bench '^lease-' "${LEASE_N}")"
  out+=$'\n'"${lease}"
fi
echo "${out}" | grep -E '^(goos|goarch|cpu|Benchmark)' >&2 || true
if [[ -n "${HANDOFF_RAW:-}" ]]; then
  echo "${out}" | grep -E '^Benchmark' >"${HANDOFF_RAW}" || true
fi

echo "${out}" | awk '
  /^BenchmarkHandoff\// {
    name = $1; sub(/^BenchmarkHandoff\//, "", name); sub(/-[0-9]+$/, "", name)
    for (i = 3; i < NF; i++) {
      if ($(i+1) == "p50-ms") p50[name] = $i
      if ($(i+1) == "p90-ms") p90[name] = $i
      if ($(i+1) == "max-ms") max[name] = $i
    }
    order[++n] = name
  }
  END {
    if (n == 0) { print "no benchmark results" > "/dev/stderr"; exit 1 }
    base = p50["lease-leaderelection"]
    printf "| case | p50 (ms) | p90 (ms) | max (ms) | p50 vs Lease |\n|---|---:|---:|---:|---:|\n"
    for (i = 1; i <= n; i++) {
      c = order[i]
      ratio = (base > 0) ? sprintf("%.3fx", p50[c] / base) : "n/a"
      printf "| %s | %.1f | %.1f | %.1f | %s |\n", c, p50[c], p90[c], max[c], ratio
    }
  }'
