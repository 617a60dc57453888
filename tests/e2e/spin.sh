#!/usr/bin/env bash
# The end-to-end suite on real Spin: every test of tests/e2e served by `spin up` instead of the
# local host, its store-sensitive tests on Spin's SQLite store, on Redis and on DynamoDB (a local
# DynamoDB-compatible server: moto, in target/moto-venv, pinned by tests/lib/dynamodb-requirements.txt).
# Tests that need what only the local host offers print why and return (see tests/e2e/src/lib.rs).
#
#   SPIN_BIN=../shared/tools/spin/spin bash tests/e2e/spin.sh [extra cargo test arguments]
#
# Ends with "e2e on Spin: N passed, M skipped" (skipped ones are counted among cargo's passed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
: "${SPIN_BIN:?set SPIN_BIN to a Spin binary (spin 3.x or 4.x)}"
SPIN_BIN=$(cd "$(dirname "$SPIN_BIN")" && pwd)/$(basename "$SPIN_BIN")
export SPIN_BIN

VENV=${MOTO_VENV:-$ROOT/target/moto-venv}
if [[ ! -x $VENV/bin/python3 ]] || ! "$VENV/bin/python3" -c 'import moto.server' 2>/dev/null; then
    echo "installing moto into $VENV (tests/lib/dynamodb-requirements.txt)"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        # Debian's python3 ships venv separately.
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv "$VENV"
    fi
    timeout 900 "$VENV/bin/pip" install --disable-pip-version-check -q \
        -r tests/lib/dynamodb-requirements.txt
fi
export MOTO_PYTHON=$VENV/bin/python3

targets=()
for file in tests/e2e/tests/*.rs; do
    targets+=(--test "$(basename "$file" .rs)")
done
mkdir -p target
# Without `-p e2e`: the same packages, so the same features, as a plain `cargo test` (no
# second build of wasmtime). --show-output prints each skipped test's reason.
set +e
cargo test "${targets[@]}" "$@" -- --show-output 2>&1 | tee target/e2e-spin.log
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo "^test result: [a-zA-Z]+\. [0-9]+ passed" target/e2e-spin.log |
    awk '{ total += $4 } END { print total + 0 }')
skipped=$(grep -c "^skipped on " target/e2e-spin.log || true)
echo "e2e on Spin: $((passed - skipped)) passed, $skipped skipped (reasons above)"
exit "$status"
