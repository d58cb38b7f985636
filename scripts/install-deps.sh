#!/usr/bin/env bash
# Installs everything keywatch needs to build and test, from Debian's packages.
# Used by the README's quick start and by CI (.ci/run). Idempotent.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi

packages=(
  # build
  build-essential cmake pkg-config clang
  # libraries keywatch links
  libsqlite3-dev libcyaml-dev libyaml-dev libjansson-dev libssl-dev libxxhash-dev libuv1-dev libcurl4-openssl-dev
  libpcap-dev libhttp-parser-dev
  # tests
  libcmocka-dev nginx-light curl sqlite3 python3 logrotate wrk bsdutils tcpdump
  # tests: the HTML report opened in headless Chromium (tests/browser)
  chromium
  # tests: a real Prometheus scrapes the metrics (tests/integration/test_prometheus.sh; its
  # Debian service, if the machine starts one, listens on :9090 — the test uses its own port)
  prometheus
  # benchmarks (bench/run.sh): the tools keywatch is compared with
  goaccess time
)

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "install-deps: ${#packages[@]} packages present"

# tests/browser: playwright-core at the version package-lock.json pins, to drive the
# chromium above (it downloads no browser of its own).  Node.js and npm come with the
# machine image; where they do not, Debian's are installed (Node 18 runs playwright-core).
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
npm ci --prefix "$(dirname "$0")/../tests/browser" --no-audit --no-fund >/dev/null
echo "install-deps: tests/browser npm packages present"
