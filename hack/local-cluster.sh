#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# local-cluster.sh runs a real single-node Kubernetes cluster for the
# end-to-end tests and the demo, in the spirit of Kubernetes'
# hack/local-up-cluster.sh: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd (Debian's, with runc and the CNI plugins) and a
# kubelet, all inside a network namespace of their own.
#
#   hack/local-cluster.sh up                 start it (idempotent-ish); waits until the node is Ready
#   hack/local-cluster.sh down               stop everything, remove mounts, cgroups, the netns and the state
#   hack/local-cluster.sh status             what is running
#   hack/local-cluster.sh env                shell exports: KUBECONFIG, NETNS, NODE_IP, ...
#   hack/local-cluster.sh kubectl ARGS...    the cluster's kubectl, inside the netns, as admin
#   hack/local-cluster.sh exec CMD...        any command inside the netns, with KUBECONFIG set
#   hack/local-cluster.sh load-image TAR     import an image tarball into the node's containerd
#   hack/local-cluster.sh image-from-binaries [--entrypoint CMD[,ARG...]] NAME:TAG OUT.tar BIN...
#                                            pack static binaries, each at /<basename>, into an image
#   hack/local-cluster.sh smoke              run a Job with init containers that talk to Redis and the API
#
# Networking. Nothing listens on the host's interfaces and nothing leaves the
# machine: every component runs in the network namespace ${NETNS} (default
# distlock-e2e), which holds only loopback, the node address NODE_IP (default
# 10.213.0.1/24, on a dummy or veth interface that exists only inside the
# namespace), the API service address (first address of SERVICE_CIDR) and the
# CNI bridge of the pods (POD_CIDR, default 10.214.0.0/24). The namespace has
# no default route. A server started with `exec` on NODE_IP (e.g. Redis for
# the tests) is reachable from the pods.
#
# Components are entered into the namespace with `nsenter --net`, not
# `ip netns exec`: the latter also gives each command a private mount
# namespace with a fresh /sys, so the kubelet would lose the cgroup v1 mounts
# and containerd would not see the volumes that the kubelet mounts.
#
# There is no kube-proxy: the API service address is an address of the node
# itself and kube-apiserver listens on port 443, so in-cluster clients reach
# it through KUBERNETES_SERVICE_HOST/PORT; other ClusterIP services are not
# routed. There is no cluster DNS.
#
# Images come from no registry. The pod sandbox image docker.io/local/pause:e2e
# is a tiny static Go program (hack/local-cluster/pause) packed with crane
# (go-containerregistry, installed into bin/ from the Go module proxy); use
# image-from-binaries and load-image for other images and
# `imagePullPolicy: Never` in pods. CRI normalises local/x:1 to docker.io/local/x:1.
#
# State (PKI, kubeconfigs, data, logs) lives in DISTLOCK_CLUSTER_DIR (default
# bin/local-cluster); logs of every component are in its logs/ directory.
# After a failed `up` they are kept in ${DISTLOCK_CLUSTER_DIR}-logs and the
# rest is torn down (DISTLOCK_KEEP_ON_FAILURE=1 keeps everything).
# Everything must run as root. The Debian packages it needs are installed by
# hack/install-e2e-deps.sh when missing. One cluster per machine at a time:
# the kubelet's device-plugin socket has a fixed path.
#
# Settings (environment): DISTLOCK_CLUSTER_DIR, DISTLOCK_NETNS (distlock-e2e),
# DISTLOCK_NODE_NAME (= netns name), DISTLOCK_NODE_IP (10.213.0.1),
# DISTLOCK_POD_CIDR (10.214.0.0/24), DISTLOCK_SERVICE_CIDR (10.215.0.0/24),
# DISTLOCK_TIMEOUT_* (deadlines in seconds), CRANE_VERSION (v0.20.7), and
# KUBE_VERSION/ETCD_VERSION/DISTLOCK_CACHE_DIR of hack/kube-binaries.sh.

# Many functions run only indirectly (traps, distlock::util::wait_for CMD).
# shellcheck disable=SC2317
set -o errexit
set -o nounset
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

STATE_DIR="${DISTLOCK_CLUSTER_DIR:-${ROOT}/bin/local-cluster}"
NETNS="${DISTLOCK_NETNS:-distlock-e2e}"
NODE_NAME="${DISTLOCK_NODE_NAME:-${NETNS}}"
NODE_IP="${DISTLOCK_NODE_IP:-10.213.0.1}"
NODE_PREFIX="${DISTLOCK_NODE_PREFIX:-24}"
POD_CIDR="${DISTLOCK_POD_CIDR:-10.214.0.0/24}"
SERVICE_CIDR="${DISTLOCK_SERVICE_CIDR:-10.215.0.0/24}"
CNI_BIN_DIR="${CNI_BIN_DIR:-/usr/lib/cni}"
CRANE_VERSION="${CRANE_VERSION:-v0.20.7}"
PAUSE_IMAGE="docker.io/local/pause:e2e"
SMOKE_REDIS_PORT="${DISTLOCK_SMOKE_REDIS_PORT:-6390}"

# Deadlines, in seconds, of the waits in `up` and `down`.
TIMEOUT_ETCD="${DISTLOCK_TIMEOUT_ETCD:-60}"
TIMEOUT_APISERVER="${DISTLOCK_TIMEOUT_APISERVER:-180}"
TIMEOUT_CONTAINERD="${DISTLOCK_TIMEOUT_CONTAINERD:-60}"
TIMEOUT_COMPONENT="${DISTLOCK_TIMEOUT_COMPONENT:-120}"
TIMEOUT_NODE_READY="${DISTLOCK_TIMEOUT_NODE_READY:-180}"
TIMEOUT_STOP="${DISTLOCK_TIMEOUT_STOP:-30}"

NODE_IFACE="node0"          # carries NODE_IP and the API service address, inside the netns
CNI_BRIDGE="cni0"           # the pods' bridge, inside the netns
CNI_NETWORK="${NETNS}"      # the CNI network name (and prefix of libcni's cache files)
CGROUP_ROOT="/${NETNS}"     # the kubelet's cgroupRoot: every pod cgroup lives below it
API_PORT=443                # so that KUBERNETES_SERVICE_PORT (443) reaches it without kube-proxy

NETNS_PATH="/run/netns/${NETNS}"
PKI_DIR="${STATE_DIR}/pki"
LOG_DIR="${STATE_DIR}/logs"
PID_DIR="${STATE_DIR}/pids"
IMAGE_DIR="${STATE_DIR}/images"
CONTAINERD_DIR="${STATE_DIR}/containerd"
CONTAINERD_SOCK="${CONTAINERD_DIR}/containerd.sock"
KUBELET_DIR="${STATE_DIR}/kubelet"
ADMIN_KUBECONFIG="${STATE_DIR}/admin.kubeconfig"

# Host directories at fixed paths that the components create when missing:
# libcni's cache, the kubelet's container log links and device-plugin socket,
# containerd's shim sockets; and ip-netns's mount point. `down` removes what
# it finds there of ours, and those directories when they are empty.
HOST_DIRS=(/var/lib/cni /var/log/containers /var/lib/kubelet /run/containerd /run/netns)

# Components in start order; `down` stops them in reverse.
COMPONENTS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet)

KUBE_BIN_DIR=""
CRANE=""
CURRENT_COMPONENT=""
LOG_TAIL_SHOWN=""

# --- logging ---------------------------------------------------------------

distlock::log::status() { echo "+++ [$(date +'%m%d %H:%M:%S')] $*" >&2; }
distlock::log::info() { echo "    $*" >&2; }
distlock::log::warn() { echo "!!! [$(date +'%m%d %H:%M:%S')] warning: $*" >&2; }
distlock::log::error() { echo "!!! [$(date +'%m%d %H:%M:%S')] error: $*" >&2; }

# distlock::log::tail NAME prints the end of a component's log.
distlock::log::tail() {
  local name="$1" lines="${2:-40}"
  local log="${LOG_DIR}/${name}.log"
  [[ -f "${log}" ]] || return 0
  echo "--- last ${lines} lines of ${log} ---" >&2
  tail -n "${lines}" "${log}" >&2 || true
  echo "--- end of ${name} log ---" >&2
}

distlock::util::die() {
  distlock::log::error "$*"
  exit 1
}

# --- helpers ---------------------------------------------------------------

distlock::util::require_root() {
  if [[ "$(id -u)" -ne 0 ]]; then
    distlock::util::die "must run as root (network namespaces, mounts and cgroups); try: sudo $0 $*"
  fi
}

# distlock::net::first_ip CIDR prints the first host address of an IPv4 CIDR.
distlock::net::first_ip() {
  local a b c d n
  IFS=. read -r a b c d <<<"${1%/*}"
  n=$(((a << 24 | b << 16 | c << 8 | d) + 1))
  echo "$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))"
}
API_SERVICE_IP="$(distlock::net::first_ip "${SERVICE_CIDR}")"
POD_GATEWAY="$(distlock::net::first_ip "${POD_CIDR}")"

# distlock::netns::run CMD... runs CMD in the cluster's network namespace
# (and in the host's mount namespace).
distlock::netns::run() {
  nsenter --net="${NETNS_PATH}" -- "$@"
}

distlock::netns::exists() {
  [[ -e "${NETNS_PATH}" ]] && ip netns list 2>/dev/null | grep -qw -- "^${NETNS}"
}

# distlock::proc::starttime PID prints the start time of a process (clock
# ticks since boot), which tells a process from a later one with its pid.
distlock::proc::starttime() {
  local stat fields
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[19]}"
}

# distlock::proc::alive PID [STARTTIME] succeeds when the process runs (and is
# the one that started at STARTTIME); a zombie counts as gone.
distlock::proc::alive() {
  local pid="$1" want="${2:-}" stat fields
  stat="$(cat "/proc/${pid}/stat" 2>/dev/null)" || return 1
  read -r -a fields <<<"${stat##*) }"
  [[ "${fields[0]}" != "Z" && "${fields[0]}" != "X" ]] || return 1
  [[ -z "${want}" || "${fields[19]}" == "${want}" ]]
}

# distlock::proc::start NAME CMD... starts CMD in its own session (so its
# process group can be stopped as a whole) inside the netns, logging to
# logs/NAME.log, and records "PID STARTTIME" in pids/NAME.pid.
distlock::proc::start() {
  local name="$1"
  shift
  mkdir -p "${LOG_DIR}" "${PID_DIR}"
  CURRENT_COMPONENT="${name}"
  echo "=== $(date -Is) starting: $*" >>"${LOG_DIR}/${name}.log"
  setsid nsenter --net="${NETNS_PATH}" -- "$@" >>"${LOG_DIR}/${name}.log" 2>&1 </dev/null &
  local pid=$!
  echo "${pid} $(distlock::proc::starttime "${pid}")" >"${PID_DIR}/${name}.pid"
  distlock::log::info "${name} started (pid ${pid}, log ${LOG_DIR}/${name}.log)"
}

# distlock::proc::pid NAME prints the pid of a running component.
distlock::proc::pid() {
  local f="${PID_DIR}/$1.pid" pid start
  [[ -f "${f}" ]] || return 1
  read -r pid start <"${f}" || return 1
  distlock::proc::alive "${pid}" "${start}" || return 1
  echo "${pid}"
}

# distlock::proc::stop NAME [TIMEOUT] stops a component's process group:
# SIGTERM, then SIGKILL when it outlives the deadline.
distlock::proc::stop() {
  local name="$1" timeout="${2:-${TIMEOUT_STOP}}"
  local f="${PID_DIR}/${name}.pid" pid start
  [[ -f "${f}" ]] || return 0
  read -r pid start <"${f}" || true
  if [[ -n "${pid:-}" ]] && distlock::proc::alive "${pid}" "${start:-}"; then
    distlock::log::info "stopping ${name} (pid ${pid})"
    kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while distlock::proc::alive "${pid}" "${start}" && ((SECONDS < deadline)); do
      sleep 0.2
    done
    if distlock::proc::alive "${pid}" "${start}"; then
      distlock::log::warn "${name} did not stop within ${timeout}s; killing it"
      kill -KILL -- "-${pid}" 2>/dev/null || kill -KILL "${pid}" 2>/dev/null || true
      deadline=$((SECONDS + 10))
      while distlock::proc::alive "${pid}" "${start}" && ((SECONDS < deadline)); do
        sleep 0.2
      done
    fi
  fi
  rm -f "${f}"
}

# distlock::util::wait_for COMPONENT TIMEOUT DESCRIPTION CMD... polls CMD
# until it succeeds. It fails, showing the component's log, when the
# component exits or the deadline passes.
distlock::util::wait_for() {
  local component="$1" timeout="$2" what="$3"
  LOG_TAIL_SHOWN=""
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n "${component}" ]] && ! distlock::proc::pid "${component}" >/dev/null; then
      distlock::log::error "${component} exited while waiting for ${what}"
      distlock::log::tail "${component}"
      LOG_TAIL_SHOWN=1
      return 1
    fi
    if ((SECONDS >= deadline)); then
      distlock::log::error "timed out after ${timeout}s waiting for ${what}"
      if [[ -n "${component}" ]]; then
        distlock::log::tail "${component}"
        LOG_TAIL_SHOWN=1
      fi
      return 1
    fi
    sleep 0.5
  done
}

distlock::kube::bin_dir() {
  if [[ -z "${KUBE_BIN_DIR}" ]]; then
    if [[ -f "${STATE_DIR}/kube-bin-dir" ]]; then
      KUBE_BIN_DIR="$(<"${STATE_DIR}/kube-bin-dir")"
    else
      KUBE_BIN_DIR="$("${ROOT}/hack/kube-binaries.sh" kubectl)"
    fi
  fi
  echo "${KUBE_BIN_DIR}"
}

# distlock::kube::kubectl ARGS... runs kubectl as admin inside the netns.
distlock::kube::kubectl() {
  distlock::netns::run "$(distlock::kube::bin_dir)/kubectl" --kubeconfig="${ADMIN_KUBECONFIG}" "$@"
}

# distlock::util::healthz URL gets URL from inside the netns, anonymously
# and without verifying TLS: the health checks of the components.
distlock::util::healthz() {
  distlock::netns::run curl --silent --show-error --fail --insecure --max-time 5 "$1"
}

distlock::ctr() {
  timeout 60 ctr --address "${CONTAINERD_SOCK}" --namespace k8s.io "$@"
}

# --- binaries and images ---------------------------------------------------

distlock::binaries::ensure() {
  distlock::log::status "getting the Kubernetes binaries (hack/kube-binaries.sh; building kubelet, kube-controller-manager and kube-scheduler takes minutes the first time)"
  KUBE_BIN_DIR="$("${ROOT}/hack/kube-binaries.sh" kube-apiserver etcd kubectl kube-controller-manager kube-scheduler kubelet)"
  distlock::log::info "binaries in ${KUBE_BIN_DIR}"
}

# distlock::crane::ensure installs crane into bin/crane-VERSION (once) and
# links bin/crane to it, like the Makefile's go-install-tool.
distlock::crane::ensure() {
  CRANE="${ROOT}/bin/crane-${CRANE_VERSION}"
  if [[ ! -x "${CRANE}" ]]; then
    distlock::log::status "installing crane ${CRANE_VERSION} (go-containerregistry) into bin/"
    local tmp
    tmp="$(mktemp -d)"
    GOBIN="${tmp}" go install "github.com/google/go-containerregistry/cmd/crane@${CRANE_VERSION}"
    mkdir -p "${ROOT}/bin"
    mv "${tmp}/crane" "${CRANE}"
    rmdir "${tmp}"
  fi
  ln -sfn "${CRANE}" "${ROOT}/bin/crane"
}

# distlock::image::normalize NAME prints NAME as CRI names it:
# x:1 -> docker.io/library/x:1, local/x:1 -> docker.io/local/x:1.
distlock::image::normalize() {
  local name="$1" first="${1%%/*}"
  if [[ "${name}" != */* ]]; then
    name="docker.io/library/${name}"
  elif [[ "${first}" != *.* && "${first}" != *:* && "${first}" != "localhost" ]]; then
    name="docker.io/${name}"
  fi
  [[ "${name##*/}" == *:* || "${name}" == *@* ]] || name="${name}:latest"
  echo "${name}"
}

# distlock::image::cleanup_build WORKDIR [REGISTRY_PID] stops the throwaway
# registry of from_binaries and removes its work dir.
distlock::image::cleanup_build() {
  if [[ -n "${2:-}" ]]; then
    kill "$2" 2>/dev/null || true
    wait "$2" 2>/dev/null || true
  fi
  rm -rf "$1"
}

# distlock::image::from_binaries [--entrypoint CMD[,ARG...]] NAME:TAG OUT.tar BIN...
# packs static binaries, each at /<basename>, into a single-layer image
# tarball (docker format, platform linux/GOARCH) without a container engine:
# crane pushes the layer onto an empty base in a throwaway registry on
# 127.0.0.1, then sets entrypoint and platform and saves the result. The
# default entrypoint is the first binary.
distlock::image::from_binaries() {
  local entrypoint=""
  if [[ "${1:-}" == "--entrypoint" ]]; then
    entrypoint="$2"
    shift 2
  elif [[ "${1:-}" == --entrypoint=* ]]; then
    entrypoint="${1#--entrypoint=}"
    shift
  fi
  if [[ $# -lt 3 ]]; then
    distlock::util::die "usage: $0 image-from-binaries [--entrypoint CMD[,ARG...]] NAME:TAG OUT.tar BIN..."
  fi
  local name out
  name="$(distlock::image::normalize "$1")"
  out="$2"
  shift 2
  [[ -n "${entrypoint}" ]] || entrypoint="/$(basename "$1")"
  [[ -n "${CRANE}" ]] || distlock::crane::ensure
  (
    set -o errexit
    work="$(mktemp -d)"
    registry_pid=""
    trap 'distlock::image::cleanup_build "${work}" "${registry_pid}"' EXIT
    mkdir -p "${work}/rootfs/tmp"
    chmod 1777 "${work}/rootfs/tmp"
    local bin
    for bin in "$@"; do
      [[ -f "${bin}" && -x "${bin}" ]] || distlock::util::die "${bin} is not an executable file"
      install -m 0755 "${bin}" "${work}/rootfs/$(basename "${bin}")"
    done
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
      -C "${work}/rootfs" -cf "${work}/layer.tar" .
    # A registry that lives as long as this function, on loopback.
    : >"${work}/registry.log"
    "${CRANE}" registry serve --address 127.0.0.1:0 >"${work}/registry.log" 2>&1 &
    registry_pid=$!
    local port="" deadline=$((SECONDS + 30))
    until [[ -n "${port}" ]]; do
      port="$(sed -n 's/.*serving on port \([0-9][0-9]*\).*/\1/p' "${work}/registry.log")"
      if [[ -z "${port}" ]]; then
        if ! kill -0 "${registry_pid}" 2>/dev/null || ((SECONDS >= deadline)); then
          cat "${work}/registry.log" >&2
          distlock::util::die "crane registry did not start"
        fi
        sleep 0.1
      fi
    done
    local tmp_ref="127.0.0.1:${port}/${name#*/}"
    "${CRANE}" append --new_layer "${work}/layer.tar" --new_tag "${tmp_ref}" >"${work}/append.log" 2>&1 ||
      { cat "${work}/append.log" >&2; exit 1; }
    "${CRANE}" mutate "${tmp_ref}" --entrypoint "${entrypoint}" \
      --set-platform "linux/$(go env GOARCH)" --tag "${name}" --output "${out}" >"${work}/mutate.log" 2>&1 ||
      { cat "${work}/mutate.log" >&2; exit 1; }
  )
  distlock::log::info "image ${name} (entrypoint ${entrypoint}) written to ${out}"
}

# distlock::image::load TARBALL imports an image tarball into the node's
# containerd, where the kubelet finds it (imagePullPolicy: Never).
distlock::image::load() {
  local tarball="$1"
  [[ -f "${tarball}" ]] || distlock::util::die "no such file: ${tarball}"
  [[ -S "${CONTAINERD_SOCK}" ]] || distlock::util::die "containerd is not running (no ${CONTAINERD_SOCK}); run: $0 up"
  distlock::ctr images import "${tarball}" >&2
}

# distlock::image::build_pause builds the sandbox image and imports it.
distlock::image::build_pause() {
  distlock::log::status "building the pod sandbox image ${PAUSE_IMAGE} (hack/local-cluster/pause)"
  mkdir -p "${IMAGE_DIR}"
  (cd "${ROOT}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${IMAGE_DIR}/pause" ./hack/local-cluster/pause)
  distlock::image::from_binaries "${PAUSE_IMAGE}" "${IMAGE_DIR}/pause.tar" "${IMAGE_DIR}/pause"
}

# --- configuration -----------------------------------------------------------

distlock::netns::setup() {
  distlock::log::status "creating network namespace ${NETNS}: lo, ${NODE_IFACE} ${NODE_IP}/${NODE_PREFIX} (node) and ${API_SERVICE_IP}/32 (API service)"
  distlock::netns::exists || ip netns add "${NETNS}"
  ip -n "${NETNS}" link set lo up
  if ! ip -n "${NETNS}" link show "${NODE_IFACE}" >/dev/null 2>&1; then
    # A dummy interface when the kernel has one; otherwise a veth pair whose
    # both ends stay inside the namespace.
    if ! ip -n "${NETNS}" link add "${NODE_IFACE}" type dummy 2>/dev/null; then
      ip -n "${NETNS}" link add "${NODE_IFACE}" type veth peer name "${NODE_IFACE}-peer"
      ip -n "${NETNS}" link set "${NODE_IFACE}-peer" up
    fi
  fi
  ip -n "${NETNS}" addr replace "${NODE_IP}/${NODE_PREFIX}" dev "${NODE_IFACE}"
  ip -n "${NETNS}" addr replace "${API_SERVICE_IP}/32" dev "${NODE_IFACE}"
  ip -n "${NETNS}" link set "${NODE_IFACE}" up
}

# distlock::pki::cert NAME CN ORG EXTENSIONS signs NAME.crt with the CA.
distlock::pki::cert() {
  local name="$1" cn="$2" org="$3" ext="$4" subj="/CN=$2"
  [[ -n "${org}" ]] && subj="/O=${org}/CN=${cn}"
  openssl genrsa -out "${PKI_DIR}/${name}.key" 2048 2>/dev/null
  openssl req -new -key "${PKI_DIR}/${name}.key" -subj "${subj}" -out "${PKI_DIR}/${name}.csr" 2>/dev/null
  printf '[ext]\n%s\n' "${ext}" >"${PKI_DIR}/${name}.ext"
  openssl x509 -req -in "${PKI_DIR}/${name}.csr" -CA "${PKI_DIR}/ca.crt" -CAkey "${PKI_DIR}/ca.key" \
    -CAcreateserial -CAserial "${PKI_DIR}/ca.srl" -days 365 -sha256 \
    -extfile "${PKI_DIR}/${name}.ext" -extensions ext -out "${PKI_DIR}/${name}.crt" 2>/dev/null
  rm -f "${PKI_DIR}/${name}.csr" "${PKI_DIR}/${name}.ext"
}

distlock::pki::setup() {
  [[ -f "${PKI_DIR}/.done" ]] && return 0
  distlock::log::status "writing PKI (CA, API server serving and kubelet-client certificates, service-account key pair) and tokens"
  mkdir -p "${PKI_DIR}"
  chmod 0700 "${PKI_DIR}"
  openssl genrsa -out "${PKI_DIR}/ca.key" 2048 2>/dev/null
  printf '[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n' \
    >"${PKI_DIR}/ca.cnf"
  openssl req -x509 -new -key "${PKI_DIR}/ca.key" -subj "/CN=${NETNS}-ca" -config "${PKI_DIR}/ca.cnf" \
    -extensions ca -days 3650 -sha256 -out "${PKI_DIR}/ca.crt" 2>/dev/null
  rm -f "${PKI_DIR}/ca.cnf"
  local sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  sans+=",DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:${NODE_NAME}"
  sans+=",IP:${NODE_IP},IP:${API_SERVICE_IP},IP:127.0.0.1"
  distlock::pki::cert apiserver kube-apiserver "" \
    "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=${sans}"
  # The API server's client certificate towards the kubelet (logs, exec).
  distlock::pki::cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters \
    "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  openssl genrsa -out "${PKI_DIR}/sa.key" 2048 2>/dev/null
  openssl rsa -in "${PKI_DIR}/sa.key" -pubout -out "${PKI_DIR}/sa.pub" 2>/dev/null

  # Static tokens: token,user,uid,"groups".
  local admin kubelet kcm scheduler
  admin="$(openssl rand -hex 16)"
  kubelet="$(openssl rand -hex 16)"
  kcm="$(openssl rand -hex 16)"
  scheduler="$(openssl rand -hex 16)"
  {
    echo "${admin},admin,admin,\"system:masters\""
    echo "${kubelet},system:node:${NODE_NAME},kubelet,\"system:nodes\""
    echo "${kcm},system:kube-controller-manager,kube-controller-manager"
    echo "${scheduler},system:kube-scheduler,kube-scheduler"
  } >"${PKI_DIR}/tokens.csv"
  chmod 0600 "${PKI_DIR}/tokens.csv"
  distlock::kube::write_kubeconfig "${ADMIN_KUBECONFIG}" admin "${admin}"
  distlock::kube::write_kubeconfig "${STATE_DIR}/kubelet.kubeconfig" "system:node:${NODE_NAME}" "${kubelet}"
  distlock::kube::write_kubeconfig "${STATE_DIR}/kube-controller-manager.kubeconfig" system:kube-controller-manager "${kcm}"
  distlock::kube::write_kubeconfig "${STATE_DIR}/kube-scheduler.kubeconfig" system:kube-scheduler "${scheduler}"
  touch "${PKI_DIR}/.done"
}

distlock::kube::write_kubeconfig() {
  local file="$1" user="$2" token="$3"
  cat >"${file}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ${NETNS}
  cluster:
    server: https://${NODE_IP}:${API_PORT}
    certificate-authority-data: $(base64 -w0 <"${PKI_DIR}/ca.crt")
users:
- name: ${user}
  user:
    token: ${token}
contexts:
- name: ${NETNS}
  context:
    cluster: ${NETNS}
    user: ${user}
current-context: ${NETNS}
EOF
  chmod 0600 "${file}"
}

distlock::containerd::write_config() {
  mkdir -p "${CONTAINERD_DIR}" "${STATE_DIR}/cni/net.d" "${STATE_DIR}/cni/ipam"
  cat >"${CONTAINERD_DIR}/config.toml" <<EOF
# containerd for the distlock local cluster (hack/local-cluster.sh). Its own
# root, state and socket; nothing under /var/lib/containerd or /run/containerd.
version = 2
root = "${CONTAINERD_DIR}/root"
state = "${CONTAINERD_DIR}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "${CONTAINERD_SOCK}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${CONTAINERD_DIR}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # The sandbox may not lower oom_score_adj; without this every pod sandbox
  # fails with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${CONTAINERD_DIR}/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${STATE_DIR}/cni/net.d"
    max_conf_num = 1
EOF
  # containerd itself sets up the pods' loopback (with the loopback plugin
  # from bin_dir); this network gives them eth0 on the bridge.
  cat >"${STATE_DIR}/cni/net.d/10-${CNI_NETWORK}.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "${CNI_NETWORK}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${CNI_BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${POD_CIDR}", "gateway": "${POD_GATEWAY}"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "${STATE_DIR}/cni/ipam"
      }
    }
  ]
}
EOF
}

distlock::kubelet::write_config() {
  mkdir -p "${KUBELET_DIR}" "${STATE_DIR}/pod-logs"
  # Pods get no cluster DNS; their resolv.conf names the node address, where
  # nothing answers unless a test starts a DNS server there.
  printf '# distlock local cluster: no cluster DNS\nnameserver %s\noptions ndots:1 timeout:1 attempts:1\n' \
    "${NODE_IP}" >"${STATE_DIR}/resolv.conf"
  cat >"${STATE_DIR}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This kernel mounts cgroup v1.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: ${CGROUP_ROOT}
containerRuntimeEndpoint: unix://${CONTAINERD_SOCK}
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ${PKI_DIR}/ca.crt
authorization:
  mode: Webhook
clusterDomain: cluster.local
resolvConf: ${STATE_DIR}/resolv.conf
podLogsDir: ${STATE_DIR}/pod-logs
volumePluginDir: ${KUBELET_DIR}/volume-plugins
failSwapOn: false
serializeImagePulls: false
# Images come from tarballs and cannot be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# A full-ish disk must not evict the test pods.
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
  imagefs.inodesFree: "0%"
evictionPressureTransitionPeriod: 10s
EOF
}

# distlock::cgroups::setup creates the kubelet's cgroupRoot in every cgroup v1
# hierarchy (cpuset needs its cpus and mems filled in).
distlock::cgroups::setup() {
  local h
  for h in /sys/fs/cgroup/*/; do
    h="${h%/}"
    [[ -f "${h}/cgroup.procs" && "${h}" != /sys/fs/cgroup/unified ]] || continue
    mkdir -p "${h}${CGROUP_ROOT}"
  done
  if [[ -d "/sys/fs/cgroup/cpuset${CGROUP_ROOT}" ]]; then
    local f
    for f in cpuset.cpus cpuset.mems; do
      [[ -n "$(<"/sys/fs/cgroup/cpuset${CGROUP_ROOT}/${f}")" ]] ||
        cat "/sys/fs/cgroup/cpuset/${f}" >"/sys/fs/cgroup/cpuset${CGROUP_ROOT}/${f}"
    done
  fi
}

# --- start -----------------------------------------------------------------

distlock::start::etcd() {
  distlock::log::status "starting etcd (127.0.0.1:2379 in ${NETNS})"
  distlock::proc::start etcd "${KUBE_BIN_DIR}/etcd" \
    --name="${NETNS}" \
    --data-dir="${STATE_DIR}/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 \
    --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 \
    --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster="${NETNS}=http://127.0.0.1:2380" \
    --unsafe-no-fsync=true \
    --log-level=warn
  distlock::util::wait_for etcd "${TIMEOUT_ETCD}" "etcd to be healthy" \
    distlock::util::healthz http://127.0.0.1:2379/health
}

distlock::start::apiserver() {
  distlock::log::status "starting kube-apiserver (https://${NODE_IP}:${API_PORT}, service ${API_SERVICE_IP})"
  distlock::proc::start kube-apiserver "${KUBE_BIN_DIR}/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 \
    --secure-port="${API_PORT}" \
    --advertise-address="${NODE_IP}" \
    --tls-cert-file="${PKI_DIR}/apiserver.crt" \
    --tls-private-key-file="${PKI_DIR}/apiserver.key" \
    --client-ca-file="${PKI_DIR}/ca.crt" \
    --token-auth-file="${PKI_DIR}/tokens.csv" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --service-cluster-ip-range="${SERVICE_CIDR}" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="${PKI_DIR}/sa.pub" \
    --service-account-signing-key-file="${PKI_DIR}/sa.key" \
    --kubelet-client-certificate="${PKI_DIR}/apiserver-kubelet-client.crt" \
    --kubelet-client-key="${PKI_DIR}/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --profiling=false \
    --v=1
  distlock::util::wait_for kube-apiserver "${TIMEOUT_APISERVER}" "kube-apiserver to be ready" \
    distlock::kube::kubectl get --raw /readyz --request-timeout=5s
}

distlock::start::containerd() {
  distlock::log::status "starting containerd (${CONTAINERD_SOCK})"
  distlock::containerd::write_config
  distlock::proc::start containerd containerd --config "${CONTAINERD_DIR}/config.toml"
  distlock::util::wait_for containerd "${TIMEOUT_CONTAINERD}" "containerd to answer" \
    timeout 5 ctr --address "${CONTAINERD_SOCK}" version
  distlock::log::status "importing ${PAUSE_IMAGE} into containerd"
  CURRENT_COMPONENT=containerd
  distlock::image::load "${IMAGE_DIR}/pause.tar" 2>>"${LOG_DIR}/containerd.log"
}

distlock::start::controller_manager() {
  distlock::log::status "starting kube-controller-manager (all controllers, service-account credentials)"
  local kc="${STATE_DIR}/kube-controller-manager.kubeconfig"
  distlock::proc::start kube-controller-manager "${KUBE_BIN_DIR}/kube-controller-manager" \
    --kubeconfig="${kc}" \
    --authentication-kubeconfig="${kc}" \
    --authorization-kubeconfig="${kc}" \
    --bind-address=127.0.0.1 \
    --secure-port=10257 \
    --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="${PKI_DIR}/sa.key" \
    --root-ca-file="${PKI_DIR}/ca.crt" \
    --cluster-signing-cert-file="${PKI_DIR}/ca.crt" \
    --cluster-signing-key-file="${PKI_DIR}/ca.key" \
    --service-cluster-ip-range="${SERVICE_CIDR}" \
    --flex-volume-plugin-dir="${STATE_DIR}/kube-controller-manager/volume-plugins" \
    --leader-elect=false \
    --v=1
  distlock::util::wait_for kube-controller-manager "${TIMEOUT_COMPONENT}" "kube-controller-manager to be healthy" \
    distlock::util::healthz https://127.0.0.1:10257/healthz
}

distlock::start::scheduler() {
  distlock::log::status "starting kube-scheduler"
  local kc="${STATE_DIR}/kube-scheduler.kubeconfig"
  distlock::proc::start kube-scheduler "${KUBE_BIN_DIR}/kube-scheduler" \
    --kubeconfig="${kc}" \
    --authentication-kubeconfig="${kc}" \
    --authorization-kubeconfig="${kc}" \
    --bind-address=127.0.0.1 \
    --secure-port=10259 \
    --leader-elect=false \
    --v=1
  distlock::util::wait_for kube-scheduler "${TIMEOUT_COMPONENT}" "kube-scheduler to be healthy" \
    distlock::util::healthz https://127.0.0.1:10259/healthz
}

# distlock::node::ready succeeds when the node is Ready and untainted (the
# node lifecycle controller has removed node.kubernetes.io/not-ready), so
# that pods schedule at once.
distlock::node::ready() {
  [[ "$(distlock::kube::kubectl get node "${NODE_NAME}" --request-timeout=5s \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}/{.spec.taints}' 2>/dev/null)" == "True/" ]]
}

# distlock::namespace::ready succeeds when the default namespace has what
# pods there need: the default ServiceAccount and the kube-root-ca.crt
# ConfigMap of the projected service-account volume.
distlock::namespace::ready() {
  distlock::kube::kubectl get --namespace default --request-timeout=5s \
    serviceaccount/default configmap/kube-root-ca.crt
}

distlock::start::kubelet() {
  distlock::log::status "starting kubelet (node ${NODE_NAME}, ${NODE_IP}:10250, cgroupfs under ${CGROUP_ROOT})"
  distlock::kubelet::write_config
  distlock::cgroups::setup
  distlock::proc::start kubelet "${KUBE_BIN_DIR}/kubelet" \
    --config="${STATE_DIR}/kubelet.yaml" \
    --kubeconfig="${STATE_DIR}/kubelet.kubeconfig" \
    --root-dir="${KUBELET_DIR}" \
    --cert-dir="${KUBELET_DIR}/pki" \
    --hostname-override="${NODE_NAME}" \
    --node-ip="${NODE_IP}" \
    --v=1
  distlock::util::wait_for kubelet "${TIMEOUT_COMPONENT}" "the kubelet to be healthy" \
    distlock::util::healthz http://127.0.0.1:10248/healthz
  distlock::log::status "waiting for node ${NODE_NAME} to be Ready"
  distlock::util::wait_for kubelet "${TIMEOUT_NODE_READY}" "node ${NODE_NAME} to be Ready" distlock::node::ready
}

# --- up / down ---------------------------------------------------------------

distlock::cluster::running() {
  local c
  for c in "${COMPONENTS[@]}"; do
    distlock::proc::pid "${c}" >/dev/null || return 1
  done
  distlock::kube::kubectl get --raw /readyz --request-timeout=5s >/dev/null 2>&1
}

distlock::up::on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ ${rc} -ne 0 ]]; then
    distlock::log::error "up failed (exit ${rc}) while starting ${CURRENT_COMPONENT:-the cluster}"
    if [[ -n "${CURRENT_COMPONENT}" && -z "${LOG_TAIL_SHOWN}" ]]; then
      distlock::log::tail "${CURRENT_COMPONENT}"
    fi
    if [[ -n "${DISTLOCK_KEEP_ON_FAILURE:-}" ]]; then
      distlock::log::warn "DISTLOCK_KEEP_ON_FAILURE is set: leaving the cluster as it is; run: $0 down"
    else
      if [[ -d "${LOG_DIR}" ]]; then
        rm -rf "${STATE_DIR}-logs"
        cp -r "${LOG_DIR}" "${STATE_DIR}-logs"
        distlock::log::info "logs kept in ${STATE_DIR}-logs"
      fi
      distlock::log::status "cleaning up after the failed up"
      distlock::down || true
    fi
  fi
  exit "${rc}"
}

distlock::up() {
  distlock::util::require_root up
  local start=${SECONDS}
  if distlock::cluster::running; then
    distlock::log::status "the cluster in ${STATE_DIR} is already up"
    distlock::util::wait_for kubelet "${TIMEOUT_NODE_READY}" "node ${NODE_NAME} to be Ready" distlock::node::ready
    distlock::up::print_env_hint
    return 0
  fi
  if [[ -e "${STATE_DIR}" ]] || distlock::netns::exists; then
    distlock::log::status "found the remains of an earlier cluster; removing them first"
    distlock::down
  fi
  trap distlock::up::on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  distlock::log::status "checking the node's Debian packages (hack/install-e2e-deps.sh)"
  "${ROOT}/hack/install-e2e-deps.sh"
  distlock::binaries::ensure
  distlock::crane::ensure
  mkdir -p "${STATE_DIR}" "${LOG_DIR}" "${PID_DIR}"
  echo "${KUBE_BIN_DIR}" >"${STATE_DIR}/kube-bin-dir"
  # Remember which host directories the kubelet, containerd and libcni create
  # outside the state dir (fixed paths), so that down removes them again.
  local d
  for d in "${HOST_DIRS[@]}"; do
    [[ -e "${d}" ]] || echo "${d}" >>"${STATE_DIR}/created-host-dirs"
  done
  distlock::image::build_pause
  distlock::netns::setup
  distlock::pki::setup

  distlock::start::etcd
  distlock::start::apiserver
  distlock::start::containerd
  distlock::start::controller_manager
  distlock::start::scheduler
  distlock::start::kubelet

  distlock::log::status "waiting for the default ServiceAccount and kube-root-ca.crt"
  CURRENT_COMPONENT=kube-controller-manager
  distlock::util::wait_for kube-controller-manager "${TIMEOUT_COMPONENT}" "the default ServiceAccount" \
    distlock::namespace::ready
  CURRENT_COMPONENT=""
  trap - EXIT INT TERM
  distlock::log::status "cluster up in $((SECONDS - start))s: node ${NODE_NAME} is Ready"
  distlock::up::print_env_hint
}

distlock::up::print_env_hint() {
  distlock::log::info "kubeconfig: ${ADMIN_KUBECONFIG} (server https://${NODE_IP}:${API_PORT}, inside netns ${NETNS})"
  distlock::log::info "try:        $0 kubectl get nodes -o wide"
  distlock::log::info "            $0 exec go test ./test/e2e/..."
  distlock::log::info "stop with:  $0 down"
}

# distlock::down::pods removes the pods while the kubelet still runs, so that
# their containers stop and their networks are torn down by the CNI plugin.
distlock::down::pods() {
  distlock::proc::pid kubelet >/dev/null || return 0
  distlock::proc::pid kube-apiserver >/dev/null || return 0
  [[ -S "${CONTAINERD_SOCK}" ]] || return 0
  # No new pods: stop the controllers and the scheduler first.
  distlock::proc::stop kube-controller-manager
  distlock::proc::stop kube-scheduler
  distlock::log::status "deleting all pods and waiting for their containers to stop"
  distlock::kube::kubectl delete pods --all --all-namespaces --grace-period=0 --force --wait=false \
    --request-timeout=20s >/dev/null 2>&1 || true
  local deadline=$((SECONDS + TIMEOUT_STOP))
  while [[ -n "$(distlock::ctr tasks list --quiet 2>/dev/null)" ]] && ((SECONDS < deadline)); do
    sleep 0.5
  done
  if [[ -n "$(distlock::ctr tasks list --quiet 2>/dev/null)" ]]; then
    distlock::log::warn "some containers still run after ${TIMEOUT_STOP}s; they will be killed"
  fi
}

# distlock::down::tasks kills the containers that are left, through
# containerd, so that their shims exit cleanly.
distlock::down::tasks() {
  [[ -S "${CONTAINERD_SOCK}" ]] || return 0
  distlock::proc::pid containerd >/dev/null || return 0
  local ids id
  ids="$(distlock::ctr tasks list --quiet 2>/dev/null || true)"
  [[ -n "${ids}" ]] || return 0
  distlock::log::info "killing the remaining containers"
  for id in ${ids}; do
    distlock::ctr tasks kill --all --signal SIGKILL "${id}" >/dev/null 2>&1 || true
  done
  for id in ${ids}; do
    distlock::ctr tasks delete --force "${id}" >/dev/null 2>&1 || true
  done
}

# distlock::down::leftover_pids prints the pids of processes that belong to
# this cluster but are no component: container shims of our containerd, the
# processes in our pod cgroups, and anything still in our network namespace.
distlock::down::leftover_pids() {
  local netns_id="" p
  if distlock::netns::exists; then
    netns_id="$(readlink "${NETNS_PATH}" 2>/dev/null || stat -L -c 'net:[%i]' "${NETNS_PATH}")"
  fi
  for p in /proc/[0-9]*; do
    local pid="${p#/proc/}"
    [[ "${pid}" != "$$" && "${pid}" != "${BASHPID}" ]] || continue
    if [[ -n "${netns_id}" && "$(readlink "${p}/ns/net" 2>/dev/null)" == "${netns_id}" ]]; then
      echo "${pid}"
      continue
    fi
    # containerd-shim-runc-v2 -namespace k8s.io -id ID -address OUR_SOCKET
    if tr '\0' '\n' 2>/dev/null <"${p}/cmdline" | grep -qxF -- "${CONTAINERD_SOCK}"; then
      echo "${pid}"
    fi
  done
  local h
  for h in /sys/fs/cgroup/*"${CGROUP_ROOT}"; do
    [[ -d "${h}" ]] || continue
    find "${h}" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done
}

distlock::down::kill_leftovers() {
  local pids pid deadline
  pids="$(distlock::down::leftover_pids | sort -un)"
  [[ -n "${pids}" ]] || return 0
  for pid in ${pids}; do
    distlock::log::info "stopping leftover process ${pid}: $(tr '\0' ' ' 2>/dev/null <"/proc/${pid}/cmdline" | cut -c1-120)"
    kill -TERM "${pid}" 2>/dev/null || true
  done
  deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    pids="$(for pid in ${pids}; do distlock::proc::alive "${pid}" && echo "${pid}"; done || true)"
    [[ -n "${pids}" ]] || return 0
    sleep 0.2
  done
  for pid in ${pids}; do
    kill -KILL "${pid}" 2>/dev/null || true
  done
  deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    pids="$(for pid in ${pids}; do distlock::proc::alive "${pid}" && echo "${pid}"; done || true)"
    [[ -n "${pids}" ]] || return 0
    sleep 0.2
  done
  distlock::log::warn "processes ${pids//$'\n'/ } would not die"
}

# distlock::down::mounts prints the mount points under the state dir,
# deepest first.
distlock::down::mounts() {
  awk -v dir="${STATE_DIR}/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

distlock::down::unmount() {
  local m deadline=$((SECONDS + TIMEOUT_STOP))
  while [[ -n "$(distlock::down::mounts)" ]]; do
    for m in $(distlock::down::mounts); do
      umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null || true
    done
    if ((SECONDS >= deadline)); then
      distlock::log::error "could not unmount: $(distlock::down::mounts | tr '\n' ' ')"
      return 1
    fi
  done
}

distlock::down::cgroups() {
  local h deadline=$((SECONDS + TIMEOUT_STOP))
  for h in /sys/fs/cgroup/*"${CGROUP_ROOT}"; do
    [[ -d "${h}" ]] || continue
    until find "${h}" -depth -type d -exec rmdir {} + 2>/dev/null; [[ ! -d "${h}" ]]; do
      if ((SECONDS >= deadline)); then
        distlock::log::warn "could not remove cgroup ${h}"
        break
      fi
      sleep 0.2
    done
  done
}

distlock::down() {
  distlock::util::require_root down
  if [[ ! -e "${STATE_DIR}" ]] && ! distlock::netns::exists && [[ -z "$(compgen -G "/sys/fs/cgroup/*${CGROUP_ROOT}")" ]]; then
    distlock::log::status "nothing to tear down (no ${STATE_DIR}, no netns ${NETNS})"
    return 0
  fi
  distlock::log::status "tearing down the cluster in ${STATE_DIR}"
  distlock::down::pods
  distlock::log::status "stopping the components"
  local i extra
  # Processes that subcommands (smoke) started; then the components in
  # reverse order of start, keeping containerd until its tasks are gone.
  for extra in "${PID_DIR}"/*.pid; do
    [[ -f "${extra}" ]] || continue
    extra="$(basename "${extra}" .pid)"
    [[ " ${COMPONENTS[*]} " == *" ${extra} "* ]] || distlock::proc::stop "${extra}"
  done
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    case "${COMPONENTS[i]}" in
      containerd) ;;
      *) distlock::proc::stop "${COMPONENTS[i]}" ;;
    esac
  done
  distlock::down::tasks
  distlock::proc::stop containerd
  distlock::down::kill_leftovers
  distlock::log::status "removing mounts, cgroups, network namespace ${NETNS} and host leftovers"
  distlock::down::unmount
  distlock::down::cgroups
  if distlock::netns::exists; then
    ip netns delete "${NETNS}"
  fi
  # libcni's cache entries of our pod sandboxes (our network, and the
  # cni-loopback one of containerd), normally removed when a sandbox stops;
  # the kubelet's links to our pods' logs.
  rm -f /var/lib/cni/results/"${CNI_NETWORK}"-* 2>/dev/null || true
  local sandbox
  for sandbox in "${CONTAINERD_DIR}"/root/io.containerd.grpc.v1.cri/sandboxes/*; do
    [[ -d "${sandbox}" ]] || continue
    rm -f /var/lib/cni/results/*-"$(basename "${sandbox}")"-* 2>/dev/null || true
  done
  local link
  for link in /var/log/containers/*.log; do
    [[ -L "${link}" && "$(readlink "${link}")" == "${STATE_DIR}/"* ]] && rm -f "${link}"
  done
  if [[ -f "${STATE_DIR}/created-host-dirs" ]]; then
    local d
    while read -r d; do
      [[ -d "${d}" ]] || continue
      # The kubelet's device-plugin socket has a fixed path.
      [[ "${d}" == /var/lib/kubelet ]] && rm -f /var/lib/kubelet/device-plugins/kubelet.sock
      # ip netns add made /run/netns a (shared, bind) mount point.
      if [[ "${d}" == /run/netns && -z "$(ls -A /run/netns)" ]]; then
        while mountpoint -q /run/netns; do umount /run/netns || break; done
      fi
      find "${d}" -depth -type d -empty -delete 2>/dev/null || true
    done <"${STATE_DIR}/created-host-dirs"
  fi
  if [[ -n "$(distlock::down::mounts)" ]]; then
    distlock::util::die "mounts remain under ${STATE_DIR}; not removing it"
  fi
  rm -rf --one-file-system "${STATE_DIR}"
  distlock::log::status "cluster is down"
}

distlock::status() {
  local c pid
  for c in "${COMPONENTS[@]}"; do
    if pid="$(distlock::proc::pid "${c}")"; then
      printf '%-24s running (pid %s)\n' "${c}" "${pid}"
    else
      printf '%-24s not running\n' "${c}"
    fi
  done
  if distlock::netns::exists; then
    echo "netns ${NETNS}: $(ip -n "${NETNS}" -brief addr | tr -s ' ' | paste -sd';')"
  else
    echo "netns ${NETNS}: absent"
  fi
  if distlock::proc::pid kube-apiserver >/dev/null; then
    distlock::kube::kubectl get nodes -o wide 2>&1 || true
  fi
}

distlock::env() {
  cat <<EOF
export KUBECONFIG=${ADMIN_KUBECONFIG}
export NETNS=${NETNS}
export NODE_IP=${NODE_IP}
export DISTLOCK_NETNS=${NETNS}
export DISTLOCK_NODE_IP=${NODE_IP}
export DISTLOCK_NODE_NAME=${NODE_NAME}
export DISTLOCK_CLUSTER_DIR=${STATE_DIR}
export DISTLOCK_CONTAINERD_SOCK=${CONTAINERD_SOCK}
EOF
  if [[ -f "${STATE_DIR}/kube-bin-dir" ]]; then
    echo "export DISTLOCK_KUBE_BIN_DIR=$(<"${STATE_DIR}/kube-bin-dir")"
  fi
}

distlock::exec() {
  [[ $# -gt 0 ]] || distlock::util::die "usage: $0 exec CMD [ARG...]"
  distlock::netns::exists || distlock::util::die "network namespace ${NETNS} does not exist; run: $0 up"
  local bin
  bin="$(distlock::kube::bin_dir)"
  distlock::netns::run env KUBECONFIG="${ADMIN_KUBECONFIG}" NETNS="${NETNS}" NODE_IP="${NODE_IP}" \
    DISTLOCK_NETNS="${NETNS}" DISTLOCK_NODE_IP="${NODE_IP}" DISTLOCK_NODE_NAME="${NODE_NAME}" \
    DISTLOCK_CLUSTER_DIR="${STATE_DIR}" PATH="${bin}:${PATH}" "$@"
}

# distlock::smoke proves the cluster: a Job whose pods have an init container
# that reaches a Redis server on the node address, and a main container that
# authenticates to the API server with its service-account token.
distlock::smoke() {
  distlock::util::require_root smoke
  distlock::cluster::running || distlock::util::die "the cluster is not up; run: $0 up"
  command -v redis-server >/dev/null || distlock::util::die "redis-server is missing; run hack/install-test-deps.sh"
  local image="local/probe:e2e" redis_addr="${NODE_IP}:${SMOKE_REDIS_PORT}"
  distlock::log::status "building the probe image ${image} (hack/local-cluster/probe)"
  mkdir -p "${IMAGE_DIR}"
  (cd "${ROOT}" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${IMAGE_DIR}/probe" ./hack/local-cluster/probe)
  distlock::crane::ensure
  distlock::image::from_binaries "${image}" "${IMAGE_DIR}/probe.tar" "${IMAGE_DIR}/probe"
  distlock::image::load "${IMAGE_DIR}/probe.tar"

  distlock::log::status "starting redis-server on ${redis_addr} inside ${NETNS}"
  distlock::proc::stop smoke-redis
  mkdir -p "${STATE_DIR}/smoke-redis"
  distlock::proc::start smoke-redis redis-server --bind "${NODE_IP}" --port "${SMOKE_REDIS_PORT}" \
    --save "" --appendonly no --dir "${STATE_DIR}/smoke-redis" --protected-mode no
  distlock::util::wait_for smoke-redis 30 "redis-server to answer" \
    distlock::netns::run redis-cli -h "${NODE_IP}" -p "${SMOKE_REDIS_PORT}" ping

  local job=distlock-smoke
  distlock::kube::kubectl delete job "${job}" --ignore-not-found --cascade=foreground --timeout=60s >/dev/null
  distlock::log::status "running Job ${job} (parallelism 2, completions 2, an init container each)"
  sed -e "s#@IMAGE@#${image}#g" -e "s#@REDIS_ADDR@#${redis_addr}#g" "${ROOT}/hack/local-cluster/smoke-job.yaml" |
    distlock::kube::kubectl apply -f -
  local deadline=$((SECONDS + 180)) succeeded failed
  while :; do
    succeeded="$(distlock::kube::kubectl get job "${job}" --request-timeout=5s -o jsonpath='{.status.succeeded}')"
    failed="$(distlock::kube::kubectl get job "${job}" --request-timeout=5s \
      -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')"
    [[ "${succeeded}" == "2" || "${failed}" == "True" ]] && break
    if ((SECONDS >= deadline)); then
      failed=True
      distlock::log::error "Job ${job} did not complete within 180s"
      break
    fi
    sleep 1
  done
  distlock::util::wait_for "" 30 "Job ${job} to be Complete" \
    distlock::kube::kubectl wait --for=condition=Complete "job/${job}" --timeout=1s || failed=True
  distlock::kube::kubectl get jobs -o wide
  distlock::kube::kubectl get pods -o wide
  local pod
  for pod in $(distlock::kube::kubectl get pods -l "job-name=${job}" -o name); do
    echo "--- ${pod}: init container wait-for-redis"
    distlock::kube::kubectl logs "${pod}" -c wait-for-redis || failed=True
    echo "--- ${pod}: container main"
    distlock::kube::kubectl logs "${pod}" -c main || failed=True
  done
  if [[ "${failed}" == "True" ]]; then
    distlock::kube::kubectl describe job "${job}" || true
    distlock::kube::kubectl describe pods -l "job-name=${job}" || true
  fi
  if [[ -z "${DISTLOCK_SMOKE_KEEP:-}" ]]; then
    distlock::kube::kubectl delete job "${job}" --cascade=foreground --timeout=60s >/dev/null || true
    distlock::proc::stop smoke-redis
  fi
  [[ "${failed}" != "True" ]] || distlock::util::die "smoke test failed"
  distlock::log::status "smoke test passed"
}

distlock::usage() {
  echo "usage:" >&2
  sed -n '/^#   hack\/local-cluster.sh up/,/^#   hack\/local-cluster.sh smoke/s/^#//p' "${BASH_SOURCE[0]}" >&2
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "${cmd}" in
    up) distlock::up "$@" ;;
    down) distlock::down "$@" ;;
    status) distlock::status ;;
    env) distlock::env ;;
    kubectl)
      distlock::netns::exists || distlock::util::die "the cluster is not up (no netns ${NETNS}); run: $0 up"
      distlock::kube::kubectl "$@"
      ;;
    exec) distlock::exec "$@" ;;
    load-image)
      [[ $# -eq 1 ]] || distlock::util::die "usage: $0 load-image TARBALL"
      distlock::image::load "$1"
      ;;
    image-from-binaries) distlock::image::from_binaries "$@" ;;
    smoke) distlock::smoke ;;
    -h | --help | help)
      distlock::usage
      ;;
    *)
      distlock::usage
      exit 2
      ;;
  esac
}

# Exit on the same line as main, so that bash never reads beyond it (even if
# this file changes while a long `up` runs).
main "$@"; exit
