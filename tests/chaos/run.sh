#!/usr/bin/env bash
# Many clients against two management instances and one verify instance on one Redis, with the
# store paused, restarted and an instance killed meanwhile; then the product's promises checked
# from the outside (see tests/chaos/README.md).
#
#   bash tests/chaos/run.sh [--seconds 60] [--seed N] ...      # on the local host
#   SPIN_BIN=../shared/tools/spin/spin bash tests/chaos/run.sh  # on real `spin up`
#
# SPIN_HOST_BIN (default target/debug/spin-host) picks the local host's binary. Prints
# `chaos: K passed, F failed` and `chaos: N operations, M violations`; exits non-zero on any
# violation.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
command -v redis-server >/dev/null || { echo "chaos: redis-server is needed (apt-get install redis-server)" >&2; exit 2; }
exec python3 -B "$ROOT/tests/chaos/run.py" "$@"
