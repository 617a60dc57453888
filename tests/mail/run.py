"""What a mail client sees from the Postfix + Dovecot of deploy/mail, started by tests/mail/run.sh.

Every check opens its own SMTP session to Postfix's submission port and authenticates with a
key as the password, once with the fixed login `apikey` (Dovecot's `post` mode to
/v1/keys.introspect) and once with the key owner's user id (its `auth` mode to
/v1/keys.verify). Keys are made, disabled and deleted through the app's API like a user would.
Accepted messages must reach smtp-sink with no user id in them (the Received header included).
The envelope sender must be one the senders table (written by run.sh for this run) gives to the
key's owner: another user's address, an unlisted one or the null sender is 553 5.7.1. The
`smtp` service beside it (port 25's) must neither offer nor take AUTH.

Prints `PASS`/`FAIL` per check and `mail: N passed, M failed`; exits 1 if anything failed.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import pathlib
import secrets
import smtplib
import sys
import time
import urllib.error
import urllib.request

FIXED_LOGIN = "apikey"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", required=True, help="the app's base URL")
    parser.add_argument("--submission-port", type=int, required=True)
    parser.add_argument("--mx-port", type=int, required=True, help="the smtp service, as port 25 has it")
    parser.add_argument("--run", required=True, help="the suffix of the users and addresses in run.sh's senders table")
    parser.add_argument("--sink", required=True, help="smtp-sink's dump folder")
    parser.add_argument("--client-secret", required=True, help="the app's introspection_client_secret")
    return parser.parse_args()


ARGS = parse_args()
RESULTS = {"passed": 0, "failed": 0}


def check(name, condition, detail=""):
    if condition:
        RESULTS["passed"] += 1
        print(f"PASS  {name}")
    else:
        RESULTS["failed"] += 1
        print(f"FAIL  {name}{': ' + str(detail) if detail else ''}")


# ---- The app's API, as a signed-in user -------------------------------------------------------


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def token_for(user):
    """An HS256 token for `user`, signed with the secret the app was started with."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user, "exp": int(time.time()) + 3600}).encode())
    signature = b64(hmac.new(os.environ["JWT_SECRET"].encode(), header + b"." + claims, hashlib.sha256).digest())
    return (header + b"." + claims + b"." + signature).decode()


def api(method, path, user=None, body=None, form=None):
    headers = {}
    data = None
    if user is not None:
        headers["Authorization"] = f"Bearer {token_for(user)}"
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        data = form.encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(ARGS.app + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def create_key(user, name, scopes):
    status, body = api("POST", "/v1/keys.create", user, {"name": name, "scopes": scopes})
    if status != 201:
        raise SystemExit(f"creating a key for {user} answered {status}: {body}")
    return body


# ---- SMTP -------------------------------------------------------------------------------------


def session(port=None):
    client = smtplib.SMTP("127.0.0.1", port or ARGS.submission_port, timeout=60)
    client.ehlo("client.api-keys.test")
    return client


def auth(mechanism, login, password):
    """AUTH with `mechanism` on a fresh session: (reply code, the open session or None)."""
    client = session()
    client.user, client.password = login, password
    method = {"PLAIN": client.auth_plain, "LOGIN": client.auth_login}[mechanism]
    try:
        code, _ = client.auth(mechanism, method)
        return code, client
    except smtplib.SMTPAuthenticationError as error:
        client.quit()
        return error.smtp_code, None


def relayed(client, sender, subject):
    """Sends a message from `sender` with `subject` and waits for smtp-sink to have it; its text or None."""
    message = f"From: {sender}\r\nTo: rcpt@example.test\r\nSubject: {subject}\r\n\r\nhello\r\n"
    client.sendmail(sender, ["rcpt@example.test"], message)
    client.quit()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for dumped in pathlib.Path(ARGS.sink).glob("*"):
            text = dumped.read_text(errors="replace")
            if subject in text:
                return text
        time.sleep(0.2)
    return None


def sends_as(owner, mechanism, login, password, label, sender):
    code, client = auth(mechanism, login, password)
    check(f"{label}: AUTH {mechanism} as {login!r} is 235", code == 235, code)
    if client is None:
        return
    subject = f"api-keys mail test {secrets.token_hex(8)}"
    text = relayed(client, sender, subject)
    check(f"{label}: the message from {sender} reaches the sink", text is not None)
    # What every recipient reads: no user id, in upper or lower case (Postfix's `Authenticated
    # sender:` would bring it). The addresses of run.sh's table contain none.
    check(
        f"{label}: no user id in the relayed message (Received header included)",
        text is not None and owner.lower() not in text.lower() and "authenticated sender" not in text.lower(),
        text and text.split("\n\n", 1)[0],
    )


def sender_refused(owner, login, password, sender, label):
    """MAIL FROM `sender` after AUTH: refused as not the owner's (553 5.7.1, at RCPT TO, since
    Postfix judges the sender there by default), naming the SASL user, which must be the owner."""
    code, client = auth("PLAIN", login, password)
    if client is None:
        check(f"{label}: AUTH as {login!r} is 235", False, code)
        return
    mail_code, _ = client.mail(sender)
    code, reply = client.rcpt("rcpt@example.test")
    client.quit()
    reply = reply.decode(errors="replace")
    expected = f"<{sender}>: Sender address rejected: not owned by user {owner}" if sender else "<>: Sender address rejected"
    check(
        f"{label}: MAIL FROM:<{sender}> as {login!r} is 553 5.7.1",
        mail_code == 250 and code == 553 and reply.startswith("5.7.1 ") and expected in reply,
        (mail_code, code, reply),
    )


def refused(mechanism, login, password, label):
    code, client = auth(mechanism, login, password)
    if client is not None:
        client.quit()
    check(f"{label}: AUTH {mechanism} as {login!r} is 535", code == 535, code)


# ---- The checks -------------------------------------------------------------------------------

run = ARGS.run
# A user id with capitals: logins are compared exactly (auth_username_format = %u).
# The users and addresses of run.sh's senders table.
owner = f"Mail-User-{run}"
other = f"other-user-{run}"
owner_address = f"ann-{run}@example.test"
other_address = f"bob-{run}@example.test"
shared_address = f"team-{run}@example.test"
smtp_key = create_key(owner, "relay", ["smtp"])
key = smtp_key["key"]

for mechanism in ("PLAIN", "LOGIN"):
    sends_as(owner, mechanism, FIXED_LOGIN, key, "fixed login, introspection in post mode", owner_address)
    sends_as(owner, mechanism, owner, key, "owner's login, verify in auth mode", owner_address)

# The envelope sender: only the owner's addresses, whatever the login (the fixed login's SASL
# user is the owner too: Dovecot's pass_attrs user=%{oauth2:sub}).
other_key = create_key(other, "relay", ["smtp"])["key"]
for login, label in ((FIXED_LOGIN, "fixed login"), (owner, "owner's login")):
    sender_refused(owner, login, key, other_address, f"{label}, another user's address")
    sender_refused(owner, login, key, f"sender-{run}@example.test", f"{label}, an address not in the table")
sender_refused(owner, FIXED_LOGIN, key, "", "the null sender")
sends_as(owner, "PLAIN", FIXED_LOGIN, key, "an address listed for both users, the first", shared_address)
sends_as(other, "PLAIN", other, other_key, "an address listed for both users, the other", shared_address)
sender_refused(other, other, other_key, owner_address, "the other user, the first one's address")

# The smtp service (port 25's) has no SASL: no AUTH in its EHLO, and AUTH with a good key is 503.
client = session(ARGS.mx_port)
offered = client.has_extn("auth")
code, reply = client.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{FIXED_LOGIN}\0{key}".encode()).decode())
client.quit()
check("port 25's service does not offer AUTH", not offered, client.esmtp_features)
check("port 25's service refuses AUTH with a good key (503)", code == 503, (code, reply))

typo = key[:-1] + ("A" if key[-1] != "A" else "B")
for mechanism in ("PLAIN", "LOGIN"):
    refused(mechanism, FIXED_LOGIN, typo, "a mistyped key")
    refused(mechanism, owner, typo, "a mistyped key")

without_smtp = create_key(owner, "api only", ["write"])["key"]
refused("PLAIN", FIXED_LOGIN, without_smtp, "a key without the smtp scope")
refused("PLAIN", owner, without_smtp, "a key without the smtp scope")

refused("PLAIN", other, key, "another user's login with this key")
refused("PLAIN", owner, other_key, "this user's login with another user's key")
refused("PLAIN", owner.lower(), key, "the owner's login in other case")
refused("PLAIN", FIXED_LOGIN.upper(), key, "the fixed login in other case")
refused("PLAIN", "", key, "an empty login")

status, _ = api("POST", "/v1/keys.update", owner, {"id": smtp_key["id"], "enabled": False})
check("disabling the key answers 200", status == 200, status)
refused("PLAIN", FIXED_LOGIN, key, "a disabled key")
refused("PLAIN", owner, key, "a disabled key")
status, _ = api("POST", "/v1/keys.update", owner, {"id": smtp_key["id"], "enabled": True})
check("enabling it again answers 200", status == 200, status)
sends_as(owner, "PLAIN", FIXED_LOGIN, key, "the key enabled again", owner_address)

# Deleted: refused on the very next AUTH, with no cache in between.
status, _ = api("POST", "/v1/keys.delete", owner, {"id": smtp_key["id"]})
check("deleting the key answers 200", status == 200, status)
refused("PLAIN", FIXED_LOGIN, key, "a deleted key, the very next AUTH")
refused("LOGIN", owner, key, "a deleted key, the very next AUTH")

# No AUTH, no relay.
client = session()
client.mail("sender@example.test")
code, _ = client.rcpt("rcpt@example.test")
client.quit()
check("without AUTH Postfix refuses to relay (554)", code == 554, code)

# The introspection endpoint answers only callers that show the secret; Dovecot showed it above.
status, body = api("POST", "/v1/keys.introspect", form=f"token={other_key}")
check("introspection without the client secret is 401 invalid_client", (status, body) == (401, {"error": "invalid_client"}), (status, body))
status, body = api("POST", "/v1/keys.introspect", form=f"token={other_key}&client_secret={ARGS.client_secret}")
check("introspection with it answers", status == 200 and body.get("active") is True, (status, body))

print(f"mail: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
sys.exit(1 if RESULTS["failed"] else 0)
