#!/usr/bin/env bash
# Instructions per request, counted by callgrind: the benchmark's reference rows and verify,
# measured without the noise of a shared machine. Requests per second on these 2-core VMs
# spread by ±10% between rounds; the instructions the host executes for one request (wasmtime,
# the component, the store, hyper — everything in user space) repeat to within about 1%.
# What they leave out is the kernel's share (sockets, scheduling), the same for every row.
# Under valgrind the host cannot reserve its instance pool's address space and falls back to
# wasmtime's on-demand allocator (memory mapped afresh per request instead of a pooled slot
# reset), so compare the rows of one run rather than them with a throughput run's CPU time.
#
#   bash tests/bench/instructions.sh [REQUESTS]      (default 300 per row; needs valgrind)
#   KEEP_DUMPS=target/bench/callgrind bash tests/bench/instructions.sh   # and keep each row's dump
#
# Builds the release host and the components it needs, runs the host under callgrind on a
# loopback port, creates a key through the API, then for each row zeroes the counters, sends
# REQUESTS requests over one connection and dumps. Prints a Markdown table (also written to
# target/bench/instructions.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=tests/lib/local-host.sh
source tests/lib/local-host.sh
REQUESTS=${1:-300}

command -v valgrind >/dev/null || { log "valgrind is not installed (apt-get install valgrind)"; exit 1; }
# With the benchmark: the features of `cargo build --release -p bench`, so that one release build
# serves both (alone, `-p spin-host` resolves fewer features of futures, digest and others, and
# builds wasmtime-wasi and what depends on it again).
cargo build -q --release -p bench -p spin-host
cargo build -q --profile wasm --target wasm32-wasip2 -p create -p list -p delete -p update \
    -p roll -p events -p verify -p console -p empty -p floor -p contract-floor
wasm=$ROOT/target/wasm32-wasip2/wasm

app=$(mktemp -d)
host_pid=
cleanup() {
    stop_pid "$host_pid"
    rm -rf "$app"
}
trap cleanup EXIT

# The app of spin.toml (its sources made absolute), plus the reference components, as the
# benchmark runs it.
sed "s#source = \"target/wasm32-wasip2/wasm/#source = \"$wasm/#" spin.toml >"$app/spin.toml"
for reference in empty floor contract-floor; do
    printf '\n[[trigger.http]]\nroute = "/bench/%s"\ncomponent = "%s"\n\n[component.%s]\nsource = "%s"\nkey_value_stores = ["default"]\n' \
        "$reference" "$reference" "$reference" "$wasm/${reference//-/_}.wasm" >>"$app/spin.toml"
done

port=$(free_port)
out=$app/callgrind.out
(cd "$app" && SPIN_VARIABLE_JWT_SECRET=$JWT_SECRET exec valgrind --tool=callgrind \
    --callgrind-out-file="$out" --smc-check=all-non-file \
    "$ROOT/target/release/spin-host" up --no-build --listen "127.0.0.1:$port" \
    >"$app/host.log" 2>&1) &
host_pid=$!
wait_for_http "http://127.0.0.1:$port/bench/empty" 600 "$host_pid" || {
    cat "$app/host.log" >&2
    exit 1
}

base=http://127.0.0.1:$port
token=$(make_jwt instructions-user)
key=$(curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"name":"valid","scopes":["read"]}' "$base/v1/keys.create" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
malformed="${key%?}x"
[[ $malformed != "$key" ]] || malformed="${key%?}y"
# The floor components read a copy of the key's record, as in the benchmark.
python3 - "$app/.spin/sqlite_key_value.db" "$key" <<'EOF'
import hashlib, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
suffix = "%" + hashlib.sha256(sys.argv[2].encode()).hexdigest()
(record,) = db.execute("select value from spin_key_value where key like ?", (suffix,)).fetchone()
db.execute("insert or replace into spin_key_value(store, key, value) "
           "values ('default', 'apikeys/v1/bench/floor', ?)", (record,))
db.commit()
EOF

# count ROW PATH KEY: instructions per request of REQUESTS GETs of PATH with KEY in X-API-Key.
declare -A counted
count() {
    local urls=() i
    for ((i = 0; i < REQUESTS; i++)); do urls+=("$base$2"); done
    curl -s -H "X-API-Key: $3" "${urls[@]}" >/dev/null # warm: the first requests fill caches
    callgrind_control -z "$host_pid" >/dev/null 2>&1
    curl -s -H "X-API-Key: $3" "${urls[@]}" >/dev/null
    callgrind_control -d "$1" "$host_pid" >/dev/null 2>&1
    local dump total
    dump=$(ls -t "$out".* | head -1)
    total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
    counted[$1]=$((total / REQUESTS))
    # KEEP_DUMPS=DIR keeps each row's dump as DIR/ROW.callgrind, for `callgrind_annotate`
    # (where a row's instructions go).
    if [[ -n ${KEEP_DUMPS:-} ]]; then
        mkdir -p "$KEEP_DUMPS"
        cp "$dump" "$KEEP_DUMPS/$1.callgrind"
    fi
}
count empty /bench/empty "$key"
count floor /bench/floor "$key"
count contract-floor /bench/contract-floor "$key"
count verify /v1/keys.verify "$key"
count malformed /v1/keys.verify "$malformed"

ratio() { python3 -c "print(f'{$1 / $2:.2f}×')"; }
report=$(
    echo "### Instructions per request (callgrind, $REQUESTS requests a row, one connection)"
    echo
    echo "| request | instructions per request |"
    echo "|---|---|"
    echo "| empty component | ${counted[empty]} |"
    echo "| floor component (one get) | ${counted[floor]} |"
    echo "| contract floor component (one get, the contract's headers) | ${counted[contract-floor]} |"
    echo "| verify, valid key | ${counted[verify]} |"
    echo "| verify, malformed key | ${counted[malformed]} |"
    echo
    echo "| comparison (fewer instructions = higher) | ratio |"
    echo "|---|---|"
    echo "| verify, valid key next to the floor | $(ratio "${counted[floor]}" "${counted[verify]}") |"
    echo "| verify, malformed key next to the empty component | $(ratio "${counted[empty]}" "${counted[malformed]}") |"
    echo "| contract floor next to the floor: the best any verify can do | $(ratio "${counted[floor]}" "${counted[contract-floor]}") |"
    echo "| verify, valid key next to the contract floor | $(ratio "${counted[contract-floor]}" "${counted[verify]}") |"
)
mkdir -p target/bench
echo "$report" | tee target/bench/instructions.md
