#!/usr/bin/env bash
# Proves deploy/mail end to end: a real Postfix submission service whose SMTP AUTH goes through
# a real Dovecot (deploy/mail/dovecot/api-keys.conf) to the app's verify component — in Dovecot's
# `post` mode to /v1/keys.introspect (login `apikey`) and in its `auth` mode to /v1/keys.verify
# (login = the key owner's user id) — relaying to smtp-sink, with the envelope senders each user
# may use in a table (deploy/mail/postfix/api-keys-senders, filled here for this run's users),
# and beside it an `smtp` service as port 25 has it, without SASL. tests/mail/run.py then drives
# them with Python's smtplib (see there for the checks).
#
#   bash tests/mail/run.sh                                   # the local host
#   SPIN_BIN=../shared/tools/spin/spin bash tests/mail/run.sh  # real `spin up`
#
# Installs postfix and dovecot-core from Debian's packages if missing (needs root; their own
# services are kept from starting). Everything runs from a temporary folder on free loopback
# ports (never port 25, never the system's instances) and is stopped by pid at the end.
# Prints `mail: N passed, M failed`; exits non-zero if anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export ROOT
# shellcheck source=tests/lib/local-host.sh
. "$ROOT/tests/lib/local-host.sh"

started=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/api-keys-mail.XXXXXX")
# Postfix's and Dovecot's unprivileged processes must reach their files here.
chmod 755 "$WORK"
HOST_PID=
DOVECOT_PID=
SINK_PID=
POSTFIX_CONF=$WORK/postfix
postfix_pid() { cat "$WORK/postfix-queue/pid/master.pid" 2>/dev/null | tr -d ' '; }
cleanup() {
    stop_pid "$(postfix_pid)"
    stop_pid "$SINK_PID"
    stop_pid "$DOVECOT_PID"
    stop_pid "$HOST_PID"
    if [[ ${KEEP_WORK:-} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_logs() {
    for f in app/host.log dovecot.log postfix.log sink.log; do
        [[ -f $WORK/$f ]] && { echo "--- $f (last 30 lines)"; tail -n 30 "$WORK/$f"; }
    done
}
abort() {
    echo "FAIL  $*"
    show_logs
    echo "mail: 0 passed, 1 failed"
    exit 1
}

# ---- Packages ---------------------------------------------------------------------------------
if ! command -v dovecot >/dev/null || ! command -v postfix >/dev/null ||
    [[ ! -x /usr/sbin/smtp-sink ]]; then
    apt_install postfix dovecot-core || abort "postfix and dovecot-core install"
fi
log "using $(dovecot --version | cut -d' ' -f1) and Postfix $(postconf -d -h mail_version)"

# ---- The app: keys with the `smtp` scope, the introspection endpoint gated -------------------
APP_PORT=$(free_port)
AUTH_PORT=$(free_port)
SUBMISSION_PORT=$(free_port)
MX_PORT=$(free_port)
SINK_PORT=$(free_port)
CLIENT_SECRET=introspection-secret-$$-$RANDOM
export SPIN_VARIABLE_ALLOWED_SCOPES=read,write,admin,smtp
export SPIN_VARIABLE_INTROSPECTION_CLIENT_SECRET=$CLIENT_SECRET
mkdir -p "$WORK/app"
start_local_host "$WORK/app" "$APP_PORT" || abort "the app starts"

# ---- Dovecot: the committed files, their addresses and paths replaced ------------------------
mkdir -p "$WORK/dovecot" "$WORK/dovecot-run" "$WORK/dovecot-state"
for file in "$ROOT"/deploy/mail/dovecot/*; do
    sed -e "s#127\.0\.0\.1:3000#127.0.0.1:$APP_PORT#g" \
        -e "s#port = 12345#port = $AUTH_PORT#" \
        -e "s#/etc/dovecot/#$WORK/dovecot/#g" \
        -e "s#REPLACE-WITH-THE-APPS-INTROSPECTION-CLIENT-SECRET#$CLIENT_SECRET#" \
        "$file" >"$WORK/dovecot/$(basename "$file")"
done
grep -q "port = $AUTH_PORT" "$WORK/dovecot/api-keys.conf" || abort "templating put the auth port in api-keys.conf"
cat >"$WORK/dovecot/dovecot.conf" <<EOF
# A private Dovecot that serves only Postfix's SASL, from this folder.
base_dir = $WORK/dovecot-run
state_dir = $WORK/dovecot-state
log_path = $WORK/dovecot.log
instance_name = api-keys-mail-test
protocols =
listen = 127.0.0.1
ssl = no
auth_verbose = yes
!include api-keys.conf
EOF
dovecot -F -c "$WORK/dovecot/dovecot.conf" </dev/null >>"$WORK/dovecot.log" 2>&1 &
DOVECOT_PID=$!

# ---- The sink Postfix relays to: every message it takes becomes a file in sink/ -------------
mkdir -p "$WORK/sink"
chown postfix "$WORK/sink"
/usr/sbin/smtp-sink -u postfix -d "$WORK/sink/%M." "127.0.0.1:$SINK_PORT" 10 </dev/null \
    >"$WORK/sink.log" 2>&1 &
SINK_PID=$!

# ---- Postfix: a private instance with the committed master.cf lines --------------------------
mkdir -p "$POSTFIX_CONF" "$WORK/postfix-queue" "$WORK/postfix-data"
chown postfix "$WORK/postfix-data"
# The committed senders table (only comments) with this run's users: run.py makes the keys of
# Mail-User-$RUN and other-user-$RUN and sends as these addresses. No address contains a user
# id, so that a user id found in a relayed message can only have come from Postfix.
RUN=$(python3 -c 'import secrets; print(secrets.token_hex(4))')
{
    cat "$ROOT/deploy/mail/postfix/api-keys-senders"
    echo "ann-$RUN@example.test    Mail-User-$RUN"
    echo "bob-$RUN@example.test    other-user-$RUN"
    echo "team-$RUN@example.test   Mail-User-$RUN, other-user-$RUN"
} >"$POSTFIX_CONF/api-keys-senders"
# main.cf gets nothing from deploy/mail: every SASL setting is in the submission service.
cat >"$POSTFIX_CONF/main.cf" <<EOF
# A private Postfix on loopback, from this folder; it relays everything to smtp-sink.
compatibility_level = 3.6
queue_directory = $WORK/postfix-queue
data_directory = $WORK/postfix-data
maillog_file = $WORK/postfix.log
maillog_file_prefixes = $WORK
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.api-keys.test
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
alias_maps =
alias_database =
local_recipient_maps =
smtpd_tls_security_level = none
smtp_tls_security_level = none
EOF
{
    # Only the services a relay needs, none chrooted (the queue is this folder).
    cat <<'EOF'
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
showq     unix  n - n - - showq
EOF
    # Port 25's service as Debian's master.cf has it (not chrooted here): main.cf alone.
    echo "127.0.0.1:$MX_PORT inet n - n - - smtpd"
    sed -e "s#^submission inet#127.0.0.1:$SUBMISSION_PORT inet#" \
        -e "s#inet:127\.0\.0\.1:12345#inet:127.0.0.1:$AUTH_PORT#" \
        -e "s#/etc/postfix/api-keys-senders#$POSTFIX_CONF/api-keys-senders#" \
        "$ROOT/deploy/mail/postfix/master.cf.api-keys"
} >"$POSTFIX_CONF/master.cf"
grep -q "^127.0.0.1:$SUBMISSION_PORT inet" "$POSTFIX_CONF/master.cf" ||
    abort "templating put the submission port in master.cf"
grep -q "smtpd_sasl_path=inet:127.0.0.1:$AUTH_PORT" "$POSTFIX_CONF/master.cf" ||
    abort "templating put Dovecot's auth port in master.cf"
grep -q "texthash:$POSTFIX_CONF/api-keys-senders" "$POSTFIX_CONF/master.cf" ||
    abort "templating put the senders table's path in master.cf"
# `postfix` logs a failed start only to syslog, which this machine may not have; keep its words.
postfix -c "$POSTFIX_CONF" check >>"$WORK/postfix.log" 2>&1 || abort "postfix check accepts the configuration"
postfix -c "$POSTFIX_CONF" start >>"$WORK/postfix.log" 2>&1 || abort "postfix starts"

wait_for_port() {
    local port=$1 deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && return 0
        sleep 0.3
    done
    return 1
}
wait_for_port "$AUTH_PORT" || abort "Dovecot listens for Postfix's SASL on $AUTH_PORT"
wait_for_port "$SINK_PORT" || abort "smtp-sink listens on $SINK_PORT"
wait_for_port "$SUBMISSION_PORT" || abort "Postfix's submission service listens on $SUBMISSION_PORT"
wait_for_port "$MX_PORT" || abort "Postfix's smtp service listens on $MX_PORT"
log "Dovecot (pid $DOVECOT_PID), Postfix (pid $(postfix_pid)), smtp-sink (pid $SINK_PID) up"

python3 "$ROOT/tests/mail/run.py" \
    --app "http://127.0.0.1:$APP_PORT" \
    --submission-port "$SUBMISSION_PORT" \
    --mx-port "$MX_PORT" \
    --run "$RUN" \
    --sink "$WORK/sink" \
    --client-secret "$CLIENT_SECRET"
status=$?
((status == 0)) || show_logs
log "took $((SECONDS - started))s"
exit "$status"
