#!/usr/bin/env bash
# The console (functions/console) in a real browser: Debian's Chromium, driven by Playwright for
# Python, against the app served by the local host; axe-core checks every state.
#
#   bash tests/console/run.sh
#
# 1. Chromium from Debian's packages if /usr/bin/chromium is missing (needs root);
# 2. a venv in target/console-venv with Playwright (tests/console/requirements.txt; Playwright
#    drives the system Chromium, it downloads no browser) and axe-core from npm
#    (tests/console/package-lock.json, `npm ci` into target/console-tools);
# 3. console.wasm (and revoke.wasm) rebuilt if their files changed, then the local host
#    (SPIN_HOST_BIN, default target/debug/spin-host) serving spin.toml on a free loopback port,
#    with a fresh key-value store in a temporary folder and, as GitHub's secret-scanning key
#    document, the public half of a P-256 key made for this run, whose private half signs the
#    checks' leak alerts;
# 4. tests/console/console_checks.py: each check in a fresh browser context, screenshots in
#    target/console/.
#
# Environment: SPIN_HOST_BIN, SPIN_RUNTIME_CONFIG, CHROMIUM (default /usr/bin/chromium),
# CONSOLE_VENV, PYTHON (python3 by default). Prints `console: N passed, M failed`; exits
# non-zero if anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ROOT
# shellcheck source=tests/lib/local-host.sh
. "$ROOT/tests/lib/local-host.sh"

HERE=$ROOT/tests/console
PYTHON=${PYTHON:-python3}
VENV=${CONSOLE_VENV:-$ROOT/target/console-venv}
TOOLS=$ROOT/target/console-tools
SCREENSHOTS=$ROOT/target/console
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
started=$SECONDS
passed=0
failed=0

WORK=$(mktemp -d "${TMPDIR:-/tmp}/api-keys-console.XXXXXX")
HOST_PID=
cleanup() {
    stop_pid "$HOST_PID"
    if [[ ${KEEP_WORK:-} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish() {
    if ((failed)) && [[ -f $WORK/host.log ]]; then
        echo "--- host.log (last 20 lines)"
        tail -n 20 "$WORK/host.log"
    fi
    log "took $((SECONDS - started))s"
    echo "console: $passed passed, $failed failed"
    ((failed == 0))
    exit $?
}
abort() {
    failed=$((failed + 1))
    echo "FAIL  $*"
    finish
}

# ---- Tools ------------------------------------------------------------------------------------
ensure_chromium() {
    [[ -x $CHROMIUM ]] && return 0
    command -v apt-get >/dev/null || { log "no $CHROMIUM and no apt-get"; return 1; }
    log "installing chromium from Debian's packages"
    timeout 300 apt-get update -qq || return 1
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium >"$WORK/apt.log" 2>&1 ||
        { tail -n 20 "$WORK/apt.log" >&2; return 1; }
    [[ -x $CHROMIUM ]]
}

# Reinstalled only when requirements.txt changes.
setup_venv() {
    local stamp=$VENV/.requirements.sha256 want
    want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
    if [[ -x $VENV/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    log "creating $VENV"
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian's python3 ships venv separately.
        command -v apt-get >/dev/null || return 1
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv &&
            "$PYTHON" -m venv "$VENV" || return 1
    fi
    timeout 900 "$VENV/bin/pip" install --disable-pip-version-check -q -r "$HERE/requirements.txt" || return 1
    echo "$want" >"$stamp"
}

# axe-core, installed outside the work tree; again only when the lock file changes.
setup_axe() {
    local stamp=$TOOLS/.lock.sha256 want
    want=$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)
    AXE_JS=$TOOLS/node_modules/axe-core/axe.min.js
    if [[ -f $AXE_JS && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    command -v npm >/dev/null || { log "npm is missing"; return 1; }
    rm -rf "$TOOLS"
    mkdir -p "$TOOLS"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$TOOLS/"
    (cd "$TOOLS" && timeout 600 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || return 1
    [[ -f $AXE_JS ]] && echo "$want" >"$stamp"
}

ensure_chromium || abort "Chromium is available at $CHROMIUM"
log "using $("$CHROMIUM" --version 2>/dev/null | head -n 1)"
setup_venv || abort "Playwright installs (tests/console/requirements.txt)"
setup_axe || abort "axe-core installs (tests/console/package-lock.json)"

# A stand-in for GitHub's secret-scanning key: the checks sign leak alerts with its private half
# (written to $1), the host gets its public half in GitHub's key document (printed).
make_leak_alert_key() {
    "$VENV/bin/python" - "$1" <<'EOF'
import json, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
with open(sys.argv[1], "wb") as out:
    out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
print(json.dumps({"public_keys": [{"key_identifier": "console-checks", "key": public.decode(),
                                   "is_current": True}]}))
EOF
}

# ---- The app ----------------------------------------------------------------------------------
# The page's files are embedded in console.wasm: rebuild it so that the checks see the files of
# the work tree, not an older build (cargo makes this a no-op when nothing changed). The leak
# checks revoke keys through revoke.wasm, rebuilt likewise.
if command -v cargo >/dev/null; then
    (cd "$ROOT" && cargo build -q --profile wasm --target wasm32-wasip2 -p console -p revoke) ||
        abort "console.wasm and revoke.wasm build"
fi
LEAK_ALERT_KEY=$WORK/leak-alert-key.pem
SPIN_VARIABLE_GITHUB_SECRET_SCANNING_KEYS=$(make_leak_alert_key "$LEAK_ALERT_KEY") ||
    abort "a leak-alert signing key is made"
# start_local_host runs the host with `env`, which passes this on (Spin reads SPIN_VARIABLE_*).
export SPIN_VARIABLE_GITHUB_SECRET_SCANNING_KEYS
PORT=$(free_port)
start_local_host "$WORK" "$PORT" || abort "the local host starts"

# ---- The checks -------------------------------------------------------------------------------
rm -rf "$SCREENSHOTS"
mkdir -p "$SCREENSHOTS"
CONSOLE_BASE=http://127.0.0.1:$PORT AXE_JS=$AXE_JS SCREENSHOTS=$SCREENSHOTS CHROMIUM=$CHROMIUM \
    LEAK_ALERT_KEY=$LEAK_ALERT_KEY LEAK_ALERT_KEY_ID=console-checks \
    timeout 900 "$VENV/bin/python" "$HERE/console_checks.py" </dev/null 2>"$WORK/checks.log" |
    tee "$WORK/checks.out"
status=${PIPESTATUS[0]}
passed=$(grep -c '^PASS ' "$WORK/checks.out")
failed=$(grep -c '^FAIL ' "$WORK/checks.out")
if ((status != 0 && failed == 0)); then
    failed=1
    echo "FAIL  console_checks.py exited with $status"
fi
if ((failed)); then
    echo "--- console_checks.py stderr (last 40 lines)"
    tail -n 40 "$WORK/checks.log"
fi
log "screenshots in $SCREENSHOTS"
finish
