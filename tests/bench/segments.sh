#!/usr/bin/env bash
# TCP segments per answer: whether each answer leaves the server in one write, on each store.
# An answer written in two parts (the head, then the body) on a kept-alive connection waits for
# the client's delayed ACK before its second part goes (~40 ms on Linux: neither Spin nor the
# local host sets TCP_NODELAY; see shared::spin::respond). tcpdump counts, on loopback, the
# server's segments that carry data between one request and the next; one per answer is one
# write (a body above loopback's 64 KiB segments would need more, none here is that large).
#
#   bash tests/bench/segments.sh [REQUESTS]                                 # local host: SQLite, Redis
#   SPIN_BIN=../shared/tools/spin/spin bash tests/bench/segments.sh [REQUESTS]   # Spin: SQLite, Redis, DynamoDB
#
# REQUESTS (default 20) of each kind go over one kept-alive connection (curl, one URL after
# another): verify of a valid key by POST body and by forward-auth (`X-API-Key`, answered with
# the `X-Api-Key-*` headers), of a malformed and of a deleted key; a list; a list refused with a
# 401 that writes a line to the component log; the console's redirect, page and script. DynamoDB runs
# on moto (MOTO_PYTHON, else target/moto-venv: see tests/e2e/spin.sh), on Spin only (the local
# host has no DynamoDB store). STORES="redis" (say) measures only those stores. Needs tcpdump and the right to capture on `lo` (root).
# Prints a Markdown table (also written to target/bench/segments.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=tests/lib/local-host.sh
source tests/lib/local-host.sh
REQUESTS=${1:-20}

command -v tcpdump >/dev/null || { log "tcpdump is not installed (apt-get install tcpdump)"; exit 1; }

work=$(mktemp -d)
HOST_PID=
store_pid=
capture_pid=
cleanup() {
    stop_pid "$capture_pid"
    stop_pid "$HOST_PID"
    stop_pid "$store_pid"
    rm -rf "$work"
}
trap cleanup EXIT

# start_store NAME: starts the store NAME needs (sets store_pid) and writes its runtime config
# to $work/NAME.toml (exports SPIN_RUNTIME_CONFIG; unset for SQLite).
start_store() {
    local port
    unset SPIN_RUNTIME_CONFIG
    store_pid=
    case $1 in
    sqlite) ;;
    redis)
        port=$(free_port)
        redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
            >"$work/redis.log" 2>&1 &
        store_pid=$!
        for _ in $(seq 1 100); do
            redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
            sleep 0.1
        done
        printf '[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:%s"\n' \
            "$port" >"$work/redis.toml"
        export SPIN_RUNTIME_CONFIG=$work/redis.toml
        ;;
    dynamodb)
        port=$(free_port)
        # A process group of its own, so that stop_pid stops it whole.
        setsid "$MOTO_PYTHON" tests/lib/dynamodb_server.py "$port" apikeys-segments \
            >"$work/moto.out" 2>"$work/moto.log" &
        store_pid=$!
        for _ in $(seq 1 600); do
            grep -q ready "$work/moto.out" 2>/dev/null && break
            sleep 0.1
        done
        grep -q ready "$work/moto.out" || { cat "$work/moto.log" >&2; return 1; }
        printf '[key_value_store.default]\ntype = "aws_dynamo"\nregion = "us-east-1"\ntable = "apikeys-segments"\nconsistent_read = true\n' \
            >"$work/dynamodb.toml"
        export SPIN_RUNTIME_CONFIG=$work/dynamodb.toml AWS_ENDPOINT_URL=http://127.0.0.1:$port \
            AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
        ;;
    esac
}

# count WHAT URL ARGS...: REQUESTS requests made by `curl ARGS URL` over one connection,
# captured; appends a row to $rows. Tried again (three times at most) if the capture missed
# answers.
count() {
    local attempt
    for attempt in 1 2 3; do
        capture "$@" && return 0
        log "$1: the capture missed answers (attempt $attempt): $(cat "$work/row")"
    done
    return 1
}

capture() {
    local what=$1 url=$2
    shift 2
    local urls=() i pcap=$work/capture.pcap
    for ((i = 0; i < REQUESTS; i++)); do urls+=(-o /dev/null "$url"); done
    tcpdump -i lo -nn -U --immediate-mode -w "$pcap" "tcp port $port" 2>"$work/tcpdump.log" &
    capture_pid=$!
    # tcpdump says it listens a while before it captures, on a busy machine: a request of the
    # same kind on a connection of its own until one is seen (it also fills caches; not counted).
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$@" "$url"
        tcpdump -r "$pcap" -nn 2>/dev/null | grep -q 'length [1-9]' && break
        sleep 0.1
    done
    local statuses
    # "N× STATUS, C new conn.": how many answers had that status and opened how many connections.
    statuses=$(curl -s -w '%{http_code} %{num_connects}\n' "$@" "${urls[@]}" |
        sort | uniq -c | awk '{ printf "%s%s× %s, %s new conn.", sep, $1, $2, $3; sep = "; " }')
    sleep 1
    kill -INT "$capture_pid" 2>/dev/null || true
    wait "$capture_pid" 2>/dev/null || true
    capture_pid=
    # Per connection (the client's port): each request starts an answer; the server's data
    # segments until the next request are that answer's. The measured connection is the one
    # with the most answers (the others carried one request each).
    tcpdump -r "$pcap" -nn -tt 2>/dev/null | python3 -c '
import re, sys
port, what, statuses = sys.argv[1], sys.argv[2], sys.argv[3]
connections = {}
for line in sys.stdin:
    m = re.match(r"(\d+\.\d+) IP [\d.]+\.(\d+) > [\d.]+\.(\d+):.* length (\d+)", line)
    if not m or int(m.group(4)) == 0:
        continue
    time, source, target, length = float(m.group(1)), m.group(2), m.group(3), int(m.group(4))
    client = target if source == port else source
    answers = connections.setdefault(client, [])
    if source != port:          # a request (or a part of one): an answer starts
        if not answers or answers[-1]["sizes"]:
            answers.append({"sizes": [], "asked": time, "start": None, "end": None})
        continue
    if not answers:
        continue
    answers[-1]["sizes"].append(length)
    answers[-1]["start"] = answers[-1]["start"] or time
    answers[-1]["end"] = time
answers = max(connections.values(), key=len, default=[])
answers = [a for a in answers if a["sizes"]]
counts = {}
for a in answers:
    counts[len(a["sizes"])] = counts.get(len(a["sizes"]), 0) + 1
spread = ", ".join(f"{n}: {c} answers" for n, c in sorted(counts.items()))
gap = max((a["end"] - a["start"] for a in answers), default=0) * 1000
slowest = max((a["end"] - a["asked"] for a in answers), default=0) * 1000
first = "+".join(str(s) for s in answers[0]["sizes"]) if answers else "-"
print(f"| {what} | {statuses} | {len(answers)} | {spread} | {first} | {gap:.1f} ms | {slowest:.1f} ms |")
' "$port" "$what" "$statuses" >"$work/row"
    # The row counts answers in its third column: all of them, or the capture missed some.
    [[ $(awk -F' [|] ' '{ print $3 }' "$work/row") == "$REQUESTS" ]] || return 1
    cat "$work/row" >>"$rows"
}

if [[ -n ${SPIN_BIN:-} ]]; then
    runtime="real \`spin up\` ($SPIN_BIN)"
    stores=(${STORES:-sqlite redis dynamodb})
    MOTO_PYTHON=${MOTO_PYTHON:-$ROOT/target/moto-venv/bin/python3}
    if [[ " ${stores[*]} " == *" dynamodb "* && ! -x $MOTO_PYTHON ]]; then
        log "no moto for DynamoDB (MOTO_PYTHON, or run tests/e2e/spin.sh once)"
        exit 1
    fi
else
    runtime="the local host (${SPIN_HOST_BIN:-target/debug/spin-host})"
    stores=(${STORES:-sqlite redis})
fi

rows=$work/rows.md
report=$work/report.md
{
    echo "### Segments per answer on $runtime ($REQUESTS requests of each kind on one kept-alive connection)"
    echo
} >"$report"
for store in "${stores[@]}"; do
    start_store "$store"
    mkdir -p "$work/$store"
    port=$(free_port)
    start_local_host "$work/$store" "$port"
    base=http://127.0.0.1:$port
    user=segments-user
    token=$(make_jwt "$user")
    create() {
        curl -sf -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d "{\"name\":\"$1\",\"scopes\":[\"read\"]}" "$base/v1/keys.create"
    }
    key=$(create valid | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
    for n in 1 2 3 4 5; do create "more $n" >/dev/null; done
    read -r gone gone_id < <(create deleted |
        python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["key"], d["id"])')
    curl -sf -o /dev/null -X POST -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d "{\"id\":\"$gone_id\"}" "$base/v1/keys.delete"
    malformed="${key%?}x"
    [[ $malformed != "$key" ]] || malformed="${key%?}y"

    : >"$rows"
    count "verify, valid key (POST body)" "$base/v1/keys.verify" -X POST \
        -H 'Content-Type: application/json' -d "{\"key\":\"$key\",\"scope\":\"read\"}"
    count "verify, valid key (forward-auth, \`X-Api-Key-*\` headers)" \
        "$base/v1/keys.verify?scope=read" -H "X-API-Key: $key"
    count "verify, malformed key" "$base/v1/keys.verify" -H "X-API-Key: $malformed"
    count "verify, deleted key" "$base/v1/keys.verify" -H "X-API-Key: $gone"
    count "list, 401 with a log line (token refused)" "$base/v1/keys.list" \
        -H "Authorization: Bearer not-a-token"
    count "list of six keys" "$base/v1/keys.list" -H "Authorization: Bearer $token"
    count "console: redirect (/)" "$base/"
    count "console page (/console)" "$base/console"
    count "console script (/console/console.js)" "$base/console/console.js"
    {
        echo "$store:"
        echo
        echo "| request | status, connections (curl) | answers | segments per answer | first answer's segments (bytes) | longest answer (first to last segment) | slowest (request to the answer's end) |"
        echo "|---|---|---|---|---|---|---|"
        cat "$rows"
        echo
    } >>"$report"
    stop_pid "$HOST_PID"
    HOST_PID=
    stop_pid "$store_pid"
    store_pid=
done
mkdir -p target/bench
tee target/bench/segments.md <"$report"
