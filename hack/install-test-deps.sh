#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# install-test-deps.sh makes sure the servers that the integration tests start
# are installed: redis-server and ZooKeeper (with a Java runtime), from
# Debian's packages. It changes nothing when they are already there. The tests
# themselves start and stop their own server processes on loopback ports;
# this script never starts a service.

set -o errexit
set -o nounset
set -o pipefail

ZOOKEEPER_JAR="${ZOOKEEPER_JAR:-/usr/share/java/zookeeper.jar}"

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[[ -f "${ZOOKEEPER_JAR}" ]] || missing+=(zookeeper)
command -v java >/dev/null || missing+=(default-jre-headless)

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "install-test-deps: missing ${missing[*]} and no apt-get here; install them with your package manager" >&2
  exit 1
fi
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  SUDO="sudo"
fi
echo "install-test-deps: installing ${missing[*]} (Debian packages)" >&2
${SUDO} apt-get update -qq
# The packages' maintainer scripts may try to start system services; the
# tests do not use them. policy-rc.d keeps them stopped where it is honoured.
DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
