#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# install-e2e-deps.sh makes sure the node-side software that
# hack/local-cluster.sh runs is installed, from Debian's packages:
#
#   containerd, runc                 the container runtime (CRI) and OCI runtime
#   containernetworking-plugins      the bridge, host-local and loopback CNI plugins
#   iproute2                         ip netns / ip link / ip addr
#   iptables                         used by the CNI bridge plugin
#   openssl                          the cluster's CA, serving certificate and keys
#   curl                             health checks of the components
#   util-linux                       nsenter, mountpoint, setsid (usually present)
#
# It changes nothing when they are all there. It never starts a service: the
# local cluster runs its own containerd with its own socket and state, and
# stops it again. Packages' attempts to start their system services are
# refused through policy-rc.d while installing (when no policy is in place).

set -o errexit
set -o nounset
set -o pipefail

CNI_BIN_DIR="${CNI_BIN_DIR:-/usr/lib/cni}"

log() { echo "install-e2e-deps: $*" >&2; }

missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[[ -x "${CNI_BIN_DIR}/bridge" && -x "${CNI_BIN_DIR}/host-local" && -x "${CNI_BIN_DIR}/loopback" ]] ||
  missing+=(containernetworking-plugins)
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
{ command -v nsenter >/dev/null && command -v setsid >/dev/null && command -v mountpoint >/dev/null; } ||
  missing+=(util-linux)

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  log "missing ${missing[*]} and no apt-get here; install them with your package manager"
  exit 1
fi
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  SUDO="sudo"
fi

# Keep the packages' maintainer scripts from starting containerd.service:
# the local cluster does not use the system instance.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "${policy}" ]]; then
  printf '#!/bin/sh\n# temporary, from distlock hack/install-e2e-deps.sh\nexit 101\n' | ${SUDO} tee "${policy}" >/dev/null
  ${SUDO} chmod 0755 "${policy}"
  trap '${SUDO} rm -f "${policy}"' EXIT
fi

log "installing ${missing[*]} (Debian packages)"
${SUDO} apt-get update -qq
DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
