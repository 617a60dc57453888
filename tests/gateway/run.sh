#!/usr/bin/env bash
# Proves a gateway config from deploy/ end to end: the gateway in front of a stand-in API, asking
# the real components, served by the local host or Spin, to verify each request's key.
#
#   bash tests/gateway/run.sh                  # nginx auth_request: deploy/nginx/nginx.conf
#   GATEWAY=caddy bash tests/gateway/run.sh    # Caddy reverse_proxy: deploy/caddy/Caddyfile
#   GATEWAY=apache bash tests/gateway/run.sh   # httpd + mod_auth_openidc: deploy/apache/httpd.conf
#
# Installs the gateway from Debian's packages if it is missing (needs root), starts the local
# host (SPIN_HOST_BIN, default target/debug/spin-host; or Spin with SPIN_BIN),
# tests/gateway/upstream.py and the gateway, all on free loopback ports, then checks with curl
# what a client gets and what the API behind sees: which user, under which raw header names
# (nothing a client forged or stripped), and the raw path, which must reach a handler the key's
# scopes cover however the API reads it (upstream.py reads it three ways); and that the gateway
# reuses its connections to api-keys rather than opening one per request. The three gateways
# answer every check the same way, but for api-keys down (Apache: 401, not 503).
# Prints `gateway (NAME): N passed, M failed`; exits non-zero if anything failed.

# The checks below are conditions passed to `eval` in single quotes, on purpose.
# shellcheck disable=SC2016,SC2034
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ROOT
# shellcheck source=tests/lib/local-host.sh
. "$ROOT/tests/lib/local-host.sh"

started=$SECONDS
passed=0
failed=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/api-keys-gateway.XXXXXX")
# nginx started as root runs its workers as nobody, who must reach the temporary files here.
chmod 755 "$WORK"
HOST_PID=
UPSTREAM_PID=
GATEWAY=${GATEWAY:-nginx}
GATEWAY_PID=
cleanup() {
    stop_pid "$GATEWAY_PID"
    stop_pid "$UPSTREAM_PID"
    stop_pid "$HOST_PID"
    if [[ ${KEEP_WORK:-} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
finish() {
    if ((failed)); then
        for f in host.log upstream.log gateway.log; do
            [[ -f $WORK/$f ]] && { echo "--- $f (last 20 lines)"; tail -n 20 "$WORK/$f"; }
        done
    fi
    log "took $((SECONDS - started))s"
    echo "gateway ($GATEWAY): $passed passed, $failed failed"
    ((failed == 0))
    exit $?
}
abort() { fail "$*"; finish; }

# ---- nginx ------------------------------------------------------------------------------------
# Installs nginx-light (or nginx) from Debian's packages if no nginx is on PATH.
ensure_nginx() {
    NGINX=${NGINX:-$(command -v nginx || true)}
    [[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
    if [[ -z $NGINX ]]; then
        local pkg="" name version
        version=$(apt_candidate nginx-light)
        if [[ -z $version || $version == "(none)" ]]; then
            log "apt-get update"
            timeout 300 apt-get update -qq || return 1
        fi
        for name in nginx-light nginx; do
            version=$(apt_candidate "$name")
            if [[ -n $version && $version != "(none)" ]]; then pkg=$name && break; fi
        done
        [[ -n $pkg ]] || { log "no nginx package available"; return 1; }
        apt_install "$pkg" || return 1
        NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    fi
    [[ -x $NGINX ]] || return 1
    if ! "$NGINX" -V 2>&1 | grep -q -- --with-http_auth_request_module; then
        log "$NGINX lacks the auth_request module"
        return 1
    fi
    log "using $NGINX ($("$NGINX" -v 2>&1))"
}

# ---- Caddy ------------------------------------------------------------------------------------
# Installs caddy from Debian's packages if it is not on PATH.
ensure_caddy() {
    CADDY=${CADDY:-$(command -v caddy || true)}
    if [[ -z $CADDY ]]; then
        local version
        version=$(apt_candidate caddy)
        if [[ -z $version || $version == "(none)" ]]; then
            log "apt-get update"
            timeout 300 apt-get update -qq || return 1
        fi
        apt_install caddy || return 1
        CADDY=$(command -v caddy || echo /usr/bin/caddy)
    fi
    [[ -x $CADDY ]] || return 1
    log "using $CADDY ($("$CADDY" version 2>&1))"
}

# ---- Processes --------------------------------------------------------------------------------
GW_PORT=$(free_port)
HOST_PORT=$(free_port)
UP_PORT=$(free_port)
GW=http://127.0.0.1:$GW_PORT
API=http://127.0.0.1:$HOST_PORT

# Introspection (Apache's way in) answers only callers that show this secret.
export SPIN_VARIABLE_INTROSPECTION_CLIENT_SECRET=gateway-introspection-secret-$$-$RANDOM
start_local_host "$WORK" "$HOST_PORT" || abort "the local host starts"

# Every request the upstream gets is also a line of JSON in upstream.jsonl (see upstream.py).
UP_RECORD=$WORK/upstream.jsonl
python3 "$ROOT/tests/gateway/upstream.py" "$UP_PORT" "$UP_RECORD" </dev/null >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!
wait_for_http "http://127.0.0.1:$UP_PORT/" 30 "$UPSTREAM_PID" || abort "the upstream starts"
# upstream_count: how many requests the upstream has had. The readiness probes above came
# straight, not through the gateway; the last check looks only at the requests after them.
upstream_count() { if [[ -f $UP_RECORD ]]; then wc -l <"$UP_RECORD"; else echo 0; fi; }
UP_BASE=$(upstream_count)

# The committed config with its three default addresses replaced by the free ports.
# start_nginx / start_caddy: template, validate and start the gateway; set GATEWAY_PID.
template_config() { # template_config FROM TO PORT-SUFFIX-REGEX
    sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$GW_PORT/g" -e "s/^\(http:\/\/\):8080/\1:$GW_PORT/" \
        -e "s/127\.0\.0\.1:3000/127.0.0.1:$HOST_PORT/g" \
        -e "s/127\.0\.0\.1:9000/127.0.0.1:$UP_PORT/g" \
        "$1" >"$2"
    for port in "$GW_PORT" "$HOST_PORT" "$UP_PORT"; do
        grep -Eq ":$port$3" "$2" || abort "templating put port $port in $2"
    done
}
start_nginx() {
    ensure_nginx || abort "nginx with auth_request is available"
    mkdir -p "$WORK/nginx"
    template_config "$ROOT/deploy/nginx/nginx.conf" "$WORK/nginx.conf" ';'
    "$NGINX" -t -q -e stderr -c "$WORK/nginx.conf" -p "$WORK/nginx/" || abort "nginx -t accepts deploy/nginx/nginx.conf"
    "$NGINX" -e stderr -c "$WORK/nginx.conf" -p "$WORK/nginx/" </dev/null >"$WORK/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    wait_for_http "$GW/" 30 "$GATEWAY_PID" || abort "nginx starts"
    pass "nginx -t accepts deploy/nginx/nginx.conf and nginx serves it"
}
start_caddy() {
    ensure_caddy || abort "caddy is available"
    template_config "$ROOT/deploy/caddy/Caddyfile" "$WORK/Caddyfile" '( |$)'
    # Caddy keeps its state under $HOME / $XDG_*: here, so that nothing outside $WORK changes.
    export HOME=$WORK XDG_DATA_HOME=$WORK/caddy-data XDG_CONFIG_HOME=$WORK/caddy-config
    "$CADDY" validate --adapter caddyfile --config "$WORK/Caddyfile" >"$WORK/gateway.log" 2>&1 ||
        abort "caddy validate accepts deploy/caddy/Caddyfile ($(tail -n 3 "$WORK/gateway.log"))"
    "$CADDY" run --adapter caddyfile --config "$WORK/Caddyfile" </dev/null >>"$WORK/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    wait_for_http "$GW/" 30 "$GATEWAY_PID" || abort "caddy starts"
    pass "caddy validate accepts deploy/caddy/Caddyfile and caddy serves it"
}
# Installs Apache httpd and mod_auth_openidc from Debian's packages if either is missing.
ensure_apache() {
    APACHE=${APACHE:-$(command -v apache2 || echo /usr/sbin/apache2)}
    if [[ ! -x $APACHE || ! -f /usr/lib/apache2/modules/mod_auth_openidc.so ]] || ! command -v openssl >/dev/null; then
        local version
        version=$(apt_candidate libapache2-mod-auth-openidc)
        if [[ -z $version || $version == "(none)" ]]; then
            log "apt-get update"
            timeout 300 apt-get update -qq || return 1
        fi
        apt_install apache2 libapache2-mod-auth-openidc openssl || return 1
        APACHE=$(command -v apache2 || echo /usr/sbin/apache2)
    fi
    [[ -x $APACHE ]] || return 1
    log "using $APACHE ($("$APACHE" -v 2>&1 | head -n 1))"
}
start_apache() {
    ensure_apache || abort "apache2 with mod_auth_openidc is available"
    local folder=$WORK/apache tls_port
    tls_port=$(free_port)
    mkdir -p "$folder"
    # The TLS certificate the config's introspection host serves and mod_auth_openidc trusts.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$folder/tls.key" -out "$folder/tls.crt" \
        >"$WORK/openssl.log" 2>&1 || abort "openssl makes a certificate ($(tail -n 2 "$WORK/openssl.log"))"
    sed -e "s#/tmp/api-keys-apache#$folder#g" -e "s/127\.0\.0\.1:3443/127.0.0.1:$tls_port/g" \
        -e "s#REPLACE-WITH-THE-APPS-INTROSPECTION-CLIENT-SECRET#$SPIN_VARIABLE_INTROSPECTION_CLIENT_SECRET#" \
        "$ROOT/deploy/apache/httpd.conf" >"$WORK/httpd.template"
    template_config "$WORK/httpd.template" "$WORK/httpd.conf" '([ /"]|$)'
    grep -q "127.0.0.1:$tls_port" "$WORK/httpd.conf" || abort "templating put port $tls_port in httpd.conf"
    "$APACHE" -t -f "$WORK/httpd.conf" >"$WORK/gateway.log" 2>&1 ||
        abort "apache2 -t accepts deploy/apache/httpd.conf ($(tail -n 3 "$WORK/gateway.log"))"
    "$APACHE" -f "$WORK/httpd.conf" -DFOREGROUND </dev/null >>"$WORK/gateway.log" 2>&1 &
    GATEWAY_PID=$!
    wait_for_http "$GW/" 30 "$GATEWAY_PID" || abort "apache2 starts"
    pass "apache2 -t accepts deploy/apache/httpd.conf and apache2 serves it"
}
case $GATEWAY in
nginx) start_nginx ;;
caddy) start_caddy ;;
apache) start_apache ;;
*) abort "GATEWAY is nginx, caddy or apache, not $GATEWAY" ;;
esac

# ---- Helpers ----------------------------------------------------------------------------------
# req ARGS...: curl with a time limit; sets STATUS, body in $WORK/body, headers in $WORK/headers.
req() {
    STATUS=$(curl -sS --max-time 10 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' "$@") || STATUS=000
}
# field NAME: a top-level field of the JSON in $WORK/body ("" if absent or not JSON).
field() {
    python3 -c 'import json, sys
try:
    v = json.load(open(sys.argv[1])).get(sys.argv[2])
except Exception:
    v = None
print("" if v is None else (json.dumps(v) if isinstance(v, bool) else v))' "$WORK/body" "$1"
}
error_code() {
    python3 -c 'import json, sys
try:
    print(json.load(open(sys.argv[1]))["error"]["code"])
except Exception:
    print("")' "$WORK/body"
}
header() { tr -d '\r' <"$WORK/headers" | awk -v n="$(tr '[:upper:]' '[:lower:]' <<<"$1")" \
    'BEGIN{FS=": "} tolower($1)==n {print substr($0, length($1)+3)}' | tail -n 1; }
# check NAME COMMAND...: a PASS if COMMAND succeeds (usually a test of the last `req`).
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name (status $STATUS, body $(head -c 300 "$WORK/body" 2>/dev/null))"; fi
}
create_key() { # create_key USER SCOPES-JSON: sets KEY and KEY_ID
    local token
    token=$(make_jwt "$1")
    req -X POST "$API/v1/keys.create" -H "Authorization: Bearer $token" \
        -d "{\"name\": \"gateway test\", \"scopes\": $2}"
    KEY=$(field key)
    KEY_ID=$(field id)
    [[ $STATUS == 201 && -n $KEY && -n $KEY_ID ]]
}

# raw_req [--no-key] [--trailer 'NAME: VALUE'] 'NAME: VALUE'...: GET /read/items with the read
# key in X-API-Key and these header lines sent byte for byte (curl would merge, reorder or drop
# some); with --trailer, a chunked POST whose trailer is that line. Sets STATUS and $WORK/body
# as req does.
raw_req() {
    STATUS=$(python3 - "$GW_PORT" "$WORK/body" "$READ_KEY" "$@" <<'EOF'
import http.client, socket, sys
port, out, key, *args = sys.argv[1:]
lines, trailer = [], None
while args:
    arg = args.pop(0)
    if arg == "--no-key":
        key = None
    elif arg == "--trailer":
        trailer = args.pop(0)
    else:
        lines.append(arg)
head = ["POST" if trailer else "GET", " /read/items HTTP/1.1\r\nHost: 127.0.0.1\r\n"]
if key:
    head.append(f"X-API-Key: {key}\r\n")
head += [line + "\r\n" for line in lines]
if trailer:
    head.append("Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" + trailer + "\r\n")
head.append("\r\n")
try:
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as s:
        s.sendall("".join(head).encode("latin-1"))
        answer = http.client.HTTPResponse(s)
        answer.begin()
        body = answer.read()
    open(out, "wb").write(body)
    print(answer.status)
except Exception as e:
    open(out, "w").write(str(e))
    print("000")
EOF
)
}
# identity_is USER ID SCOPES: among the headers and trailers the API got, those it could read as
# X-Api-Key-User, -Id, -Scopes or X-API-Key in any spelling (api_key_headers, upstream.py) are
# exactly the gateway's three, hyphenated (in any case), each once, with these values.
identity_is() {
    python3 - "$WORK/body" "$@" <<'EOF'
import json, sys
try:
    got = json.load(open(sys.argv[1]))["api_key_headers"]
except Exception:
    sys.exit(1)
names = ("x-api-key-user", "x-api-key-id", "x-api-key-scopes", "x-api-key")
readable = sorted((n.lower(), v) for n, v in got if n.strip().lower().replace("_", "-") in names)
sys.exit(readable != sorted(zip(names, sys.argv[2:5])))
EOF
}
# api_got NAME: how many headers of this name (any case) the API got.
api_got() {
    python3 -c 'import json, sys
try:
    print(sum(n.lower() == sys.argv[2] for n, _ in json.load(open(sys.argv[1]))["headers"]))
except Exception:
    print("")' "$WORK/body" "$(tr '[:upper:]' '[:lower:]' <<<"$1")"
}
# check_identity NAME: a PASS if the last request got 200 and the API saw the read key's owner,
# id and scopes exactly (identity_is), and nothing else under those names.
check_identity() {
    if [[ $STATUS == 200 ]] && identity_is "$GW_USER" "$READ_ID" read; then
        pass "$1"
    else
        fail "$1 (status $STATUS, the API got $(field api_key_headers || true))"
    fi
}

# ---- The checks -------------------------------------------------------------------------------
GW_USER=gw-alice@example.com
create_key "$GW_USER" '["read"]' || abort "create a key with scope read (status $STATUS)"
READ_KEY=$KEY
READ_ID=$KEY_ID

req "$GW/read/items" -H "X-API-Key: $READ_KEY"
check "read key, X-API-Key, /read/ → 200 and the API sees X-Api-Key-User: $GW_USER" \
    eval '[[ $STATUS == 200 && $(field x_api_key_user) == "$GW_USER" && $(field x_api_key_id) == "$READ_ID" && $(field x_api_key_scopes) == read ]]'
check "the API does not receive the key itself" \
    eval '[[ $(field received_x_api_key) == false && $(field received_authorization) == false ]]'

req "$GW/read/items" -H "Authorization: Bearer $READ_KEY"
check "read key, Authorization: Bearer, /read/ → 200 as $GW_USER" \
    eval '[[ $STATUS == 200 && $(field x_api_key_user) == "$GW_USER" ]]'

req "$GW/admin/settings" -H "X-API-Key: $READ_KEY"
check "read key on /admin/ (needs admin) → 403 insufficient_scope" \
    eval '[[ $STATUS == 403 && $(error_code) == insufficient_scope ]]'

# Spellings of /admin that must not fall through to a weaker location. (/%61dmin/settings,
# //admin/settings and /read/../admin/settings were here too: they are refused with 400 now,
# with the other paths that normalise to another path, below.)
for path in /admin /ADMIN/settings /Admin /admin/; do
    req --path-as-is "$GW$path" -H "X-API-Key: $READ_KEY"
    check "read key on $path → 403 insufficient_scope" \
        eval '[[ $STATUS == 403 && $(error_code) == insufficient_scope ]]'
done
req "$GW/READ" -H "X-API-Key: $READ_KEY"
check "read key on /READ → 200 (read paths match in any case, without the slash)" eval '[[ $STATUS == 200 ]]'
req "$GW/elsewhere" -H "X-API-Key: $READ_KEY"
check "read key on a path no location names → 403 (the fallback needs the strictest scope)" \
    eval '[[ $STATUS == 403 && $(error_code) == insufficient_scope ]]'

# ---- Raw paths ---------------------------------------------------------------------------------
# nginx chooses the location (the scope) from the decoded, normalised path but forwards the raw
# one; a path that reads differently decoded than written is refused before any key check.
# Each is sent byte for byte (--request-target), with no key at all and then with the read key:
# 400 both times (no key gets 400, not 401: refused before verify is asked), and nothing
# reaches the API.
refused_paths=(
    # issue 19: checked as scope=read, reached the API as written
    /admin/..%2Fread /admin%2F..%2Fread /admin/%2e%2e/read '/read/..;/admin/settings'
    # were 403 before (nginx chose admin), refused now all the same
    /%61dmin/settings //admin/settings /read/../admin/settings
    # encoded slash, dot, backslash, semicolon, in either case, mixed with raw ones
    /read/..%2Fadmin/settings /read%2F..%2Fadmin /read/%2E%2E/admin/settings /read/.%2e/admin
    /read/..%5Cadmin/settings /read%5c..%5cadmin /read/..%3B/admin/settings
    # raw backslash, semicolon, '#', '//', dot segments (also last, and before the query)
    '/read\..\admin\settings' '/read/..\admin' '/read;a=b/items' '/read/a#/../../admin'
    /read//admin/settings /read/./items /read/x/../../admin/settings /read/.. /read/. '/read/..?next=x'
    # an encoded letter or other unreserved character: /%72ead matches as /read
    /%72ead/items /%41DMIN/settings /read/%7Eadmin /read/%5Fx /read/%2d
    # an encoded '%' (decoded twice it is ../) and overlong UTF-8 for '.'
    /read/%252e%252e/admin/settings /read/%C0%AE%C0%AE/admin/settings
    # the absolute form of the request line
    "$GW/admin/..%2Fread"
)
for target in "${refused_paths[@]}"; do
    before=$(upstream_count)
    req --request-target "$target" "$GW/"
    keyless="$STATUS $(error_code)"
    req --request-target "$target" "$GW/" -H "X-API-Key: $READ_KEY"
    check "read key on $target → 400 invalid_path (no key: 400 too), nothing reaches the API" \
        eval '[[ $STATUS == 400 && $(error_code) == invalid_path && $keyless == "400 invalid_path" &&
            $(upstream_count) == "$before" ]]'
done

# Paths that read the same decoded as written pass, and reach the API exactly as sent; its
# reading of them, any of the three, needs no more than read. The query is not judged.
for target in /read/items /READ/items /read/caf%C3%A9 /read/a%20b /read/a%3Fb /read/a%23b \
    /read/.well-known /read/... /read/a..b '/read/items?next=/admin/..%2F..;//%2e%2e\x'; do
    req --request-target "$target" "$GW/" -H "X-API-Key: $READ_KEY"
    check "read key on $target → 200, the API gets $target and reaches a read handler" \
        eval '[[ $STATUS == 200 && $(field path) == "$target" && $(field x_api_key_scopes) == read &&
            $(field scope_ok) == true ]]'
done

req "$GW/read/items"
check "no key → 401 invalid_key with one WWW-Authenticate: Bearer" \
    eval '[[ $STATUS == 401 && $(error_code) == invalid_key && $(header WWW-Authenticate) == Bearer* && $(grep -ci "^www-authenticate:" "$WORK/headers") == 1 ]]'

last=${READ_KEY: -1}
req "$GW/read/items" -H "X-API-Key: ${READ_KEY%?}$([[ $last == x ]] && echo y || echo x)"
check "mistyped key → 401" eval '[[ $STATUS == 401 ]]'

req "$GW/read/items" -H "X-API-Key: $READ_KEY" -H "X-Api-Key-User: mallory" -H "X-Api-Key-Scopes: admin"
check_identity "a client's own X-Api-Key-User / X-Api-Key-Scopes are replaced"

# ---- Identity headers a client forges or strips (issue 29) -------------------------------------
# Who is calling is said by the gateway alone: whatever a client sends, the API gets the read
# key's owner, id and scopes under the gateway's three names, once each, and nothing the client
# wrote under any spelling of them (upstream.py reports raw header names: a CGI, WSGI, PHP-FPM or
# Rack API reads X_Api_Key_User as HTTP_X_API_KEY_USER). Each gateway drops what it must and
# lets the request go on (200), as nginx always has.

# A Connection header names the headers a proxy must remove before passing a request on;
# Caddy and httpd used to remove them after setting them from the key check's answer.
raw_req "Connection: close, X-Api-Key-User, X-Api-Key-Scopes"
check_identity "Connection: close, X-Api-Key-User, X-Api-Key-Scopes → the API still gets the gateway's user and scopes"
raw_req "Connection: keep-alive" "Connection: x-api-key-id"
check_identity "two Connection headers, the second naming x-api-key-id → the API still gets the key id"
raw_req $'Connection: \tX-API-KEY-SCOPES\t,X-Api-Key-Id,,x-Api-key-USER '
check_identity "Connection naming all three (tabs, an empty token, any case) → the API gets all three"
raw_req "Connection: TE, Keep-Alive, X-Api-Key-User" "TE: trailers" "Keep-Alive: timeout=5, max=10" \
    "Proxy-Connection: X-Api-Key-Scopes"
check_identity "Connection: TE, Keep-Alive, X-Api-Key-User with TE, Keep-Alive and Proxy-Connection → the API gets all three"

# The same names spelled otherwise: with `_`, in any case.
raw_req "X_Api_Key_User: victim@example.com"
check_identity "X_Api_Key_User: victim@example.com → the API gets only the gateway's X-Api-Key-User"
# All eight spellings of each name (`-` or `_` at each of three places), in mixed case.
spellings() { # spellings SUFFIX: the eight, one per line
    local a b c
    for a in - _; do for b in - _; do for c in - _; do
        echo "x${a}API${b}key${c}$1"
    done; done; done
}
for suffix in User Id Scopes; do
    forged=()
    while read -r name; do forged+=("$name: forged-$suffix-${#forged[@]}"); done < <(spellings "$suffix")
    raw_req "${forged[@]}"
    check_identity "x-API-key-$suffix in all eight spellings (- or _, mixed case) → the API gets only the gateway's"
done
create_key victim@example.com '["read", "admin"]' || abort "create a key for another user (status $STATUS)"
raw_req "X_API_KEY: $KEY" "x-api_key: $KEY" "X_Api-Key: $KEY"
check_identity "another user's key under X_API_KEY, x-api_key, X_Api-Key → the API gets neither it nor that user"

# Both at once: the gateway's headers named in Connection, the client's own spelled with `_`.
raw_req "Connection: close, X-Api-Key-User, X-Api-Key-Scopes" "X_Api_Key_User: victim@example.com" \
    "X_Api_Key_Scopes: admin"
check_identity "Connection naming X-Api-Key-User, -Scopes and X_Api_Key_User: victim, X_Api_Key_Scopes: admin → the gateway's own"
raw_req "Connection: X_Api_Key_User, X-Api-Key-User" "Connection: x-api-key-scopes, X-API-KEY-ID" \
    "X_API_KEY_USER: victim@example.com" "x-api-key-user: victim@example.com" "x_api_key_scopes: admin" \
    "X-Api-Key_Id: forged"
check_identity "Connection naming every spelling, with forged values under three spellings → the gateway's own"

# A connection upgrade would carry later requests to the API past the gateway, unchecked
# (h2c: a whole HTTP/2 connection): none is passed on.
raw_req "Connection: Upgrade, HTTP2-Settings" "Upgrade: h2c" "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"
check_identity "Upgrade: h2c → the API gets the gateway's identity"
check "Upgrade: h2c → the API gets no Upgrade header (no tunnel past the gateway)" \
    eval '[[ $STATUS == 200 && $(api_got Upgrade) == 0 ]]'
raw_req "Connection: Upgrade" "Upgrade: websocket" "Sec-WebSocket-Version: 13" \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
check "Upgrade: websocket → 200, the API gets no Upgrade header and the gateway's identity" \
    eval '[[ $STATUS == 200 && $(api_got Upgrade) == 0 ]] && identity_is "$GW_USER" "$READ_ID" read'

# A trailer comes after the body, after the gateway set its headers.
raw_req --trailer "X-Api-Key-User: victim@example.com" "Trailer: X-Api-Key-User"
check_identity "a chunked body with trailer X-Api-Key-User: victim → the API gets no such trailer, the gateway's identity"

# Without a key the forgery changes nothing: 401 before the API.
before=$(upstream_count)
raw_req --no-key "X_Api_Key_User: victim@example.com" "X-Api-Key-Scopes: admin" "Connection: X-API-Key"
check "no key, with X_Api_Key_User, X-Api-Key-Scopes and Connection: X-API-Key → 401, nothing reaches the API" \
    eval '[[ $STATUS == 401 && $(error_code) == invalid_key && $(upstream_count) == "$before" ]]'

# 20 KiB: more than verify would take in a body (16 KiB); only headers go to verify.
head -c 20480 /dev/zero | tr '\0' 'a' >"$WORK/big"
req -X POST "$GW/read/upload" -H "X-API-Key: $READ_KEY" --data-binary "@$WORK/big"
check "POST with a 20 KiB body → 200, the API gets all of it (the body goes upstream, not to verify)" \
    eval '[[ $STATUS == 200 && $(field method) == POST && $(field body_length) == 20480 ]]'

create_key "$GW_USER" '["read", "admin"]' || abort "create a key with scopes read, admin (status $STATUS)"
ADMIN_KEY=$KEY
req "$GW/admin/settings" -H "X-API-Key: $ADMIN_KEY"
check "admin key on /admin/ → 200, X-Api-Key-Scopes: read,admin" \
    eval '[[ $STATUS == 200 && $(field x_api_key_scopes) == "read,admin" ]]'
req "$GW/elsewhere" -H "X-API-Key: $ADMIN_KEY"
check "admin key on a path no location names → 200" eval '[[ $STATUS == 200 ]]'

create_key "Zoë" '["read"]' || abort "create a key for a non-ASCII user (status $STATUS)"
req "$GW/read/items" -H "X-API-Key: $KEY"
# Percent-encoded UTF-8; the hex digits' case may differ (Apache writes them in lower case).
check "a non-ASCII user id reaches the API percent-encoded (Zo%C3%AB, any case)" \
    eval '[[ $STATUS == 200 && $(field x_api_key_user | tr a-f A-F) == "Zo%C3%AB" &&
        $(field x_api_key_user | python3 -c "import sys, urllib.parse; print(urllib.parse.unquote(sys.stdin.read().strip()))") == "Zoë" ]]'

# ---- Kept-alive connections to api-keys (issue 30) ---------------------------------------------
# The gateway asks api-keys on every request, so it must keep its connections to api-keys open
# and reuse them, not open one per request (a TCP handshake each, a socket in TIME-WAIT each,
# ports running out under load). For Apache that is mod_proxy's pool from the TLS front to
# api-keys (mod_auth_openidc's own calls to that front are new TLS connections each time).
# api_keys_sockets: one line `PORT STATE` per TCP socket with api-keys' port at one end (not the
# listening one): the other end's port, which names the connection, and the kernel's state
# (01 is ESTABLISHED). /proc/net/tcp, so that no ss or netstat is needed.
api_keys_sockets() {
    python3 - "$HOST_PORT" <<'EOF'
import sys
port = int(sys.argv[1])
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        rows = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for row in rows:
        fields = row.split()
        local, remote, state = (int(fields[1].rsplit(":", 1)[1], 16),
                                int(fields[2].rsplit(":", 1)[1], 16), fields[3])
        if state == "0A":  # LISTEN
            continue
        if local == port:
            print(remote, state)
        elif remote == port:
            print(local, state)
EOF
}
# 30 requests one after the other, as 200, 403 and 401 (verify's three answers, each handled
# by its own part of a config), with the sockets sampled after each: a connection closed after
# its request stays visible (ESTABLISHED, then TIME-WAIT for a minute on the side that closed
# first). Connections the gateway already held are not counted: reusing them is the point.
# Allowed: one new connection per 5 requests (nginx and Caddy need at most one, Apache one per
# child process); and one must still be open half a second afterwards, idle for the next
# request (a connection closed just after its answer is gone, or in TIME-WAIT, by then).
api_keys_sockets | cut -d' ' -f1 | sort -u >"$WORK/sockets.before"
: >"$WORK/sockets.during"
answers=""
for _ in $(seq 10); do
    req "$GW/read/items" -H "X-API-Key: $READ_KEY"
    answers+="$STATUS "
    api_keys_sockets >>"$WORK/sockets.during"
    req "$GW/admin/settings" -H "X-API-Key: $READ_KEY"
    answers+="$STATUS "
    api_keys_sockets >>"$WORK/sockets.during"
    req "$GW/read/items" -H "X-API-Key: ${READ_KEY%?}$([[ $last == x ]] && echo y || echo x)"
    answers+="$STATUS "
    api_keys_sockets >>"$WORK/sockets.during"
done
sleep 0.5
api_keys_sockets >"$WORK/sockets.after"
new_connections=$(cat "$WORK/sockets.during" "$WORK/sockets.after" | cut -d' ' -f1 | sort -u |
    comm -13 "$WORK/sockets.before" - | wc -l)
# (Both ends of a connection are on this machine: one port, two sockets.)
still_open=$(grep ' 01$' "$WORK/sockets.after" | cut -d' ' -f1 | sort -u | wc -l)
name="30 requests (200, 403, 401) → at most 6 new connections to api-keys, one kept open for the next"
seen="$new_connections new, $still_open open after"
if [[ $answers == "$(printf '200 403 401 %.0s' $(seq 10))" && $new_connections -le 6 && $still_open -ge 1 ]]; then
    pass "$name ($seen)"
else
    fail "$name ($seen; answers: $answers)"
fi

token=$(make_jwt "$GW_USER")
req -X POST "$API/v1/keys.delete" -H "Authorization: Bearer $token" -d "{\"id\": \"$READ_ID\"}"
if [[ $STATUS == 200 ]]; then
    req "$GW/read/items" -H "X-API-Key: $READ_KEY"
    check "deleted key: the very next request → 401" eval '[[ $STATUS == 401 ]]'
else
    fail "delete the read key (status $STATUS)"
fi

# With api-keys gone, nothing gets through and the client is told to retry.
stop_pid "$HOST_PID"
HOST_PID=
upstream_requests=$(grep -c '"GET /admin/settings' "$WORK/upstream.log")
req "$GW/admin/settings" -H "X-API-Key: $ADMIN_KEY"
if [[ $GATEWAY == apache ]]; then
    # mod_auth_openidc takes a failed introspection for an invalid token (deploy/apache says so).
    check "api-keys down → 401 invalid_key (mod_auth_openidc cannot say 503), nothing reaches the API" \
        eval '[[ $STATUS == 401 && $(error_code) == invalid_key &&
            $(grep -c "\"GET /admin/settings" "$WORK/upstream.log") == "$upstream_requests" ]]'
else
    check "api-keys down → 503 auth_unavailable with Retry-After, nothing reaches the API" \
        eval '[[ $STATUS == 503 && $(error_code) == auth_unavailable && -n $(header Retry-After) &&
            $(grep -c "\"GET /admin/settings" "$WORK/upstream.log") == "$upstream_requests" ]]'
fi
# Over the whole run: every request the gateway let through reached, under all three of the
# API's readings of its raw path, only handlers its key's scopes cover (no read key ever ran
# an admin handler).
through=$(tail -n +"$((UP_BASE + 1))" "$UP_RECORD" | wc -l)
uncovered=$(tail -n +"$((UP_BASE + 1))" "$UP_RECORD" | python3 -c 'import json, sys
print(" ".join(r["path"] for r in map(json.loads, sys.stdin) if not r["scope_ok"]))')
check "all $through requests through the gateway reached only handlers their key covers${uncovered:+ (not: $uncovered)}" \
    eval '[[ $through -gt 0 && -z $uncovered ]]'

finish
