#!/usr/bin/env bash
# Validates openapi.yaml and fuzzes the running app against it with Schemathesis.
#
#   bash tests/fuzz/run.sh
#
# 1. a venv in target/fuzz-venv with the pinned tools (tests/fuzz/requirements.txt);
# 2. openapi-spec-validator on openapi.yaml;
# 3. the local host (SPIN_HOST_BIN, default target/debug/spin-host) serving spin.toml on a free
#    loopback port, with a fresh key-value store in a temporary folder;
# 4. Schemathesis, fixed seeds (tests/fuzz/schemathesis*.toml): every operation with a valid JWT
#    and a valid API key in the headers, then verify with the key in the JSON body, then verify
#    and introspection with a revoked, a disabled and an expired key (the refusals no live key
#    gets). Every answer is checked against openapi.yaml: any 5xx, undocumented status, wrong
#    content type, missing or wrong header (where the description declares one), or body that
#    does not match its schema (so also a code missing from an enum) fails, and so does a
#    method the description does not list that is not answered 405 with `Allow`; Schemathesis
#    prints a curl command that reproduces the failure;
# 5. at least FUZZ_MIN_CASES (500) test cases in total.
#
# Environment: SPIN_HOST_BIN, FUZZ_MIN_CASES, FUZZ_VENV, PYTHON (python3 by default).
# Reports (NDJSON, JUnit) go to target/fuzz-report/. Exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ROOT
# shellcheck source=tests/lib/local-host.sh
. "$ROOT/tests/lib/local-host.sh"

PYTHON=${PYTHON:-python3}
VENV=${FUZZ_VENV:-$ROOT/target/fuzz-venv}
MIN_CASES=${FUZZ_MIN_CASES:-500}
REPORTS=$ROOT/target/fuzz-report
HERE=$ROOT/tests/fuzz
started=$SECONDS
passed=0
failed=0

WORK=$(mktemp -d "${TMPDIR:-/tmp}/api-keys-fuzz.XXXXXX")
HOST_PID=
cleanup() {
    stop_pid "$HOST_PID"
    if [[ ${KEEP_WORK:-} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { # step NAME COMMAND...: runs one check and counts it
    local name=$1
    shift
    log "── $name"
    if "$@"; then
        passed=$((passed + 1))
        log "   $name: ok"
    else
        failed=$((failed + 1))
        log "   $name: FAILED"
    fi
}

finish() {
    log "took $((SECONDS - started))s"
    echo "fuzz: $passed passed, $failed failed"
    ((failed == 0))
    exit $?
}

# 1. Tools, reinstalled only when requirements.txt changes.
setup_venv() {
    local stamp=$VENV/.requirements.sha256 want
    want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
    if [[ -x $VENV/bin/schemathesis && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    log "creating $VENV"
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian's python3 ships venv separately.
        if command -v apt-get >/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv &&
                "$PYTHON" -m venv "$VENV" || return 1
        else
            return 1
        fi
    fi
    timeout 900 "$VENV/bin/pip" install --disable-pip-version-check -q -r "$HERE/requirements.txt" || return 1
    echo "$want" >"$stamp"
}
if ! setup_venv; then
    log "could not install the fuzzing tools"
    failed=$((failed + 1))
    finish
fi

# 2. The description itself.
step "openapi-spec-validator openapi.yaml" "$VENV/bin/openapi-spec-validator" "$ROOT/openapi.yaml"

# 3. The app, given GitHub's published example key for /v1/keys.leaked (so that alerts are
# judged by their signatures, as in production, rather than refused as unconfigured).
SPIN_VARIABLE_GITHUB_SECRET_SCANNING_KEYS='{"public_keys":[{"key_identifier":"bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c","key":"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYAGMWO8XgCamYKMJS6jc/qgvSlAd\nAjPuDPRcXU22YxgBrz+zoN19MzuRyW87qEt9/AmtoNP5GrobzUvQSyJFVw==\n-----END PUBLIC KEY-----\n","is_current":true}]}'
export SPIN_VARIABLE_GITHUB_SECRET_SCANNING_KEYS
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
if ! start_local_host "$WORK" "$PORT"; then
    failed=$((failed + 1))
    finish
fi

# A key for the verify operations, owned by another user than the fuzzer's, so that the fuzzer
# filling its own 20 slots (409 key_limit_reached, a documented answer) does not matter.
VERIFIER_JWT=$(make_jwt fuzz-key-owner)
created=$(curl -sS --max-time 30 -X POST "$BASE/v1/keys.create" -H "Authorization: Bearer $VERIFIER_JWT" \
    -d '{"name": "fuzz verify key", "scopes": ["read", "write"]}')
FUZZ_API_KEY=$(printf '%s' "$created" | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["key"])') || {
    log "could not create the key for verify: $created"
    failed=$((failed + 1))
    finish
}
export FUZZ_API_KEY

# Keys that verify refuses, each for its own code: revoked by its holder (RFC 7009), disabled
# by an update, expired (made to expire a few seconds from now; its pass runs last).
api() { # api METHOD PATH BODY: a management call as the key owner; the answer's body
    curl -sS --max-time 30 -X "$1" "$BASE$2" -H "Authorization: Bearer $VERIFIER_JWT" -d "$3"
}
json_field() { "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
dead_keys() {
    local expires created
    expires=$("$VENV/bin/python" -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) + d.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
    created=$(api POST /v1/keys.create "{\"name\": \"fuzz expired\", \"scopes\": [\"read\"], \"expires_at\": \"$expires\"}") &&
        EXPIRED_KEY=$(printf '%s' "$created" | json_field key) || return 1
    created=$(api POST /v1/keys.create '{"name": "fuzz revoked", "scopes": ["read"]}') &&
        REVOKED_KEY=$(printf '%s' "$created" | json_field key) || return 1
    curl -sS --max-time 30 -o /dev/null -X POST "$BASE/v1/keys.revoke" -d "token=$REVOKED_KEY" || return 1
    created=$(api POST /v1/keys.create '{"name": "fuzz disabled", "scopes": ["read"]}') &&
        DISABLED_KEY=$(printf '%s' "$created" | json_field key) || return 1
    api POST /v1/keys.update "{\"id\": \"$(printf '%s' "$created" | json_field id)\", \"enabled\": false}" >/dev/null
}
if ! dead_keys; then
    log "could not make the revoked, disabled and expired keys"
    failed=$((failed + 1))
    finish
fi

rm -rf "$REPORTS"
mkdir -p "$REPORTS"

# 4. Schemathesis, run from the temporary folder so that nothing lands in the work tree.
fuzz() { # fuzz NAME CONFIG USER
    local name=$1 config=$2
    FUZZ_JWT=$(make_jwt "$3") || return 1
    export FUZZ_JWT
    (cd "$WORK" && timeout 1200 "$VENV/bin/schemathesis" --config-file "$config" run "$ROOT/openapi.yaml" \
        --url "$BASE" --no-color --report ndjson,junit --report-dir "$REPORTS" \
        --report-ndjson-path "$REPORTS/$name.ndjson" --report-junit-path "$REPORTS/$name.xml" </dev/null)
}
# fuzz_dead_key NAME CODE KEY: the dead-key pass for KEY, once verify answers it CODE.
fuzz_dead_key() {
    local name=$1 code=$2 answer
    for _ in $(seq 1 40); do
        answer=$(curl -sS --max-time 30 "$BASE/v1/keys.verify" -H "X-API-Key: $3")
        [[ $answer == *"\"$code\""* ]] && break
        sleep 0.5
    done
    [[ $answer == *"\"$code\""* ]] || { log "verify answered $answer, not $code"; return 1; }
    FUZZ_API_KEY=$3 fuzz "$name" "$HERE/schemathesis-dead-keys.toml" fuzz-user-3
}
step "schemathesis pass 1 (keys in headers)" fuzz headers "$HERE/schemathesis.toml" fuzz-user-1
step "schemathesis pass 2 (key in the verify body)" fuzz body "$HERE/schemathesis-body.toml" fuzz-user-2
step "schemathesis pass 3 (a revoked key)" fuzz_dead_key revoked key_revoked "$REVOKED_KEY"
step "schemathesis pass 4 (a disabled key)" fuzz_dead_key disabled key_disabled "$DISABLED_KEY"
step "schemathesis pass 5 (an expired key)" fuzz_dead_key expired key_expired "$EXPIRED_KEY"

# 5. Enough cases.
step "at least $MIN_CASES test cases" "$VENV/bin/python" "$HERE/summarize.py" "$MIN_CASES" "$REPORTS"/*.ndjson

if ((failed)); then
    log "local host log (last 30 lines):"
    tail -n 30 "$WORK/host.log" >&2 || true
fi
finish
