#!/usr/bin/env python3
"""Many clients, two management instances and one verify instance on one Redis, with the store
paused, restarted, down for seconds and an instance killed while they work, and an orchestrator
that restarts an instance whose health check fails; then the product's promises checked from
the outside, from nothing but the requests' timings and answers.

    python3 tests/chaos/run.py --seconds 60 [--seed N] [--clients 8] [--users 12]
    SPIN_BIN=../shared/tools/spin/spin python3 tests/chaos/run.py      # on real `spin up`

Python 3's standard library only. Starts a private redis-server (append-only file, fsync
always) on a free loopback port in a temporary directory, three instances of the app on the
local host (SPIN_HOST_BIN, default target/debug/spin-host) or on real Spin (SPIN_BIN), and
stops every process it started, by its id, at the end, also on failure or a signal.

An orchestrator probes each instance's health route (/healthz/verify, /healthz/management) as
Kubernetes' liveness probe would (every PROBE_PERIOD s, PROBE_TIMEOUT s each) and restarts an
instance after PROBE_FAILURES failures in a row: on real Spin, a Redis outage longer than ~2 s
leaves every instance silent for about two minutes unless it is restarted (deploy/README.md).

Every request is recorded (monotonic start and end, instance, status and body, or "no answer");
after the run the store settles (no chaos, past the protocol's abandonment time), one list and
one events per user repair what failed requests left, and the checks below read the record.
The record is kept in target/chaos/<runtime>-ops.jsonl. Prints `chaos: N operations, M
violations`; exits 1 on any violation, 2 if the run itself could not be made.
"""

import argparse
import base64
import calendar
import collections
import hashlib
import hmac
import http.client
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCOPES = ["read", "write", "admin"]
MANAGEMENT = ["create", "list", "update", "roll", "delete", "events"]
COMPONENTS = MANAGEMENT + ["verify", "console"]
T0 = time.monotonic()
WALL0 = time.time()

# What a request answered when it answered nothing: the connection broke or timed out.
NO_ANSWER = None


def now():
    """Seconds since the run began, on the monotonic clock every timing here uses."""
    return time.monotonic() - T0


def wall(t):
    """The wall-clock time (Unix seconds) of monotonic run time `t`: the servers' clock."""
    return WALL0 + t


def log(message):
    print(f"[{now():7.2f}] {message}", file=sys.stderr, flush=True)


def protocol_constant(name, default):
    """A constant of shared/src/protocol/mod.rs, so that the checks follow the code."""
    try:
        with open(os.path.join(ROOT, "shared/src/protocol/mod.rs"), encoding="utf-8") as f:
            found = re.search(rf"pub const {name}: \w+ = (\d+);", f.read())
        return int(found.group(1)) if found else default
    except OSError:
        return default


ABANDONED_AFTER_SECS = protocol_constant("ABANDONED_AFTER_SECS", 30)
MAX_EVENTS = protocol_constant("MAX_EVENTS", 100)
MAX_PREVIOUS_SECRETS = protocol_constant("MAX_PREVIOUS_SECRETS", 3)


# ---- Processes ---------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """One process this run started, in a session of its own so that a signal reaches its
    children too (`spin up` runs the HTTP trigger as a child), and only them."""

    def __init__(self, name, argv, cwd, env, log_path):
        self.name, self.argv, self.cwd, self.env, self.log_path = name, argv, cwd, env, log_path
        self.popen = None

    def start(self):
        logfile = open(self.log_path, "ab")
        try:
            self.popen = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            logfile.close()

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig):
        """Sends `sig` to the process group this process leads (its id is the group's)."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace=10.0):
        """SIGCONT (it may be stopped), SIGTERM, then SIGKILL after `grace` seconds."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # The group may outlive its leader (a trigger child): SIGKILL whatever is left of it.
        self.signal(signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {self.popen.pid}) did not exit")

    def kill(self):
        self.signal(signal.SIGKILL)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {self.popen.pid}) survived SIGKILL for 10 s")

    def tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
        except OSError:
            return ""


def resp_command(port, *args, timeout=5.0):
    """Sends one command to Redis in RESP and answers its first reply line (no redis-cli)."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = str(arg).encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode("utf-8", "replace").strip()


class Redis:
    """A private redis-server on a loopback port, persisting to its own directory, so that a
    restart on the same port and directory keeps every key."""

    def __init__(self, work):
        self.port = free_port()
        self.dir = os.path.join(work, "redis")
        os.makedirs(self.dir)
        self.server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        argv = [self.server, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--daemonize", "no", "--protected-mode", "yes"]
        self.process = Process("redis-server", argv, self.dir, dict(os.environ),
                               os.path.join(self.dir, "redis.log"))
        self.process.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if resp_command(self.port, "PING", timeout=1) == "+PONG":
                    return
            except OSError:
                pass
            if not self.process.alive():
                break
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not start; its log:\n{self.process.tail()}")

    def runtime_config(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(f'[key_value_store.default]\ntype = "redis"\nurl = "redis://127.0.0.1:{self.port}"\n')
        return path


class Runtime:
    """How an instance of the app is started: the local host (default) or real `spin up`."""

    def __init__(self):
        self.spin = os.environ.get("SPIN_BIN", "")
        if self.spin:
            self.name = "spin"
            self.binary = os.path.abspath(self.spin)
        else:
            self.name = "local"
            binary = os.environ.get("SPIN_HOST_BIN", "target/debug/spin-host")
            self.binary = binary if os.path.isabs(binary) else os.path.join(ROOT, binary)

    def describe(self):
        if self.name == "spin":
            try:
                version = subprocess.run([self.binary, "--version"], capture_output=True,
                                         text=True, timeout=60).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                version = "?"
            return f"real Spin ({version}) at {self.binary}"
        return f"the local host at {self.binary}"

    def ensure_artifacts(self, build):
        """The host (local runtime) and the components must exist; builds what is missing."""
        if self.name == "local" and not os.access(self.binary, os.X_OK):
            if self.binary == os.path.join(ROOT, "target/debug/spin-host") and build:
                log("building the local host (cargo build -p spin-host)")
                subprocess.run(["cargo", "build", "-p", "spin-host"], cwd=ROOT, check=True)
            else:
                raise RuntimeError(f"SPIN_HOST_BIN={self.binary} is not an executable")
        if self.name == "spin" and not os.access(self.binary, os.X_OK):
            raise RuntimeError(f"SPIN_BIN={self.binary} is not an executable")
        missing = [c for c in COMPONENTS
                   if not os.path.isfile(os.path.join(ROOT, f"target/wasm32-wasip2/wasm/{c}.wasm"))]
        if missing:
            if not build:
                raise RuntimeError(f"components not built: {' '.join(missing)}")
            log(f"building the components ({' '.join(missing)} missing)")
            argv = ["cargo", "build", "--profile", "wasm", "--target", "wasm32-wasip2"]
            for c in COMPONENTS:
                argv += ["-p", c]
            subprocess.run(argv, cwd=ROOT, check=True)

    def argv(self, manifest, runtime_config, port, components, state_dir):
        listen = f"127.0.0.1:{port}"
        # The instance memory limit of every suite (tests/lib/local-host.sh), on both runtimes.
        chosen = ["--max-instance-memory", os.environ.get("INSTANCE_MEMORY_LIMIT", "2097152")]
        for c in components:
            chosen += ["-c", c]
        if self.name == "spin":
            return [self.binary, "up", "-f", manifest, "--runtime-config-file", runtime_config,
                    "--listen", listen, "--state-dir", state_dir] + chosen
        return [self.binary, "up", "--no-build", "--runtime-config-file", runtime_config,
                "--listen", listen, "--manifest", manifest] + chosen


def copy_manifest(work):
    """spin.toml with its components' relative `source` paths made absolute, so that it runs
    from the work directory, as tests/lib/local-host.sh's start_local_host does."""
    with open(os.path.join(ROOT, "spin.toml"), encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r'^source = "([^/"][^"]*)"', lambda m: f'source = "{ROOT}/{m.group(1)}"',
                  text, flags=re.M)
    path = os.path.join(work, "spin.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class Instance:
    """One instance of the app serving some of its components on its own port."""

    def __init__(self, name, components, runtime, manifest, runtime_config, work, env):
        self.name, self.components, self.runtime = name, components, runtime
        self.manifest, self.runtime_config, self.env = manifest, runtime_config, env
        self.port = free_port()
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.process = None
        # Which path answers (with 401) once the instance serves, without the store.
        self.probe = "/v1/keys.verify" if components == ["verify"] else "/v1/keys.list"
        # The tier's health route (spin.toml): one store read.
        self.health = "/healthz/verify" if "verify" in components else "/healthz/management"
        # Held by whoever restarts the instance (the chaos' kill, the orchestrator), so that
        # two never restart it at once; `generation` counts its starts.
        self.lock = threading.Lock()
        self.generation = 0

    def start(self, timeout=300):
        argv = self.runtime.argv(self.manifest, self.runtime_config, self.port, self.components,
                                 os.path.join(self.dir, "state"))
        self.process = Process(self.name, argv, self.dir, self.env,
                               os.path.join(self.dir, "host.log"))
        self.generation += 1
        self.process.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", self.probe)
                conn.getresponse().read()
                conn.close()
                return
            except (OSError, http.client.HTTPException):
                pass
            if not self.process.alive():
                break
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not come up; its log:\n{self.process.tail(40)}")


# ---- Requests ----------------------------------------------------------------------------------


def make_jwt(secret, sub, lifetime=7200):
    b64 = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=")
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": sub, "exp": int(time.time()) + lifetime}).encode())
    signature = b64(hmac.new(secret.encode(), header + b"." + claims, hashlib.sha256).digest())
    return (header + b"." + claims + b"." + signature).decode()


def rfc3339_seconds(text):
    """Unix seconds of an RFC 3339 UTC time as the API writes it (`2026-12-02T17:01:58Z`)."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


class Recorder:
    """Every request of the run, in the order they were sent."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = []
        self.chaos = []
        # The orchestrator's health probes, and the restarts it made.
        self.probes = []
        self.restarts = []

    def add(self, op):
        with self.lock:
            op["seq"] = len(self.ops)
            self.ops.append(op)
        return op

    def chaos_event(self, what, t0, t1, kind=None, inst=None):
        """`kind`: which fault (`sigstop`, `client_pause`, `restart`, `outage`, `kill`); `inst`:
        the instance a kill restarted."""
        with self.lock:
            self.chaos.append({"what": what, "t0": t0, "t1": t1, "kind": kind, "inst": inst})
        log(f"chaos: {what} ({t1 - t0:.1f} s)")

    def probe(self, result):
        with self.lock:
            self.probes.append(result)

    def restart(self, event):
        with self.lock:
            self.restarts.append(event)
        log(f"orchestrator: {event['inst']} restarted after {event['failures']} failed health "
            f"checks ({event['t1'] - event['t0']:.1f} s to serve again)")


class Knowledge:
    """What the clients know of the users' keys, to pick targets: ids, secrets, previews."""

    def __init__(self, users):
        self.lock = threading.Lock()
        self.keys = {user: {} for user in users}
        self.secret_of = {}

    def key(self, user, key_id):
        return self.keys[user].setdefault(key_id, {"id": key_id, "secrets": [], "deleting": False})

    def add_secret(self, user, key_id, secret, preview, issued_by):
        with self.lock:
            self.key(user, key_id)["secrets"].append(secret)
            self.secret_of[secret] = {"user": user, "key": key_id, "preview": preview,
                                      "issued_by": issued_by}

    def saw_ids(self, user, ids):
        with self.lock:
            for key_id in ids:
                self.key(user, key_id)

    def deleting(self, user, key_id):
        with self.lock:
            self.key(user, key_id)["deleting"] = True

    def pick(self, rng, user, live_bias=0.9, with_secrets=False):
        """A key of `user`'s: mostly one with no delete sent yet (with a secret known, if
        `with_secrets`). None if none is known."""
        with self.lock:
            keys = [k for k in self.keys[user].values() if k["secrets"] or not with_secrets]
            live = [k for k in keys if not k["deleting"]]
            pool = live if live and rng.random() < live_bias else keys
            if not pool:
                return None
            chosen = rng.choice(pool)
            return {"id": chosen["id"], "secrets": list(chosen["secrets"])}


class Api:
    """The HTTP calls of the contract, each recorded with its timing and full outcome."""

    def __init__(self, recorder, knowledge, tokens, timeout):
        self.recorder, self.knowledge, self.tokens, self.timeout = recorder, knowledge, tokens, timeout

    def call(self, kind, instance, method, path, *, user=None, body=None, headers=None,
             phase="run", client=None, **params):
        sent = {"Connection": "close"}
        if user is not None and kind != "verify":
            sent["Authorization"] = f"Bearer {self.tokens[user]}"
        sent.update(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        status, text, error = NO_ANSWER, "", None
        t0 = now()
        conn = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            status = response.status
        except (OSError, http.client.HTTPException) as e:
            error = f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        t1 = now()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text[:500]
        op = {"kind": kind, "phase": phase, "client": client, "user": user,
              "inst": instance.name, "t0": round(t0, 4), "t1": round(t1, 4), "status": status,
              "body": parsed, "error": error}
        op.update(params)
        return self.recorder.add(op)

    # The operations. `inst` is the instance to ask; each returns the recorded op.

    def create(self, inst, user, name, scopes, **kw):
        op = self.call("create", inst, "POST", "/v1/keys.create", user=user,
                       body={"name": name, "scopes": scopes}, scopes=scopes, name=name, **kw)
        if op["status"] == 201 and isinstance(op["body"], dict):
            b = op["body"]
            op["key_id"] = b.get("id")
            self.knowledge.add_secret(user, b.get("id"), b.get("key"), b.get("preview"), op["seq"])
            op["secret"] = b.get("key")
        return op

    def list(self, inst, user, **kw):
        op = self.call("list", inst, "GET", "/v1/keys.list", user=user, **kw)
        if op["status"] == 200 and isinstance(op["body"], dict):
            self.knowledge.saw_ids(user, [k.get("id") for k in op["body"].get("keys", [])])
        return op

    def events(self, inst, user, **kw):
        return self.call("events", inst, "GET", "/v1/keys.events", user=user, **kw)

    def update(self, inst, user, key_id, fields, **kw):
        body = dict(fields, id=key_id)
        return self.call("update", inst, "POST", "/v1/keys.update", user=user, body=body,
                         key_id=key_id, fields=fields, **kw)

    def roll(self, inst, user, key_id, grace, **kw):
        op = self.call("roll", inst, "POST", "/v1/keys.roll", user=user,
                       body={"id": key_id, "grace_seconds": grace}, key_id=key_id, grace=grace, **kw)
        if op["status"] == 201 and isinstance(op["body"], dict):
            b = op["body"]
            self.knowledge.add_secret(user, key_id, b.get("key"), b.get("preview"), op["seq"])
            op["secret"] = b.get("key")
        return op

    def delete(self, inst, user, key_id, **kw):
        self.knowledge.deleting(user, key_id)
        return self.call("delete", inst, "POST", "/v1/keys.delete", user=user,
                         body={"id": key_id}, key_id=key_id, **kw)

    def verify(self, inst, user, key_id, secret, scopes, style="header", **kw):
        """Verify `secret` requiring every scope in `scopes`: forward-auth style (the key in
        X-API-Key or Authorization, scopes in `?scope=`), or in a JSON body (one scope)."""
        path, headers, body = "/v1/keys.verify", {}, None
        if style == "body" and len(scopes) <= 1:
            body = {"key": secret}
            if scopes:
                body["scope"] = scopes[0]
        else:
            if scopes:
                path += "?" + urllib.parse.urlencode([("scope", s) for s in scopes])
            if style == "bearer":
                headers["Authorization"] = f"Bearer {secret}"
            else:
                headers["X-API-Key"] = secret
        return self.call("verify", inst, "POST", path, user=user, body=body, headers=headers,
                         key_id=key_id, secret=secret, scopes_required=list(scopes),
                         style=style, **kw)


# ---- Workload ----------------------------------------------------------------------------------

WEIGHTS = [("verify", 32), ("create", 14), ("update", 14), ("roll", 12), ("list", 8),
           ("delete", 8), ("events", 4), ("race", 8)]
GRACES = [0, 0, 0, 2, 4]


class Client(threading.Thread):
    """One client: picks a user of the shared pool, an operation and a management instance at
    random, again and again until told to stop. Verifies go to the verify instance."""

    def __init__(self, number, run):
        super().__init__(name=f"client-{number}", daemon=True)
        self.number, self.run_ = number, run
        self.rng = random.Random(run.seed * 1000 + number)
        self.errors = 0

    def management(self):
        return self.rng.choice(self.run_.management)

    def run(self):
        kinds, weights = zip(*WEIGHTS)
        while not self.run_.stop.is_set():
            user = self.rng.choice(self.run_.users)
            kind = self.rng.choices(kinds, weights)[0]
            try:
                ops = getattr(self, "do_" + kind)(user)
            except Exception as e:  # a bug here must not end the run silently
                self.errors += 1
                log(f"{self.name}: {kind} raised {type(e).__name__}: {e}")
                ops = []
            # A request refused at connect (an instance restarting) is retried a little later.
            if any(op["status"] is NO_ANSWER for op in ops):
                time.sleep(0.2)

    def scopes(self):
        chosen = [s for s in SCOPES if self.rng.random() < 0.5]
        return chosen or [self.rng.choice(SCOPES)]

    def required(self):
        r = self.rng.random()
        if r < 0.4:
            return []
        if r < 0.9:
            return [self.rng.choice(SCOPES)]
        return self.rng.sample(SCOPES, 2)

    def style(self):
        return self.rng.choices(["header", "bearer", "body"], [5, 2, 3])[0]

    def api(self):
        return self.run_.api

    def verify_now(self, user, key_id, secret, scopes, after):
        return self.api().verify(self.run_.verifier, user, key_id, secret, scopes,
                                 style=self.style(), client=self.number, after=after)

    def do_create(self, user):
        op = self.api().create(self.management(), user, f"k{self.rng.randrange(1000)}",
                               self.scopes(), client=self.number)
        ops = [op]
        if op["status"] == 201 and op.get("secret"):
            ops.append(self.verify_now(user, op["key_id"], op["secret"], [], op["seq"]))
        return ops

    def do_list(self, user):
        return [self.api().list(self.management(), user, client=self.number)]

    def do_events(self, user):
        return [self.api().events(self.management(), user, client=self.number)]

    def do_verify(self, user):
        key = self.run_.knowledge.pick(self.rng, user, live_bias=0.8, with_secrets=True)
        if key is None:
            return self.do_create(user)
        secrets_ = key["secrets"]
        secret = secrets_[-1] if self.rng.random() < 0.7 else self.rng.choice(secrets_)
        return [self.api().verify(self.run_.verifier, user, key["id"], secret, self.required(),
                                  style=self.style(), client=self.number)]

    def update_fields(self):
        r = self.rng.random()
        if r < 0.35:
            return {"enabled": self.rng.random() < 0.5}
        if r < 0.7:
            return {"scopes": self.scopes()}
        if r < 0.85:
            return {"name": f"renamed{self.rng.randrange(1000)}"}
        return {"enabled": self.rng.random() < 0.6, "scopes": self.scopes()}

    def do_update(self, user):
        key = self.run_.knowledge.pick(self.rng, user)
        if key is None:
            return self.do_create(user)
        fields = self.update_fields()
        op = self.api().update(self.management(), user, key["id"], fields, client=self.number)
        ops = [op]
        if op["status"] == 200 and key["secrets"]:
            # At once: a right taken away must already be gone.
            dropped = [s for s in SCOPES if "scopes" in fields and s not in fields["scopes"]]
            scopes = [self.rng.choice(dropped)] if dropped else []
            ops.append(self.verify_now(user, key["id"], key["secrets"][-1], scopes, op["seq"]))
        return ops

    def roll(self, user, key_id, instance, grace):
        op = self.api().roll(instance, user, key_id, grace, client=self.number)
        ops = [op]
        if op["status"] == 201 and op.get("secret"):
            ops.append(self.verify_now(user, key_id, op["secret"], [], op["seq"]))
        return ops

    def do_roll(self, user):
        key = self.run_.knowledge.pick(self.rng, user)
        if key is None:
            return self.do_create(user)
        return self.roll(user, key["id"], self.management(), self.rng.choice(GRACES))

    def do_delete(self, user):
        key = self.run_.knowledge.pick(self.rng, user)
        if key is None:
            return self.do_create(user)
        op = self.api().delete(self.management(), user, key["id"], client=self.number)
        ops = [op]
        if op["status"] == 200 and key["secrets"]:
            ops.append(self.verify_now(user, key["id"], self.rng.choice(key["secrets"]), [],
                                       op["seq"]))
        return ops

    def do_race(self, user):
        """Two or three requests on one key at the same moment, on both management instances:
        mostly rolls (each with its own grace), sometimes a roll against an update or delete."""
        key = self.run_.knowledge.pick(self.rng, user)
        if key is None:
            return self.do_create(user)
        burst = f"{self.number}-{self.rng.randrange(1 << 30)}"
        n = self.rng.choice([2, 3, 3])
        plans = []
        for i in range(n):
            inst = self.run_.management[i % len(self.run_.management)]
            r = self.rng.random()
            if i == 0 or r < 0.7:
                plans.append(("roll", inst, self.rng.choice(GRACES)))
            elif r < 0.9:
                plans.append(("update", inst, self.update_fields()))
            else:
                plans.append(("delete", inst, None))
        barrier = threading.Barrier(n)
        results = [[] for _ in range(n)]

        def go(i, plan):
            what, inst, arg = plan
            try:
                barrier.wait(5)
            except threading.BrokenBarrierError:
                pass
            if what == "roll":
                op = self.api().roll(inst, user, key["id"], arg, client=self.number, burst=burst)
                results[i].append(op)
                if op["status"] == 201 and op.get("secret"):
                    results[i].append(self.verify_now(user, key["id"], op["secret"], [], op["seq"]))
            elif what == "update":
                results[i].append(self.api().update(inst, user, key["id"], arg,
                                                    client=self.number, burst=burst))
            else:
                results[i].append(self.api().delete(inst, user, key["id"], client=self.number,
                                                    burst=burst))

        threads = [threading.Thread(target=go, args=(i, p), daemon=True) for i, p in enumerate(plans)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [op for ops in results for op in ops]


# ---- Chaos -------------------------------------------------------------------------------------


class Chaos(threading.Thread):
    """Pauses Redis (SIGSTOP/SIGCONT, then CLIENT PAUSE), restarts it, kills it and starts it
    again seconds later (an outage), and kills a management instance with SIGKILL and starts it
    again, each once, at seeded moments of the run."""

    def __init__(self, run, args):
        super().__init__(name="chaos", daemon=True)
        self.run_, self.args = run, args
        rng = random.Random(run.seed * 7919)
        d = args.seconds
        plan = []
        if args.pause:
            plan.append((d * rng.uniform(0.08, 0.15), "sigstop"))
            plan.append((d * rng.uniform(0.22, 0.30), "client_pause"))
        if args.restart:
            plan.append((d * rng.uniform(0.36, 0.44), "restart"))
        if args.outage:
            plan.append((d * rng.uniform(0.52, 0.60), "outage"))
        if args.kill:
            plan.append((d * rng.uniform(0.70, 0.78), "kill"))
        self.plan = sorted(plan)
        self.victim = rng.randrange(len(run.management))
        self.failure = None

    def run(self):
        try:
            for at, what in self.plan:
                while now() - self.run_.started < at:
                    if self.run_.stop.wait(0.1):
                        return
                getattr(self, what)()
        except Exception as e:
            self.failure = e
            log(f"chaos failed: {type(e).__name__}: {e}")

    def sigstop(self):
        redis, t0 = self.run_.redis, now()
        redis.process.signal(signal.SIGSTOP)
        try:
            time.sleep(self.args.pause_seconds)
        finally:
            redis.process.signal(signal.SIGCONT)
        self.run_.recorder.chaos_event(f"redis SIGSTOP for {self.args.pause_seconds} s", t0, now(),
                                       kind="sigstop")

    def client_pause(self):
        t0 = now()
        millis = int(self.args.pause_seconds * 1000)
        answer = resp_command(self.run_.redis.port, "CLIENT", "PAUSE", millis, "ALL")
        time.sleep(self.args.pause_seconds)
        self.run_.recorder.chaos_event(f"redis CLIENT PAUSE {millis} ALL ({answer})", t0, now(),
                                       kind="client_pause")

    def restart(self):
        redis, t0 = self.run_.redis, now()
        redis.process.stop()
        down = now()
        redis.start()
        self.run_.recorder.chaos_event(
            f"redis restarted (SIGTERM, down {now() - down:.1f} s, same port and dir)", t0, now(),
            kind="restart")

    def outage(self):
        """Redis killed (SIGKILL: a crash; the append-only file keeps every acknowledged write),
        left down `--outage-seconds`, started again on the same port and directory. Longer than
        ~2 s, this is what leaves real Spin's instances silent for two minutes."""
        redis, t0 = self.run_.redis, now()
        redis.process.kill()
        time.sleep(self.args.outage_seconds)
        redis.start()
        self.run_.recorder.chaos_event(
            f"redis SIGKILLed, down {self.args.outage_seconds} s, started again", t0, now(),
            kind="outage")

    def kill(self):
        inst = self.run_.management[self.victim]
        with inst.lock:
            t0 = now()
            inst.process.kill()
            time.sleep(1.0)
            inst.start()
        self.run_.recorder.chaos_event(f"{inst.name} SIGKILLed and started again", t0, now(),
                                       kind="kill", inst=inst.name)


# ---- Orchestrator ------------------------------------------------------------------------------

# The liveness probe deploy/README.md recommends, at the short end: a probe every PROBE_PERIOD
# seconds (start to start, as the kubelet's ticker), each given PROBE_TIMEOUT seconds, and a
# restart after PROBE_FAILURES failures in a row (no answer in time, or not 200). A Redis outage
# of a few seconds answered with quick 503s (the local host) fails at most two probes so; a
# Spin instance that hangs fails three within about six seconds.
PROBE_PERIOD = 2.0
PROBE_TIMEOUT = 2.0
PROBE_FAILURES = 3
# Within how long after Redis is back every instance must answer its health check with 200
# (detection, restart and start-up included), and after a restart the restarted one.
RECOVERY_BOUND = 20.0
RESTARTED_BOUND = 10.0


class Orchestrator:
    """Probes every instance's health route, one thread each (a hung probe must not delay the
    others' probes), and restarts an instance as Kubernetes would after PROBE_FAILURES failed
    probes in a row: SIGKILL, then started again on the same port. With `restart` false it only
    probes (`--no-orchestrator`: what happens without one)."""

    def __init__(self, run, restart):
        self.run_, self.restart_ = run, restart
        self.stop = threading.Event()
        self.threads = []

    def start(self):
        for inst in self.run_.management + [self.run_.verifier]:
            t = threading.Thread(target=self.watch, args=(inst,), name=f"probe-{inst.name}",
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(PROBE_TIMEOUT + 60)

    def watch(self, inst):
        failures, generation, next_at = 0, inst.generation, now()
        while not self.stop.wait(max(0.0, next_at - now())):
            next_at = max(next_at + PROBE_PERIOD, now())
            if inst.lock.locked():
                # Someone is restarting it: no verdict on a process that is not up yet.
                failures = 0
                continue
            if inst.generation != generation:
                failures, generation = 0, inst.generation
            t0 = now()
            status = probe_status(inst, PROBE_TIMEOUT)
            self.run_.recorder.probe({"inst": inst.name, "t0": round(t0, 4),
                                      "t1": round(now(), 4), "status": status,
                                      "generation": generation})
            if inst.generation != generation or inst.lock.locked():
                continue
            failures = 0 if status == 200 else failures + 1
            if failures >= PROBE_FAILURES and self.restart_:
                try:
                    self.restart(inst, failures, generation)
                except (RuntimeError, OSError) as e:
                    # Probing goes on: the next failures try again, as the kubelet would.
                    log(f"orchestrator: restarting {inst.name} failed: {e}")
                failures, generation, next_at = 0, inst.generation, now()

    def restart(self, inst, failures, generation):
        with inst.lock:
            if inst.generation != generation:
                return
            t0 = now()
            inst.process.kill()
            inst.start()
            self.run_.recorder.restart({"inst": inst.name, "t0": round(t0, 4),
                                        "t1": round(now(), 4), "failures": failures})


def probe_status(inst, timeout):
    """The status of one GET of the instance's health route, or None if none came in time."""
    conn = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=timeout)
    try:
        conn.request("GET", inst.health, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return NO_ANSWER
    finally:
        conn.close()


# ---- The run -----------------------------------------------------------------------------------


class Run:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.users = [f"chaos-{self.seed}-u{i}@example.com" for i in range(args.users)]
        self.recorder = Recorder()
        self.knowledge = Knowledge(self.users)
        self.stop = threading.Event()
        self.started = 0.0
        self.processes = []
        self.redis = None
        self.management = []
        self.verifier = None
        self.orchestrator = None

    def processes_started(self):
        found = [self.redis.process] if self.redis and self.redis.process else []
        for inst in self.management + [self.verifier]:
            if inst is not None and inst.process is not None:
                found.append(inst.process)
        return found

    def shutdown(self):
        """The orchestrator first (it must not start what is being stopped), then the rest."""
        if self.orchestrator is not None:
            self.orchestrator.join()
        self.stop_all()

    def stop_all(self):
        for inst in self.management + [self.verifier]:
            if inst is not None and inst.process is not None:
                inst.process.stop()
        if self.redis is not None and self.redis.process is not None:
            self.redis.process.stop()

    def start(self, work, runtime):
        self.redis = Redis(work)
        self.redis.start()
        log(f"redis-server on 127.0.0.1:{self.redis.port} (pid {self.redis.process.pid}), "
            f"append-only file in {self.redis.dir}")
        rc = self.redis.runtime_config(os.path.join(work, "runtime-config.toml"))
        manifest = copy_manifest(work)
        jwt_secret = secrets.token_urlsafe(48)
        self.tokens = {user: make_jwt(jwt_secret, user) for user in self.users}
        env = dict(os.environ, SPIN_VARIABLE_JWT_SECRET=jwt_secret,
                   SPIN_VARIABLE_MAX_KEYS_PER_USER=str(self.args.limit),
                   SPIN_VARIABLE_ALLOWED_SCOPES=",".join(SCOPES))
        env.pop("RUST_LOG", None)
        self.management = [Instance(f"mgmt-{n}", MANAGEMENT, runtime, manifest, rc, work, env)
                           for n in "ab"]
        self.verifier = Instance("verify", ["verify"], runtime, manifest, rc, work, env)
        for inst in self.management + [self.verifier]:
            inst.start()
            log(f"{inst.name} ({', '.join(inst.components)}) on 127.0.0.1:{inst.port} "
                f"(pid {inst.process.pid})")
        self.api = Api(self.recorder, self.knowledge, self.tokens, self.args.timeout)
        self.orchestrator = Orchestrator(self, self.args.orchestrator)
        self.orchestrator.start()

    def load(self):
        self.started = now()
        clients = [Client(i, self) for i in range(self.args.clients)]
        chaos = Chaos(self, self.args)
        log(f"{len(clients)} clients, {len(self.users)} users, limit {self.args.limit}, "
            f"{self.args.seconds} s; chaos plan: "
            + (", ".join(f"{w} at {a:.0f} s" for a, w in chaos.plan) or "none"))
        for c in clients:
            c.start()
        chaos.start()
        deadline = self.started + self.args.seconds
        while now() < deadline:
            time.sleep(0.2)
        self.stop.set()
        chaos.join()
        for c in clients:
            c.join(self.args.timeout + 10)
        self.ended = now()
        if chaos.failure:
            raise RuntimeError(f"chaos failed: {chaos.failure}")
        # After chaos the deployment must be whole again for the settle phase.
        if not self.redis.process.alive():
            raise RuntimeError("redis-server is not running after the run")
        for inst in self.management + [self.verifier]:
            with inst.lock:
                if not inst.process.alive():
                    raise RuntimeError(f"{inst.name} is not running after the run")
        return sum(c.errors for c in clients)

    def wait_healthy(self, timeout=240):
        """Until every instance answers its health check with 200 (at once with an
        orchestrator; without one, as long as Spin's stall lasts), so that the settle phase
        reads a deployment that answers."""
        t0 = now()
        for inst in self.management + [self.verifier]:
            while probe_status(inst, PROBE_TIMEOUT) != 200:
                if now() - t0 > timeout:
                    raise RuntimeError(f"{inst.name} did not answer its health check for "
                                       f"{timeout} s")
                time.sleep(1)
        if now() - t0 > 1:
            log(f"settling: every instance answered its health check after {now() - t0:.1f} s")

    def settle(self):
        """No chaos, past the abandonment time; then one list and one events per user, which
        repair what failed requests left; then every known secret verified once more."""
        self.wait_healthy()
        wait = ABANDONED_AFTER_SECS + 1
        log(f"settling: {wait} s without requests (ABANDONED_AFTER_SECS = {ABANDONED_AFTER_SECS})")
        time.sleep(wait)
        self.final_list, self.final_events = {}, {}
        mgmt = self.management[0]
        for user in self.users:
            for kind, store in (("list", self.final_list), ("events", self.final_events)):
                for attempt in range(5):
                    op = getattr(self.api, kind)(mgmt, user, phase="settle")
                    if op["status"] == 200:
                        store[user] = op
                        break
                    time.sleep(1)
                else:
                    raise RuntimeError(f"{kind} for {user} did not answer 200 after settling: "
                                       f"{op['status']} {op['body']}")
        # Every known secret, with no scope and with each scope.
        for user in self.users:
            for key in list(self.knowledge.keys[user].values()):
                for secret in key["secrets"]:
                    for scopes in [[]] + [[s] for s in SCOPES]:
                        self.api.verify(self.verifier, user, key["id"], secret, scopes,
                                        phase="settle")


# ---- Checks ------------------------------------------------------------------------------------

INF = math.inf
CHECKS = ["limit", "deleted means dead", "fail closed", "rolls", "list shows every live key",
          "history", "verify answers for its key", "live keys verify", "statuses", "health"]
# The chaos that stops Redis answering for a while; after each, every instance must answer its
# health check again.
REDIS_FAULTS = ("sigstop", "client_pause", "restart", "outage")
EXPECTED = {
    "create": {201, 400, 409, 503}, "list": {200, 503}, "update": {200, 400, 404, 503},
    "roll": {201, 400, 404, 503}, "delete": {200, 404, 503}, "events": {200, 503},
    "verify": {200, 401, 403, 503},
}


def unknown(op):
    """The outcome is unknown: 5xx ("it may have been applied; retry") or no answer."""
    return op["status"] is NO_ANSWER or op["status"] >= 500


def refused(op):
    """A definite refusal (4xx): nothing was changed."""
    return op["status"] is not NO_ANSWER and 400 <= op["status"] < 500


def end(op):
    """Until when `op` may still take effect: its answer, or never known for an unknown
    outcome (a request without an answer may still be running; a 503's change may be carried
    by a later read)."""
    return INF if unknown(op) else op["t1"]


def code(op):
    b = op.get("body")
    if isinstance(b, dict):
        if "code" in b:
            return b["code"]
        if isinstance(b.get("error"), dict):
            return b["error"].get("code")
    return None


def show(op):
    """One op on one line, for a violation's evidence."""
    status = "no answer" if op["status"] is NO_ANSWER else op["status"]
    parts = [f"#{op['seq']}", op["kind"], f"on {op['inst']}", f"{op['t0']:.3f}–{op['t1']:.3f}s",
             f"→ {status}"]
    for field in ("key_id", "fields", "grace", "scopes", "scopes_required", "after", "burst",
                  "phase"):
        if op.get(field) not in (None, [], "run"):
            parts.append(f"{field}={op[field]}")
    if op.get("secret"):
        parts.append(f"secret …{op['secret'][-6:]}")
    body = op.get("body")
    if op["kind"] in ("list", "events") and isinstance(body, dict):
        if op["kind"] == "list":
            parts.append("keys=" + json.dumps([(k.get("id"), k.get("preview"), k.get("enabled"),
                                                k.get("scopes")) for k in body.get("keys", [])]))
        else:
            parts.append(f"{len(body.get('events', []))} events")
    elif body is not None:
        parts.append("body=" + json.dumps(body)[:240])
    if op.get("error"):
        parts.append(f"error={op['error']}")
    return " ".join(str(p) for p in parts)


class Checker:
    def __init__(self, run, ops, runtime_name=None):
        self.run, self.ops, self.runtime_name = run, ops, runtime_name
        self.violations = collections.defaultdict(list)
        self.checked = collections.Counter()
        self.by_kind = collections.defaultdict(list)
        for op in ops:
            self.by_kind[op["kind"]].append(op)
        # Per key: its ops; per user: lists and writes.
        self.key_ops = collections.defaultdict(lambda: collections.defaultdict(list))
        self.secret = {}  # secret -> (user, key id, preview, issuing op)
        self.user_of_key = {}
        for op in ops:
            if op.get("key_id"):
                self.key_ops[op["key_id"]][op["kind"]].append(op)
                self.user_of_key[op["key_id"]] = op["user"]
            if op["kind"] in ("create", "roll") and op["status"] == 201 and op.get("secret"):
                self.secret[op["secret"]] = (op["user"], op["key_id"], op["body"].get("preview"), op)
        self.lists = collections.defaultdict(list)
        for op in self.by_kind["list"]:
            if op["status"] == 200 and isinstance(op["body"], dict):
                op["ids"] = {k.get("id") for k in op["body"].get("keys", [])}
                self.lists[op["user"]].append(op)
                for key_id in op["ids"]:
                    self.user_of_key.setdefault(key_id, op["user"])
        self.writes = collections.defaultdict(list)
        for kind in ("create", "update", "roll", "delete"):
            for op in self.by_kind[kind]:
                if not refused(op):
                    self.writes[op["user"]].append(op)

    def violation(self, check, text, *ops):
        self.violations[check].append((text, ops))

    def run_all(self):
        for check in (self.limit, self.deleted_dead, self.fail_closed, self.rolls,
                      self.list_live, self.history, self.identity, self.live, self.statuses,
                      self.health):
            check()
        return self.violations

    # -- helpers

    def verifies_of(self, key_id):
        return self.key_ops[key_id]["verify"]

    def deletes_sent(self, key_id, before=INF):
        """Deletes of the key that were sent before `before` and were not refused."""
        return [d for d in self.key_ops[key_id]["delete"] if d["t0"] < before and not refused(d)]

    def in_window(self, user, since):
        """Whether a change published at or after `since` must still be in the user's history
        (the latest MAX_EVENTS): at most that many requests could have published after it."""
        later = sum(1 for w in self.writes[user] if end(w) > since)
        return later <= MAX_EVENTS

    # -- limit

    def limit(self):
        limit = self.run.args.limit
        for op in self.by_kind["list"]:
            if op["status"] != 200 or not isinstance(op["body"], dict):
                continue
            self.checked["limit"] += 1
            keys = op["body"].get("keys", [])
            counting = [k for k in keys if k.get("expires_at") is None]
            if len(counting) > limit or op["body"].get("count", 0) > limit:
                self.violation("limit", f"a list shows {len(counting)} keys, limit {limit}", op)

    # -- deleted means dead

    def deleted_dead(self):
        for d in self.by_kind["delete"]:
            if d["status"] != 200:
                continue
            for v in self.verifies_of(d["key_id"]):
                if v["t0"] > d["t1"]:
                    self.checked["deleted means dead"] += 1
                    if v["status"] == 200:
                        self.violation("deleted means dead",
                                       f"key {d['key_id']} verified {v['t0'] - d['t1']:.3f} s "
                                       "after its delete answered 200", d, v)

    # -- fail closed

    def fail_closed(self):
        for key_id, kinds in self.key_ops.items():
            updates = kinds["update"]
            # What gives a right back counts once sent, whatever it answered (the brief's rule;
            # and an answer is not proof: a request may be applied and still answer 404).
            enables = [u for u in updates if u["fields"].get("enabled") is True]
            setters = [u for u in updates if "scopes" in u["fields"]]
            # A create sets the first scopes; it counts as a 200 that narrows to them.
            narrowing = [(u, u["fields"]["scopes"]) for u in updates
                         if u["status"] == 200 and "scopes" in u["fields"]]
            narrowing += [(c, c["scopes"]) for c in kinds["create"] if c["status"] == 201]
            disables = [u for u in updates
                        if u["status"] == 200 and u["fields"].get("enabled") is False]
            for v in self.verifies_of(key_id):
                if v["status"] != 200:
                    continue
                for u in disables:
                    if v["t0"] <= u["t1"]:
                        continue
                    self.checked["fail closed"] += 1
                    excuse = [e for e in enables if e["t0"] < v["t1"] and end(e) > u["t0"]]
                    if not excuse:
                        self.violation("fail closed",
                                       f"key {key_id} verified {v['t0'] - u['t1']:.3f} s after "
                                       "an update disabling it answered 200, no enable sent",
                                       u, v)
                for u, kept in narrowing:
                    if v["t0"] <= u["t1"]:
                        continue
                    for s in v["scopes_required"]:
                        if s in kept:
                            continue
                        self.checked["fail closed"] += 1
                        excuse = [e for e in setters if s in e["fields"]["scopes"]
                                  and e["t0"] < v["t1"] and end(e) > u["t0"]]
                        if not excuse:
                            self.violation("fail closed",
                                           f"key {key_id} verified with scope {s} "
                                           f"{v['t0'] - u['t1']:.3f} s after {u['kind']} #{u['seq']} "
                                           f"answered with scopes {kept}, nothing gave {s} back",
                                           u, v)
        self.agrees_with_final_list()

    def agrees_with_final_list(self):
        """After settling: the current secret of every listed key verifies as the list says;
        every other secret known is dead."""
        final = {user: op["body"]["keys"] for user, op in self.run.final_list.items()}
        for v in self.by_kind["verify"]:
            if v["phase"] != "settle":
                continue
            user, key_id = v["user"], v["key_id"]
            listed = next((k for k in final[user] if k["id"] == key_id), None)
            preview = self.secret.get(v["secret"], (None, None, None))[2]
            self.checked["fail closed"] += 1
            if listed is None or listed.get("preview") != preview:
                if v["status"] != 401 or code(v) != "invalid_key":
                    what = "a key no longer listed" if listed is None else "a secret not current"
                    self.violation("fail closed", f"after settling, {what} answers "
                                   f"{v['status']} {code(v)} (401 invalid_key expected)",
                                   self.run.final_list[user], v)
                continue
            required = v["scopes_required"]
            if not listed.get("enabled", True):
                expected = (401, "key_disabled")
            elif all(s in listed.get("scopes", []) for s in required):
                expected = (200, None)
            else:
                expected = (403, "insufficient_scope")
            got = (v["status"], code(v))
            scopes_ok = (v["status"] != 200
                         or sorted(v["body"].get("scopes", [])) == sorted(listed.get("scopes", [])))
            if got != expected or not scopes_ok:
                self.violation("fail closed",
                               f"after settling, verify disagrees with the list: expected "
                               f"{expected}, got {got}", self.run.final_list[user], v)

    # -- rolls

    def rolls(self):
        # Every 201 roll: its new secret verified at once, unless another roll or a delete of
        # the key was sent meanwhile.
        verify_after = {v["after"]: v for v in self.by_kind["verify"] if v.get("after") is not None}
        for r in self.by_kind["roll"]:
            v = verify_after.get(r["seq"])
            if r["status"] != 201 or v is None:
                continue
            self.checked["rolls"] += 1
            if v["status"] == 200 or unknown(v):
                continue
            key_id = r["key_id"]
            if code(v) == "key_disabled" and any(
                    u["fields"].get("enabled") is False and u["t0"] < v["t1"]
                    for u in self.key_ops[key_id]["update"]):
                continue
            # Another roll sent meanwhile (whatever it answered: one may publish, then lose).
            others = [o for o in self.key_ops[key_id]["roll"]
                      if o is not r and end(o) > r["t0"] and o["t0"] < v["t1"]]
            if others or self.deletes_sent(key_id, v["t1"]):
                continue
            self.violation("rolls", f"the secret of a roll that answered 201 did not verify "
                           f"right after ({v['status']} {code(v)})", r, v)
        # A roll of a key listed before and after never answers 404 (nor an update or delete).
        for kind in ("roll", "update", "delete"):
            for op in self.by_kind[kind]:
                if op["status"] != 404:
                    continue
                lists = self.lists[op["user"]]
                before = [l for l in lists if l["t1"] < op["t0"] and op["key_id"] in l["ids"]]
                after = [l for l in lists if l["t0"] > op["t1"] and op["key_id"] in l["ids"]]
                self.checked["rolls"] += 1
                if before and after:
                    self.violation("rolls", f"{kind} answered 404 for a key listed before and "
                                   "after it", before[-1], op, after[0])
        # The history after settling: one `rolled` event per roll that answered 201, and every
        # `rolled` event a roll's that answered 201, 503 or nothing.
        for user, events_op in self.run.final_events.items():
            events = events_op["body"].get("events", [])
            by_key = collections.defaultdict(list)
            for e in events:
                if e.get("type") == "rolled":
                    at = rfc3339_seconds(e["at"])
                    grace = rfc3339_seconds(e["previous_key_expires_at"]) - at
                    by_key[e["key_id"]].append((at, grace, e))
            keys = set(by_key) | {r["key_id"] for r in self.by_kind["roll"] if r["user"] == user}
            for key_id in keys:
                self.match_rolls(user, key_id, by_key.get(key_id, []), events_op)

    def match_rolls(self, user, key_id, events, events_op):
        candidates = [r for r in self.key_ops[key_id]["roll"] if not refused(r)]
        deleted = bool(self.deletes_sent(key_id))
        required = [r for r in candidates if r["status"] == 201 and not deleted
                    and self.in_window(user, r["t0"])]

        def fits(event, roll):
            at, grace, _ = event
            low = math.floor(wall(roll["t0"])) - 1
            high = math.floor(wall(roll["t1"])) + 1 if not unknown(roll) else INF
            return grace == roll["grace"] and low <= at <= high

        self.checked["rolls"] += len(events) + len(required)
        # Each event a roll of its own that may have made it. Which event is left over when
        # one cannot be matched is arbitrary (one may fit several rolls): the key is reported
        # once, with the refused rolls that fit an event and the deletes that overlap them.
        matched = bipartite(events, candidates, fits)
        if len(matched) < len(events):
            rolls = self.key_ops[key_id]["roll"]
            suspects = [r for r in rolls if refused(r) and any(fits(e, dict(r, status=201))
                                                               for e in events)]
            deletes = [d for d in self.key_ops[key_id]["delete"]
                       if any(d["t0"] < r["t1"] and d["t1"] > r["t0"] for r in suspects)]
            evidence = sorted(suspects + deletes, key=lambda o: o["seq"]) or rolls
            shown = ", ".join(f"{e[2]['at'][11:19]} grace {e[1]} s" for e in events)
            self.violation("rolls", f"{key_id} has {len(events)} `rolled` events ({shown}) but "
                           f"only {len(matched)} can belong to rolls that answered 201, 503 or "
                           f"nothing ({len(candidates)} such rolls; {len(suspects)} refused "
                           "roll(s) fit an event)", events_op, *evidence)
        # Each roll that answered 201 an event of its own.
        matched = bipartite(required, events, lambda r, e: fits(e, r))
        for i, r in enumerate(required):
            if i not in matched:
                self.violation("rolls", f"a roll that answered 201 has no `rolled` event of its "
                               f"own in the history after settling ({len(events)} `rolled` "
                               f"events of the key, {len(required)} rolls answered 201)",
                               r, events_op)

    # -- list shows every live key

    def list_live(self):
        # When each key was first known live: its create's 201, or a list that showed it.
        born = {}
        for c in self.by_kind["create"]:
            if c["status"] == 201:
                born[c["key_id"]] = (c["t1"], c)
        for user, lists in self.lists.items():
            for l in lists:
                for key_id in l["ids"]:
                    if key_id not in born or l["t1"] < born[key_id][0]:
                        born[key_id] = (l["t1"], l)
        for key_id, (t, origin) in born.items():
            user = self.user_of_key[key_id]
            for l in self.lists[user]:
                if l["t0"] <= t:
                    continue
                self.checked["list shows every live key"] += 1
                if key_id in l["ids"]:
                    continue
                if any(d["t0"] < l["t1"] for d in self.key_ops[key_id]["delete"]):
                    continue
                self.violation("list shows every live key",
                               f"key {key_id}, live since {t:.3f} s and no delete sent, is "
                               "missing from a list", origin, l)

    # -- history

    def history(self):
        for user, events_op in self.run.final_events.items():
            events = events_op["body"].get("events", [])
            created = {e["key_id"] for e in events if e.get("type") == "created"}
            deleted = {e["key_id"] for e in events if e.get("type") == "deleted"}
            final_ids = {k["id"] for k in self.run.final_list[user]["body"]["keys"]}
            creates = {c["key_id"]: c for c in self.by_kind["create"]
                       if c["user"] == user and c["status"] == 201}
            for key_id in final_ids:
                c = creates.get(key_id)
                if c is None or not self.in_window(user, c["t0"]):
                    continue
                self.checked["history"] += 1
                if key_id not in created:
                    self.violation("history", f"listed key {key_id} has no `created` event",
                                   c, self.run.final_list[user], events_op)
            known = set(creates) | {k for l in self.lists[user] for k in l["ids"]}
            for key_id in known - final_ids:
                self.checked["history"] += 1
                sent = self.deletes_sent(key_id)
                if not sent and key_id not in deleted:
                    self.violation("history", f"key {key_id} left the list and has no `deleted` "
                                   "event, and no delete of it was answered 200, 503 or nothing",
                                   *(self.key_ops[key_id]["delete"]
                                     + [self.run.final_list[user], events_op]))
                    continue
                if sent and key_id not in deleted and self.in_window(user, sent[0]["t0"]):
                    self.violation("history", f"deleted key {key_id} has no `deleted` event",
                                   *(sent + [events_op]))

    # -- verify answers for its key

    def identity(self):
        for v in self.by_kind["verify"]:
            if v["status"] != 200:
                continue
            self.checked["verify answers for its key"] += 1
            owner = self.secret.get(v["secret"])
            body = v["body"] if isinstance(v["body"], dict) else {}
            if (owner is None or body.get("valid") is not True or body.get("user_id") != owner[0]
                    or body.get("key_id") != owner[1]):
                self.violation("verify answers for its key", "a 200 names another key or user",
                               v, *([owner[3]] if owner else []))

    # -- live keys verify

    def live(self):
        """A secret that was issued verifies until something was sent that could end it: a
        delete, a roll replacing it (after that roll's grace), an update disabling the key (for
        key_disabled) or dropping a scope asked for (for insufficient_scope)."""
        for v in self.by_kind["verify"]:
            owner = self.secret.get(v["secret"])
            if owner is None or v["status"] in (200, NO_ANSWER) or v["status"] >= 500:
                continue
            _, key_id, _, issued = owner
            if v["t0"] <= issued["t1"]:
                continue
            self.checked["live keys verify"] += 1
            ops = self.key_ops[key_id]
            c = code(v)

            def sent(op):
                """Sent before the verify answered, and not refused before it was asked: a
                request in flight may restrict ahead of its answer, whatever that answer."""
                return op["t0"] < v["t1"] and (not refused(op) or op["t1"] > v["t0"])

            if c == "key_disabled":
                if not any(u["fields"].get("enabled") is False and sent(u) for u in ops["update"]):
                    self.violation("live keys verify", "key_disabled for a key no update "
                                   "disabled", issued, v)
            elif c == "insufficient_scope":
                create = ops["create"][0] if ops["create"] else None

                def held(s):
                    granted = create is not None and s in create["scopes"]
                    dropped = any("scopes" in u["fields"] and s not in u["fields"]["scopes"]
                                  and sent(u) for u in ops["update"])
                    return granted and not dropped

                if v["scopes_required"] and all(held(s) for s in v["scopes_required"]):
                    self.violation("live keys verify", f"insufficient_scope for "
                                   f"{v['scopes_required']}, which the key was created with and "
                                   "no update dropped", create, v)
            elif c in ("invalid_key", "key_expired"):
                if self.deletes_sent(key_id, v["t1"]):
                    continue
                # A roll replacing this secret, overlapping or after its issue, whose grace may
                # be over by the verify (server seconds are whole); or any roll then while
                # MAX_PREVIOUS_SECRETS older secrets may have been in their grace: beyond that,
                # the one ending first ends at once (README, "Roll").
                def crowded(r):
                    in_grace = [o for o in ops["roll"] if o is not r and not refused(o)
                                and o["grace"] > 0 and o["t0"] < end(r)
                                and end(o) + o["grace"] + 1 > r["t0"]]
                    return len(in_grace) >= MAX_PREVIOUS_SECRETS

                ended = [r for r in ops["roll"] if r is not issued and sent(r)
                         and end(r) > issued["t0"]
                         and (v["t1"] >= r["t0"] + r["grace"] - 1 or crowded(r))]
                if not ended:
                    self.violation("live keys verify", f"{v['status']} {c} for a secret no "
                                   "delete or roll had ended", issued, v)
            else:
                self.violation("live keys verify", f"unexpected refusal {v['status']} {c}", v)

    # -- statuses

    def statuses(self):
        for op in self.ops:
            self.checked["statuses"] += 1
            if op["status"] is NO_ANSWER:
                continue
            if op["status"] not in EXPECTED[op["kind"]]:
                self.violation("statuses", f"{op['kind']} answered {op['status']}, outside the "
                               "contract", op)


    # -- health

    def health(self):
        """The health routes answer 200 or 503; after every Redis fault each instance answers
        its health check with 200 within RECOVERY_BOUND s of Redis answering again (on Spin,
        with the orchestrator's restarts); every restarted instance answers it within
        RESTARTED_BOUND s of serving again; and the local host never needs a restart (it
        answers or fails within seconds, never hangs)."""
        recorder = self.run.recorder
        probes = sorted(getattr(recorder, "probes", []), key=lambda p: p["t0"])
        if not probes:
            return  # a record from before the health routes
        by_inst = collections.defaultdict(list)
        for p in probes:
            by_inst[p["inst"]].append(p)
            if p["status"] is not NO_ANSWER:
                self.checked["health"] += 1
                if p["status"] not in (200, 503):
                    self.violation("health", f"a health check answered {p['status']}",
                                   probe_op(p))
        faults = sorted((e for e in recorder.chaos if e.get("kind") in REDIS_FAULTS),
                        key=lambda e: e["t0"])
        for i, fault in enumerate(faults):
            back = fault["t1"]
            following = faults[i + 1]["t0"] if i + 1 < len(faults) else INF
            for inst, ps in sorted(by_inst.items()):
                ok = next((p for p in ps if p["t0"] >= back and p["status"] == 200), None)
                if (ok is None or ok["t1"] > following) and following - back < RECOVERY_BOUND:
                    continue  # the next fault came first: judged after that one
                self.checked["health"] += 1
                took = (ok["t1"] if ok else INF) - back
                if took > RECOVERY_BOUND:
                    failed = [p for p in ps if p["t0"] >= fault["t0"] and p["status"] != 200]
                    self.violation("health", f"{inst} answered its health check with 200 only "
                                   f"{took:.1f} s after Redis answered again (bound "
                                   f"{RECOVERY_BOUND:.0f} s)", chaos_op(fault),
                                   *map(probe_op, failed[:2] + failed[-1:] + ([ok] if ok else [])))
        restarted = [(r["inst"], r["t1"], f"restarted by the orchestrator after "
                      f"{r['failures']} failed health checks")
                     for r in getattr(recorder, "restarts", [])]
        restarted += [(e["inst"], e["t1"], "killed by the chaos and started again")
                      for e in recorder.chaos if e.get("kind") == "kill" and e.get("inst")]
        for inst, serving, why in restarted:
            self.checked["health"] += 1
            ok = next((p for p in by_inst[inst] if p["t0"] >= serving and p["status"] == 200),
                      None)
            if ok is None or ok["t1"] - serving > RESTARTED_BOUND:
                self.violation("health", f"{inst}, {why}, did not answer its health check with "
                               f"200 within {RESTARTED_BOUND:.0f} s of serving again",
                               *map(probe_op, [p for p in by_inst[inst] if p["t0"] >= serving][:3]))
        if self.runtime_name == "local":
            self.checked["health"] += 1
            for r in getattr(recorder, "restarts", []):
                self.violation("health", f"the local host needed a restart: {r['inst']} failed "
                               f"{r['failures']} health checks in a row", restart_op(r))


def probe_op(p):
    """A health probe as an op, for a violation's evidence."""
    return dict(p, seq="probe", kind="health", body=None, error=None)


def chaos_op(e):
    return {"seq": "chaos", "kind": e["what"], "inst": "redis", "t0": e["t0"], "t1": e["t1"],
            "status": "-", "body": None, "error": None}


def restart_op(r):
    return {"seq": "restart", "kind": "orchestrator restart", "inst": r["inst"], "t0": r["t0"],
            "t1": r["t1"], "status": "-", "body": None, "error": None}


def bipartite(left, right, fits):
    """A maximum matching of `left` into `right` (Kuhn's augmenting paths): {left index: right
    index} for the matched ones."""
    match_right = {}

    def augment(i, seen):
        for j, r in enumerate(right):
            if j in seen or not fits(left[i], r):
                continue
            seen.add(j)
            if j not in match_right or augment(match_right[j], seen):
                match_right[j] = i
                return True
        return False

    for i in range(len(left)):
        augment(i, set())
    return {i: j for j, i in match_right.items()}


# ---- Report ------------------------------------------------------------------------------------


def summary(ops, chaos, probes=(), restarts=()):
    counts = collections.defaultdict(collections.Counter)
    for op in ops:
        status = "none" if op["status"] is NO_ANSWER else str(op["status"])
        if op["kind"] == "verify" and op["status"] in (401, 403):
            status += f"/{code(op)}"
        counts[op["kind"]][status] += 1
    lines = []
    for kind in ["create", "list", "update", "roll", "delete", "events", "verify"]:
        c = counts.get(kind, {})
        total = sum(c.values())
        detail = " ".join(f"{s}×{n}" for s, n in sorted(c.items()))
        lines.append(f"  {kind:7} {total:6}  {detail}")
    for e in chaos:
        lines.append(f"  chaos at {e['t0']:.1f}–{e['t1']:.1f} s: {e['what']}")
    by_inst = collections.defaultdict(collections.Counter)
    for p in probes:
        by_inst[p["inst"]]["none" if p["status"] is NO_ANSWER else str(p["status"])] += 1
    for inst, c in sorted(by_inst.items()):
        detail = " ".join(f"{s}×{n}" for s, n in sorted(c.items()))
        lines.append(f"  health  {inst:7} {sum(c.values()):4} probes  {detail}")
    for r in restarts:
        lines.append(f"  restart at {r['t0']:.1f}–{r['t1']:.1f} s: {r['inst']} after "
                     f"{r['failures']} failed health checks")
    lines.extend(recoveries(chaos, probes))
    return "\n".join(lines)


def recoveries(chaos, probes):
    """For each Redis fault, when each instance answered its health check again: the measured
    outage, as the report shows it."""
    lines = []
    for fault in (e for e in chaos if e.get("kind") in REDIS_FAULTS):
        parts = []
        for inst in sorted({p["inst"] for p in probes}):
            ok = next((p for p in sorted(probes, key=lambda p: p["t0"])
                       if p["inst"] == inst and p["t0"] >= fault["t1"] and p["status"] == 200),
                      None)
            parts.append(f"{inst} {ok['t1'] - fault['t0']:.1f} s" if ok else f"{inst} never")
        if parts:
            lines.append(f"  answering again after {fault['kind']} (from its start): "
                         + ", ".join(parts))
    return lines


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60, help="how long the clients run (60)")
    p.add_argument("--seed", type=int, default=None, help="random seed (printed; default: new)")
    p.add_argument("--clients", type=int, default=8, help="client threads (8)")
    p.add_argument("--users", type=int, default=12, help="users, shared by all clients (12)")
    p.add_argument("--limit", type=int, default=4, help="max_keys_per_user (4)")
    p.add_argument("--timeout", type=float, default=40,
                   help="seconds a request may take before it counts as no answer (40)")
    p.add_argument("--pause-seconds", type=float, default=3, help="length of each Redis pause (3)")
    p.add_argument("--outage-seconds", type=float, default=3,
                   help="how long Redis stays down in the outage (3)")
    for name, what in (("pause", "pause Redis (SIGSTOP, then CLIENT PAUSE)"),
                       ("restart", "restart Redis"),
                       ("outage", "kill Redis and start it again --outage-seconds later"),
                       ("kill", "SIGKILL a management instance"),
                       ("orchestrator", "restart an instance whose health checks fail (only "
                        "probe; on Spin the health check then fails for about two minutes)")):
        p.add_argument(f"--no-{name}", dest=name, action="store_false", help=f"do not {what}")
    p.add_argument("--no-build", action="store_true", help="never build missing artifacts")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--check", metavar="RECORD",
                   help="run no load: check the record of an earlier run (target/chaos/*.jsonl)")
    args = p.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    return args


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    """The first SIGINT, SIGTERM or SIGHUP ends the run (its processes are stopped on the way
    out); later ones are ignored, so that they cannot cut that cleanup short."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


def write_record(path, run, runtime, ops):
    """The run's record: a header with what the checks need, every op, every chaos event."""
    header = {"seed": run.seed, "runtime": runtime.name, "limit": run.args.limit, "wall0": WALL0,
              "users": run.users, "seconds": run.args.seconds,
              "final_list": {u: op["seq"] for u, op in run.final_list.items()},
              "final_events": {u: op["seq"] for u, op in run.final_events.items()}}
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"run": header}) + "\n")
        for op in ops:
            f.write(json.dumps(op) + "\n")
        for e in run.recorder.chaos:
            f.write(json.dumps({"chaos": e}) + "\n")
        for p in run.recorder.probes:
            f.write(json.dumps({"probe": p}) + "\n")
        for r in run.recorder.restarts:
            f.write(json.dumps({"restart": r}) + "\n")


def read_record(path):
    """A run rebuilt from its record, as far as the checks need it, and its ops."""
    header, ops, chaos, probes, restarts = None, [], [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            item = json.loads(line)
            if "run" in item:
                header = item["run"]
            elif "chaos" in item:
                chaos.append(item["chaos"])
            elif "probe" in item:
                probes.append(item["probe"])
            elif "restart" in item:
                restarts.append(item["restart"])
            else:
                ops.append(item)
    if header is None:
        raise SystemExit(f"{path}: no run header (a record of an older version of this script?)")
    # Times in the record are the run's own: map them to the wall clock as that run did.
    global WALL0
    WALL0 = header["wall0"]
    run = argparse.Namespace(args=argparse.Namespace(limit=header["limit"]), seed=header["seed"],
                             final_list={u: ops[n] for u, n in header["final_list"].items()},
                             final_events={u: ops[n] for u, n in header["final_events"].items()},
                             recorder=argparse.Namespace(chaos=chaos, probes=probes,
                                                         restarts=restarts))
    return run, header["runtime"], ops


def report(run, runtime_name, ops, record):
    """Checks the ops and prints what they found; the number of violations."""
    checker = Checker(run, ops, runtime_name)
    violations = checker.run_all()
    total = sum(len(v) for v in violations.values())
    print(f"operations by kind and status ({runtime_name}, seed {run.seed}):")
    print(summary(ops, run.recorder.chaos, run.recorder.probes, run.recorder.restarts))
    for check in CHECKS:
        found = violations.get(check, [])
        print(f"  check {check}: {checker.checked[check]} checked, {len(found)} violation(s)")
    for check in CHECKS:
        for text, evidence in violations.get(check, [])[:20]:
            print(f"\nVIOLATION [{check}] {text}")
            for op in evidence:
                print(f"    {show(op)}")
        if len(violations.get(check, [])) > 20:
            print(f"\n... {len(violations[check]) - 20} more [{check}] violations")
    print(f"record: {record}")
    failed = sum(1 for check in CHECKS if violations.get(check))
    print(f"chaos: {len(CHECKS) - failed} passed, {failed} failed")
    return total


def main():
    args = parse_args()
    if args.check:
        run, runtime_name, ops = read_record(args.check)
        total = report(run, runtime_name, ops, args.check)
        print(f"chaos: {len(ops)} operations, {total} violations", flush=True)
        return 1 if total else 0
    runtime = Runtime()
    print(f"chaos: seed {args.seed} (replay: --seed {args.seed}), runtime {runtime.name}",
          flush=True)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    work = tempfile.mkdtemp(prefix="api-keys-chaos.")
    run = Run(args)
    keep = args.keep
    try:
        runtime.ensure_artifacts(not args.no_build)
        log(f"runtime: {runtime.describe()}; work directory {work}")
        run.start(work, runtime)
        client_errors = run.load()
        log(f"load done: {len(run.recorder.ops)} requests")
        run.settle()
    except (Interrupted, RuntimeError, subprocess.CalledProcessError, OSError) as e:
        print(f"chaos: the run could not be made: {e}", flush=True)
        for process in run.processes_started():
            print(f"--- {process.name} log (last lines)\n{process.tail()}", flush=True)
        keep = True
        run.stop.set()
        run.shutdown()
        print(f"chaos: work directory kept: {work}")
        print(f"chaos: {len(run.recorder.ops)} operations, run failed")
        return 2
    finally:
        run.stop.set()
        run.shutdown()
    ops = run.recorder.ops
    out_dir = os.path.join(ROOT, "target", "chaos")
    os.makedirs(out_dir, exist_ok=True)
    record = os.path.join(out_dir, f"{runtime.name}-ops.jsonl")
    write_record(record, run, runtime, ops)
    total = report(run, runtime.name, ops, record)
    if client_errors:
        print(f"client errors: {client_errors} (see the log above)")
    if keep or total:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"chaos: {len(ops)} operations, {total} violations", flush=True)
    return 1 if total or client_errors else 0


if __name__ == "__main__":
    sys.exit(main())
