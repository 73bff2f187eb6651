#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# kube-binaries.sh provides Kubernetes control-plane and node binaries (and
# etcd) without needing a container runtime or setup-envtest's download
# service. It is the offline counterpart of `setup-envtest use`:
#
#   hack/kube-binaries.sh [COMPONENT...]
#
# prints the directory that holds the requested binaries (suitable for
# KUBEBUILDER_ASSETS). The default components are the envtest set:
# kube-apiserver, etcd and kubectl. Others: kube-controller-manager,
# kube-scheduler, kubelet.
#
# For each binary it tries, in order:
#   1. the cache: ${DISTLOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/distlock}
#   2. the official release download (skipped when KUBE_BINARIES_SOURCE=build)
#   3. a build from the Go module proxy: a throwaway module that requires
#      k8s.io/kubernetes and replaces each staging module with its published
#      version; etcd from go.etcd.io/etcd/server/v3.
# and links the cached binary into bin/k8s/<version>-<os>-<arch>/.
#
# Progress goes to stderr; only the assets directory goes to stdout.

set -o errexit
set -o nounset
set -o pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.0}"
KUBE_BINARIES_SOURCE="${KUBE_BINARIES_SOURCE:-auto}" # auto | download | build

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GOOS="$(go env GOOS)"
GOARCH="$(go env GOARCH)"
CACHE_DIR="${DISTLOCK_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/distlock}"
KUBE_CACHE="${CACHE_DIR}/kube/${KUBE_VERSION}-${GOOS}-${GOARCH}"
ETCD_CACHE="${CACHE_DIR}/etcd/${ETCD_VERSION}-${GOOS}-${GOARCH}"
ASSETS_DIR="${ROOT}/bin/k8s/${KUBE_VERSION#v}-${GOOS}-${GOARCH}"

log() { echo "kube-binaries: $*" >&2; }

# kube_minor prints the minor version number of KUBE_VERSION (1.37.2 -> 37).
kube_minor() { local v="${KUBE_VERSION#v}"; v="${v#*.}"; echo "${v%%.*}"; }

# download URL DEST fetches URL to DEST atomically; it fails fast when the
# network is closed.
download() {
  local url="$1" dest="$2"
  [[ "${KUBE_BINARIES_SOURCE}" == "build" ]] && return 1
  command -v curl >/dev/null || return 1
  log "downloading ${url}"
  if curl -fsSL --connect-timeout 5 --max-time 600 -o "${dest}.part" "${url}" 2>/dev/null; then
    mv "${dest}.part" "${dest}"
    return 0
  fi
  rm -f "${dest}.part"
  log "download unavailable; building from the Go module proxy instead"
  return 1
}

# kube_build_module prepares (once) a module that can build k8s.io/kubernetes
# commands: every staging module that k8s.io/kubernetes replaces with a local
# directory is replaced by its published v0.<minor>.<patch> version instead.
kube_build_module() {
  local dir="${CACHE_DIR}/build/kubernetes-${KUBE_VERSION}"
  if [[ -f "${dir}/.ready" ]]; then echo "${dir}"; return; fi
  mkdir -p "${dir}"
  local staging_version="v0.${KUBE_VERSION#v1.}"
  local gomod
  gomod="$(cd "${dir}" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  {
    echo "module distlock.local/kube-build"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"${staging_version}"'#p' "${gomod}"
    echo ")"
  } >"${dir}/go.mod"
  log "resolving k8s.io/kubernetes@${KUBE_VERSION} (staging modules at ${staging_version})"
  (cd "${dir}" && go get "k8s.io/kubernetes@${KUBE_VERSION}" >&2)
  touch "${dir}/.ready"
  echo "${dir}"
}

build_kube() {
  local name="$1" dest="$2" dir
  dir="$(kube_build_module)"
  local pkg="k8s.io/kubernetes/cmd/${name}"
  local v="${KUBE_VERSION#v}"
  local ldflags="-s -w"
  ldflags+=" -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION}"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=${v%%.*}"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=$(kube_minor)"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${KUBE_VERSION}"
  log "building ${name} ${KUBE_VERSION} from source (several minutes the first time)"
  local start=${SECONDS}
  (cd "${dir}" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${dest}.part" "${pkg}" >&2)
  mv "${dest}.part" "${dest}"
  log "built ${name} in $((SECONDS - start))s"
}

build_etcd() {
  local dest="$1"
  local dir="${CACHE_DIR}/build/etcd-${ETCD_VERSION}"
  mkdir -p "${dir}"
  if [[ ! -f "${dir}/go.mod" ]]; then
    printf 'module distlock.local/etcd-build\n\ngo %s\n' \
      "$(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')" >"${dir}/go.mod"
    (cd "${dir}" && go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2)
  fi
  log "building etcd ${ETCD_VERSION} from source"
  local start=${SECONDS}
  (cd "${dir}" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${dest}.part" go.etcd.io/etcd/server/v3 >&2)
  mv "${dest}.part" "${dest}"
  log "built etcd in $((SECONDS - start))s"
}

fetch_kube() {
  local name="$1" dest="${KUBE_CACHE}/$1"
  [[ -x "${dest}" ]] && return 0
  mkdir -p "${KUBE_CACHE}"
  if download "https://dl.k8s.io/release/${KUBE_VERSION}/bin/${GOOS}/${GOARCH}/${name}" "${dest}"; then
    chmod +x "${dest}"
    # A closed network may be answered by a proxy page: insist on a binary.
    if "${dest}" --version >/dev/null 2>&1; then return 0; fi
    rm -f "${dest}"
  fi
  build_kube "${name}" "${dest}"
}

fetch_etcd() {
  local dest="${ETCD_CACHE}/etcd"
  [[ -x "${dest}" ]] && return 0
  mkdir -p "${ETCD_CACHE}"
  local tgz="${ETCD_CACHE}/etcd.tar.gz"
  if download "https://github.com/etcd-io/etcd/releases/download/${ETCD_VERSION}/etcd-${ETCD_VERSION}-${GOOS}-${GOARCH}.tar.gz" "${tgz}" &&
    tar -xzf "${tgz}" -C "${ETCD_CACHE}" --strip-components=1 "etcd-${ETCD_VERSION}-${GOOS}-${GOARCH}/etcd" 2>/dev/null &&
    "${dest}" --version >/dev/null 2>&1; then
    rm -f "${tgz}"
    return 0
  fi
  rm -f "${tgz}" "${dest}"
  build_etcd "${dest}"
}

main() {
  local components=("$@")
  if [[ ${#components[@]} -eq 0 ]]; then
    components=(kube-apiserver etcd kubectl)
  fi
  mkdir -p "${ASSETS_DIR}"
  local c
  for c in "${components[@]}"; do
    case "${c}" in
      etcd)
        fetch_etcd
        ln -sfn "${ETCD_CACHE}/etcd" "${ASSETS_DIR}/etcd"
        ;;
      kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kubectl)
        fetch_kube "${c}"
        ln -sfn "${KUBE_CACHE}/${c}" "${ASSETS_DIR}/${c}"
        ;;
      *)
        log "unknown component ${c}"
        exit 2
        ;;
    esac
  done
  echo "${ASSETS_DIR}"
}

main "$@"
