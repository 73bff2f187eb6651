#!/usr/bin/env bash
# Copyright 2026 The distlock Authors.
# SPDX-License-Identifier: Apache-2.0
#
# vulncheck.sh checks the code against the Go vulnerability database with
# govulncheck, without reaching vuln.go.dev:
#
#   hack/vulncheck.sh [GOVULNCHECK_ARGS...]     (default: ./...)
#
# govulncheck normally downloads the database from vuln.go.dev, which the
# development and CI machines cannot reach; only the Go module proxy is
# available. The database's source, one OSV JSON file per vulnerability in
# data/osv/, is part of the Go module golang.org/x/vulndb, and that module's
# own cmd/indexdb turns such a folder into a database in the layout that
# vuln.go.dev serves (index/db.json, index/modules.json, ID/GO-YYYY-NNNN.json).
# So this script:
#   1. installs govulncheck ${GOVULNCHECK_VERSION} into bin/ (cached there, per
#      Go version: a govulncheck built by an older Go cannot type-check a
#      newer standard library, e.g. after GOTOOLCHAIN moves on);
#   2. downloads golang.org/x/vulndb@${VULNDB_VERSION} from the module proxy
#      and builds the database from its data/osv with its cmd/indexdb into
#      bin/vulndb/${VULNDB_VERSION} (cached there; other versions are
#      removed). The OSV files in the repository carry no "modified" time
#      (it is set when vuln.go.dev is deployed), so index/db.json gets the
#      vulndb commit's time instead: what govulncheck shows as "DB updated";
#   3. runs govulncheck -db file://bin/vulndb/... from the repository root.
#
# It exits non-zero when govulncheck does: 3 when vulnerabilities affect the
# code (called symbols), after a one-line-per-vulnerability summary. The
# database is pinned so that CI is reproducible; to see newer
# vulnerabilities, move VULNDB_VERSION to a newer pseudo-version
# (go list -m golang.org/x/vulndb@latest), or try one run with
#   VULNDB_VERSION=latest hack/vulncheck.sh
# Progress goes to stderr, govulncheck's report to stdout.

set -o errexit
set -o nounset
set -o pipefail

GOVULNCHECK_VERSION="${GOVULNCHECK_VERSION:-v1.9.0}"
VULNDB_VERSION="${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}"

if [[ "${VULNDB_VERSION}" == "latest" ]]; then
  VULNDB_VERSION="$(cd / && go list -m -f '{{.Version}}' golang.org/x/vulndb@latest)"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCALBIN="${ROOT}/bin"
GOVULNCHECK="${LOCALBIN}/govulncheck-${GOVULNCHECK_VERSION}-$(go env GOVERSION)"
DB_ROOT="${LOCALBIN}/vulndb"
DB_DIR="${DB_ROOT}/${VULNDB_VERSION}"

log() { echo "vulncheck: $*" >&2; }

TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT

install_govulncheck() {
  if [[ ! -x "${GOVULNCHECK}" ]]; then
    log "installing golang.org/x/vuln/cmd/govulncheck@${GOVULNCHECK_VERSION}"
    mkdir -p "${LOCALBIN}"
    GOBIN="${TMP}/gobin" go install "golang.org/x/vuln/cmd/govulncheck@${GOVULNCHECK_VERSION}"
    mv "${TMP}/gobin/govulncheck" "${GOVULNCHECK}"
  fi
  ln -sf "$(basename "${GOVULNCHECK}")" "${LOCALBIN}/govulncheck"
}

build_db() {
  if [[ -f "${DB_DIR}/.ready" ]]; then
    return
  fi
  log "building the vulnerability database from golang.org/x/vulndb@${VULNDB_VERSION} into ${DB_DIR#"${ROOT}"/}"
  local mod="golang.org/x/vulndb@${VULNDB_VERSION}" src modified
  # Outside any module (in TMP), as for go install pkg@version; the zip is
  # verified against the checksum database like any other module's.
  (cd "${TMP}" && go mod download "${mod}")
  src="$(cd "${TMP}" && go list -m -f '{{.Dir}}' "${mod}")/data/osv"
  modified="$(cd "${TMP}" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "${mod}")"
  if [[ ! -d "${src}" || -z "${modified}" ]]; then
    log "${mod} has no data/osv (or no commit time); cannot build the database"
    exit 1
  fi

  local out="${TMP}/vulndb"
  (cd "${TMP}" && go run "golang.org/x/vulndb/cmd/indexdb@${VULNDB_VERSION}" -vulns "${src}" -out "${out}")

  # Every OSV file must have become an entry, and the index must be there.
  local want got
  want="$(find "${src}" -maxdepth 1 -name 'GO-*.json' | wc -l)"
  got="$(find "${out}/ID" -maxdepth 1 -name 'GO-*.json' | wc -l)"
  if [[ "${want}" -eq 0 || "${want}" -ne "${got}" || ! -s "${out}/index/modules.json" ]]; then
    log "database incomplete: ${got} of ${want} entries, or no index/modules.json"
    exit 1
  fi

  printf '{"modified":"%s"}' "${modified}" >"${out}/index/db.json"
  gzip -9 -n -c "${out}/index/db.json" >"${out}/index/db.json.gz"
  echo "golang.org/x/vulndb@${VULNDB_VERSION} (${modified}): ${got} entries" >"${out}/.ready"

  rm -rf "${DB_ROOT}"
  mkdir -p "${DB_ROOT}"
  mv "${out}" "${DB_DIR}"
  log "$(cat "${DB_DIR}/.ready")"
}

# summarize prints one line per vulnerability and module (or standard library
# package) from the "Symbol Results" section of govulncheck's text report:
# ID, module, version found, version that fixes it.
summarize() {
  awk '
    function split_at(s, parts,   i) {
      i = match(s, /@[^@]*$/)
      parts[1] = substr(s, 1, i - 1); parts[2] = substr(s, i + 1)
    }
    /^=== / { in_symbols = ($0 ~ /Symbol Results/); next }
    !in_symbols { next }
    /^Vulnerability #[0-9]+: / { id = $3; next }
    /^ *Found in: / { split_at($3, found); next }
    /^ *Fixed in: / {
      fixed = $3
      if (fixed ~ /@/) { split_at(fixed, f); fixed = f[2] }
      printf "  %-14s %-58s %-10s -> %s\n", id, found[1], found[2], fixed
    }
  ' "$1"
}

install_govulncheck
build_db

cd "${ROOT}"
if [[ $# -eq 0 ]]; then
  set -- ./...
fi
rc=0
"${GOVULNCHECK}" -db "file://${DB_DIR}" "$@" | tee "${TMP}/report.txt" || rc=$?
if [[ "${rc}" -eq 3 ]]; then
  echo >&2
  log "vulnerabilities that affect the code (golang.org/x/vulndb@${VULNDB_VERSION}):"
  summarize "${TMP}/report.txt" >&2
elif [[ "${rc}" -ne 0 ]]; then
  log "govulncheck failed (exit ${rc})"
fi
exit "${rc}"
