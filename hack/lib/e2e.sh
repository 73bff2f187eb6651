#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# Shared by hack/test-e2e.sh and hack/demo.sh: build distlock's image (manager
# and waiter) and the test worker's image without Docker, bring up the local
# single-node cluster (hack/local-cluster.sh) and load the images into it.
# Source it, then call distlock::e2e::prepare; it registers a trap that tears
# the cluster down on exit unless E2E_KEEP_CLUSTER=1.

DISTLOCK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E_OUT="${DISTLOCK_ROOT}/bin/e2e"
E2E_IMAGE="docker.io/local/distlock:e2e"
E2E_WORKER_IMAGE="docker.io/local/distlock-e2e-worker:e2e"
E2E_CLUSTER="${DISTLOCK_ROOT}/hack/local-cluster.sh"

distlock::e2e::log() { echo "$(basename "$0"): $*" >&2; }

distlock::e2e::cleanup() {
  local rc=$?
  if [[ "${E2E_KEEP_CLUSTER:-}" == "1" ]]; then
    distlock::e2e::log "leaving the cluster up (E2E_KEEP_CLUSTER=1); stop it with: hack/local-cluster.sh down"
  else
    distlock::e2e::log "tearing the cluster down"
    "${E2E_CLUSTER}" down || rc=1
  fi
  exit "${rc}"
}

# distlock::e2e::prepare GO_PACKAGE... builds the images and the given extra
# Go packages (as static binaries in bin/e2e), brings the cluster up, loads the
# images, and exports the DISTLOCK_E2E_* settings that test/e2e/framework reads.
distlock::e2e::prepare() {
  "${DISTLOCK_ROOT}/hack/install-test-deps.sh"
  "${DISTLOCK_ROOT}/hack/install-e2e-deps.sh"
  make -C "${DISTLOCK_ROOT}" --no-print-directory kustomize >/dev/null

  distlock::e2e::log "building static binaries: manager, waiter, e2e worker $*"
  mkdir -p "${E2E_OUT}/records"
  local pkg
  for pkg in ./cmd/manager ./cmd/waiter ./test/e2e/worker "$@"; do
    (cd "${DISTLOCK_ROOT}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${E2E_OUT}/$(basename "${pkg}")" "${pkg}")
  done

  distlock::e2e::log "bringing up the local cluster (the first run builds Kubernetes: several minutes)"
  trap distlock::e2e::cleanup EXIT
  "${E2E_CLUSTER}" up

  distlock::e2e::log "assembling and loading images ${E2E_IMAGE} and ${E2E_WORKER_IMAGE}"
  "${E2E_CLUSTER}" image-from-binaries "${E2E_IMAGE}" "${E2E_OUT}/distlock.tar" "${E2E_OUT}/manager" "${E2E_OUT}/waiter"
  "${E2E_CLUSTER}" image-from-binaries "${E2E_WORKER_IMAGE}" "${E2E_OUT}/worker.tar" "${E2E_OUT}/worker"
  "${E2E_CLUSTER}" load-image "${E2E_OUT}/distlock.tar"
  "${E2E_CLUSTER}" load-image "${E2E_OUT}/worker.tar"

  local node_ip
  node_ip="$("${E2E_CLUSTER}" env | sed -n 's/^export NODE_IP=//p' | tr -d "'\"")"
  DISTLOCK_E2E_KUBECTL="$("${DISTLOCK_ROOT}/hack/kube-binaries.sh" kubectl)/kubectl"
  export DISTLOCK_E2E_KUBECTL
  export DISTLOCK_E2E_KUSTOMIZE="${DISTLOCK_ROOT}/bin/kustomize"
  export DISTLOCK_E2E_NODE_IP="${node_ip}"
  export DISTLOCK_E2E_IMAGE="${E2E_IMAGE}"
  export DISTLOCK_E2E_WORKER_IMAGE="${E2E_WORKER_IMAGE}"
  export DISTLOCK_E2E_RECORD_DIR="${E2E_OUT}/records"
}

# distlock::e2e::run_in_cluster DIR CMD... runs CMD in the cluster's network
# namespace, in directory DIR, with the DISTLOCK_E2E_* settings.
distlock::e2e::run_in_cluster() {
  local dir="$1"
  shift
  "${E2E_CLUSTER}" exec env --chdir="${dir}" \
    DISTLOCK_E2E_KUBECTL="${DISTLOCK_E2E_KUBECTL}" \
    DISTLOCK_E2E_KUSTOMIZE="${DISTLOCK_E2E_KUSTOMIZE}" \
    DISTLOCK_E2E_NODE_IP="${DISTLOCK_E2E_NODE_IP}" \
    DISTLOCK_E2E_IMAGE="${DISTLOCK_E2E_IMAGE}" \
    DISTLOCK_E2E_WORKER_IMAGE="${DISTLOCK_E2E_WORKER_IMAGE}" \
    DISTLOCK_E2E_RECORD_DIR="${DISTLOCK_E2E_RECORD_DIR}" \
    "$@"
}
