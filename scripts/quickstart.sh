#!/usr/bin/env bash
# Quick start: install dependencies, build keywatch, ingest the bundled sample access log
# into ./keywatch.db with zero configuration, and show what it found.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKW_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "built build/keywatch"

rm -f keywatch.db keywatch.db-wal keywatch.db-shm
./build/keywatch ingest tests/fixtures/sample/access.log
echo
./build/keywatch stats --top 5
echo
./build/keywatch keys | sed -n '1,12p' # (sed reads to the end: no SIGPIPE under pipefail)
echo
./build/keywatch alerts
echo
echo "Next: ./build/keywatch calls --key PREFIX   (the audit trail of one key)"
echo "      ./build/keywatch alerts show ID       (an alert with its sample calls)"
echo "      ./build/keywatch review --since 2025-11-03 --until 2025-11-05   (rights vs use)"
echo "      ./build/keywatch serve                  (dashboard on http://127.0.0.1:8080)"
echo "      ./build/keywatch --help"
