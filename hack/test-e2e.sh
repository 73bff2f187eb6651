#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# test-e2e.sh runs the end-to-end tests: it builds distlock's image (manager
# and waiter) and the test worker's image without Docker, brings up a real
# single-node cluster in its own network namespace (hack/local-cluster.sh),
# loads the images, runs ./test/e2e inside the namespace, and tears the
# cluster down again, whatever happened.
#
#   hack/test-e2e.sh                 # what `make test-e2e` runs
#   E2E_KEEP_CLUSTER=1 hack/test-e2e.sh   # leave the cluster up afterwards

set -o errexit
set -o nounset
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
OUT="${ROOT}/bin/e2e"
IMAGE="docker.io/local/distlock:e2e"
WORKER_IMAGE="docker.io/local/distlock-e2e-worker:e2e"
CLUSTER="${ROOT}/hack/local-cluster.sh"

log() { echo "test-e2e: $*" >&2; }

cleanup() {
  local rc=$?
  if [[ "${E2E_KEEP_CLUSTER:-}" == "1" ]]; then
    log "leaving the cluster up (E2E_KEEP_CLUSTER=1); stop it with: hack/local-cluster.sh down"
  else
    log "tearing the cluster down"
    "${CLUSTER}" down || rc=1
  fi
  exit "${rc}"
}

"${ROOT}/hack/install-test-deps.sh"
"${ROOT}/hack/install-e2e-deps.sh"

log "building static binaries: manager, waiter, e2e worker"
mkdir -p "${OUT}"
for pkg in ./cmd/manager ./cmd/waiter ./test/e2e/worker; do
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${OUT}/$(basename "${pkg}")" "${pkg}"
done
# The test binary is built here, outside the cluster's network namespace,
# which has no route to the Go module proxy.
go test -c -o "${OUT}/e2e.test" ./test/e2e

log "bringing up the local cluster (the first run builds Kubernetes: several minutes)"
trap cleanup EXIT
"${CLUSTER}" up

log "assembling and loading images ${IMAGE} and ${WORKER_IMAGE}"
"${CLUSTER}" image-from-binaries "${IMAGE}" "${OUT}/distlock.tar" "${OUT}/manager" "${OUT}/waiter"
"${CLUSTER}" image-from-binaries "${WORKER_IMAGE}" "${OUT}/worker.tar" "${OUT}/worker"
"${CLUSTER}" load-image "${OUT}/distlock.tar"
"${CLUSTER}" load-image "${OUT}/worker.tar"

eval "$("${CLUSTER}" env)"
mkdir -p "${OUT}/records"
log "running ./test/e2e inside the cluster's network namespace"
"${CLUSTER}" exec env --chdir="${ROOT}/test/e2e" \
  DISTLOCK_E2E_KUBECTL="$("${ROOT}/hack/kube-binaries.sh" kubectl)/kubectl" \
  DISTLOCK_E2E_KUSTOMIZE="${ROOT}/bin/kustomize" \
  DISTLOCK_E2E_NODE_IP="${NODE_IP}" \
  DISTLOCK_E2E_IMAGE="${IMAGE}" \
  DISTLOCK_E2E_WORKER_IMAGE="${WORKER_IMAGE}" \
  DISTLOCK_E2E_RECORD_DIR="${OUT}/records" \
  "${OUT}/e2e.test" -test.v -test.count=1 -test.timeout=40m 2>&1 | tee "${OUT}/e2e.log"
