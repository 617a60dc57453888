# shellcheck shell=bash
# Helpers for the shell test scripts (tests/fuzz/run.sh, tests/gateway/run.sh, tests/console/run.sh):
# run the app on the local host (tests/spin-host) — or on real `spin up` when SPIN_BIN names a
# Spin binary — on a loopback port, mint HS256 tokens, wait for ports.
# Source it with ROOT set to the repository root. Everything stays on 127.0.0.1.

: "${ROOT:?ROOT must be the repository root}"

# The secret the host gets as SPIN_VARIABLE_JWT_SECRET and the tokens are signed with.
# At least 32 bytes, as the app requires.
JWT_SECRET=${JWT_SECRET:-local-test-secret-0123456789abcdef-$$}
export JWT_SECRET

# The instance memory limit the app runs with, on either runtime (`spin up --max-instance-memory`,
# the host's flag of the same name); as tests/e2e/src/lib.rs INSTANCE_MEMORY_LIMIT, so every
# suite shows that each component fits in it. Spin itself sets no limit by default.
INSTANCE_MEMORY_LIMIT=${INSTANCE_MEMORY_LIMIT:-2097152}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# A free TCP port on 127.0.0.1 (the kernel picks it; free at the time of asking).
free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# make_jwt SUB: an HS256 token for user SUB, valid for an hour, signed with $JWT_SECRET
# (Python's standard library only, as in the README).
make_jwt() {
    python3 - "$1" <<'EOF'
import base64, hashlib, hmac, json, os, sys, time
b64 = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=")
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = b64(json.dumps({"sub": sys.argv[1], "exp": int(time.time()) + 3600}).encode())
signature = b64(hmac.new(os.environ["JWT_SECRET"].encode(), header + b"." + claims, hashlib.sha256).digest())
print((header + b"." + claims + b"." + signature).decode())
EOF
}

# wait_for_http URL SECONDS [PID]: until URL answers anything over HTTP; fails early if PID died.
wait_for_http() {
    local url=$1 seconds=$2 pid=${3:-} deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        if curl -s -o /dev/null --max-time 2 "$url"; then
            return 0
        fi
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            log "process $pid exited while waiting for $url"
            return 1
        fi
        sleep 0.5
    done
    log "no answer from $url within ${seconds}s"
    return 1
}

# apt_candidate PACKAGE: the version apt would install, "" or "(none)" if none.
apt_candidate() { apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}'; }

# apt_install PACKAGE...: installs Debian packages (needs root), with `apt-get update` first if
# apt does not know the first one yet. A policy-rc.d guard keeps each package's own service
# from starting (nginx on port 80, Postfix on 25, Dovecot): the tests start private instances.
# Logs to $WORK/apt.log if WORK is set.
apt_install() {
    command -v apt-get >/dev/null || { log "no apt-get to install $*"; return 1; }
    local candidate apt_log=${WORK:-/tmp}/apt.log
    candidate=$(apt_candidate "$1")
    if [[ -z $candidate || $candidate == "(none)" ]]; then
        log "apt-get update"
        timeout 300 apt-get update -qq || return 1
    fi
    log "installing $*"
    local guard=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' >"$guard" && chmod +x "$guard"
    fi
    # Postfix asks how to configure the system's mail; the tests configure their own.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "$@" \
        >"$apt_log" 2>&1
    local rc=$?
    [[ -n $guard ]] && rm -f "$guard"
    ((rc == 0)) || { tail -n 20 "$apt_log" >&2; return 1; }
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s. Only the process we started, by its id, and
# the processes it started if it leads a process group of its own (`spin up` runs the HTTP
# trigger as a child, so start_local_host starts Spin as a group leader).
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# Makes sure the host binary and the components exist; builds them only if missing.
ensure_artifacts() {
    SPIN_HOST_BIN=${SPIN_HOST_BIN:-target/debug/spin-host}
    case $SPIN_HOST_BIN in /*) ;; *) SPIN_HOST_BIN=$ROOT/$SPIN_HOST_BIN ;; esac
    if [[ -z ${SPIN_BIN:-} && ! -x $SPIN_HOST_BIN ]]; then
        if [[ $SPIN_HOST_BIN == "$ROOT/target/debug/spin-host" ]]; then
            log "building the local host (cargo build -p spin-host)"
            (cd "$ROOT" && cargo build -p spin-host) || return 1
        else
            log "SPIN_HOST_BIN=$SPIN_HOST_BIN is not an executable"
            return 1
        fi
    fi
    local c missing=()
    for c in create list delete update roll events verify console revoke; do
        [[ -f $ROOT/target/wasm32-wasip2/wasm/$c.wasm ]] || missing+=("$c")
    done
    if ((${#missing[@]})); then
        log "building the components (${missing[*]} missing)"
        (cd "$ROOT" && cargo build --profile wasm --target wasm32-wasip2 \
            -p create -p list -p delete -p update -p roll -p events -p verify -p console -p revoke) || return 1
    fi
}

# start_local_host DIR PORT: serves spin.toml on 127.0.0.1:PORT; sets HOST_PID, logs to
# DIR/host.log. The manifest is copied to DIR with its component paths made absolute, so the
# host keeps its SQLite store in DIR/.spin/ — a fresh, empty store that no developer's data
# shares and that goes away with DIR. With SPIN_RUNTIME_CONFIG set to a runtime config file
# (Spin's format, e.g. a Redis store), the host uses the store that file names instead. With
# SPIN_BIN set, the app runs on real `spin up` (SPIN_BIN made absolute) the same way.
start_local_host() {
    local dir=$1 port=$2 store=()
    ensure_artifacts || return 1
    if [[ -n ${SPIN_BIN:-} ]]; then
        case $SPIN_BIN in /*) ;; *) SPIN_BIN=$ROOT/$SPIN_BIN ;; esac
    fi
    if [[ -n ${SPIN_RUNTIME_CONFIG:-} ]]; then
        store=(--runtime-config-file "$SPIN_RUNTIME_CONFIG")
        log "key-value store as in $SPIN_RUNTIME_CONFIG"
    fi
    sed -E "s#^source = \"([^/\"][^\"]*)\"#source = \"$ROOT/\\1\"#" "$ROOT/spin.toml" >"$dir/spin.toml"
    rm -f "$dir/.spin/sqlite_key_value.db"
    if [[ -n ${SPIN_BIN:-} ]]; then
        # Real Spin, in a process group of its own (see stop_pid); its SQLite store in DIR/.spin.
        log "starting real Spin ($SPIN_BIN) on 127.0.0.1:$port"
        (cd "$dir" && exec setsid env SPIN_VARIABLE_JWT_SECRET="$JWT_SECRET" "$SPIN_BIN" up "${store[@]}" \
            --listen "127.0.0.1:$port" -f "$dir/spin.toml" --state-dir "$dir/.spin" \
            --max-instance-memory "$INSTANCE_MEMORY_LIMIT" \
            </dev/null >"$dir/host.log" 2>&1) &
    else
        log "starting $SPIN_HOST_BIN on 127.0.0.1:$port"
        (cd "$dir" && exec env SPIN_VARIABLE_JWT_SECRET="$JWT_SECRET" "$SPIN_HOST_BIN" up --no-build "${store[@]}" \
            --listen "127.0.0.1:$port" --manifest "$dir/spin.toml" \
            --max-instance-memory "$INSTANCE_MEMORY_LIMIT" </dev/null >"$dir/host.log" 2>&1) &
    fi
    HOST_PID=$!
    # Compiling the five components takes a while on a debug build of the host.
    if ! wait_for_http "http://127.0.0.1:$port/" "${HOST_START_TIMEOUT:-300}" "$HOST_PID"; then
        log "the local host did not come up; its log:"
        tail -n 50 "$dir/host.log" >&2 || true
        return 1
    fi
    log "local host up (pid $HOST_PID)"
}
