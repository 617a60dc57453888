"""A stand-in for the API behind the gateway: answers every request with JSON saying what it
received, so that tests/gateway/run.sh can see which user the gateway vouched for, the raw path
it forwarded, and which handler that path would reach behind it.

Usage: python3 upstream.py PORT [RECORD]   (listens on 127.0.0.1 only)

It reports header names as they arrived, byte for byte, not only the exact names it looks for:
a CGI, WSGI, PHP-FPM or Rack API reads `X_Api_Key_User`, `x-api-key-user` and
`X-API-KEY-USER` all as HTTP_X_API_KEY_USER, so whatever the gateway lets through under any
such spelling is what an API would take for the caller. `api_key_headers` lists every header
(and request trailer) whose name, in any case and with `_` read as `-`, starts with
`x-api-key`: the gateway's own three, and anything a client slipped past it.

With RECORD, every request is also appended to that file as one line of the same JSON.

An API routes on the path it receives, and APIs read paths differently. This one says which
handler (`read`, `admin`, or `other`, the first path segment in any case) the raw path reaches
under three readings, and whether the scopes the gateway vouched for (X-Api-Key-Scopes) cover
all of them, `other` needing `admin` as the gateway's fallback does:
  - `raw`: the path as written (a router that matches the undecoded prefix);
  - `decoded`: RFC 3986: %XX decoded once, `.` and `..` segments removed;
  - `lenient`: what the most forgiving servers make of it: %XX decoded twice (a proxy and a
    framework behind it), overlong UTF-8 (%C0%AE `.`, %C0%AF `/`) as ASCII, `\\` as `/` (IIS),
    `;params` cut from each segment (`..;` is `..` to Tomcat and Spring), `//` merged.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_to_bytes

SCOPE_OF_HANDLER = {"read": "read", "admin": "admin", "other": "admin"}
OVERLONG = {b"\xc0\xae": b".", b"\xc0\xaf": b"/", b"\xc1\x9c": b"\\"}


def remove_dot_segments(segments: list[str]) -> list[str]:
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    return out


def api_key_family(name: str) -> bool:
    """True for a header name that is `x-api-key` or `x-api-key-...` up to case and `-`/`_`:
    one that a CGI-style API (HTTP_X_API_KEY_...) cannot tell from the gateway's own."""
    normal = name.strip().lower().replace("_", "-")
    return normal == "x-api-key" or normal.startswith("x-api-key-")


def handler_of(segments: list[str]) -> str:
    first = segments[0].lower() if segments else ""
    return first if first in ("read", "admin") else "other"


def handlers(target: str) -> dict[str, str]:
    """The handler the request target reaches under each reading (see the module's doc)."""
    raw = target.split("?", 1)[0]
    # http.server decodes the request line as ISO-8859-1: this gives back its bytes.
    raw_bytes = raw.encode("latin-1")
    decoded = unquote_to_bytes(raw_bytes).decode("latin-1")
    lenient = raw_bytes.split(b"#", 1)[0]
    for _ in range(2):
        lenient = unquote_to_bytes(lenient)
        for overlong, ascii_byte in OVERLONG.items():
            lenient = lenient.replace(overlong, ascii_byte)
    lenient_text = lenient.decode("latin-1").replace("\\", "/")
    lenient_segments = [s.split(";", 1)[0] for s in lenient_text.split("/")[1:]]
    return {
        "raw": handler_of(raw.split("/")[1:]),
        "decoded": handler_of(remove_dot_segments(decoded.split("/")[1:])),
        "lenient": handler_of(remove_dot_segments([s for s in lenient_segments if s])),
    }


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    record = None
    record_lock = threading.Lock()

    def read_body(self) -> tuple[bytes, list[tuple[str, str]]]:
        """The body, and the trailer fields of a chunked one (name as sent, value)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while size := int(self.rfile.readline().split(b";", 1)[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            trailers = []
            while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                trailers.append((name, value.strip()))
            return body, trailers
        return self.rfile.read(int(self.headers.get("Content-Length") or 0)), []

    def answer(self) -> None:
        body, trailers = self.read_body()
        reached = handlers(self.path)
        scopes = self.headers.get("X-Api-Key-Scopes")
        held = set((scopes or "").split(","))
        seen = {
            "method": self.command,
            # The request target exactly as the gateway sent it.
            "path": self.path,
            # The body as it arrived: the gateway must pass it on whole after the key check.
            "body_length": len(body),
            "x_api_key_user": self.headers.get("X-Api-Key-User"),
            "x_api_key_id": self.headers.get("X-Api-Key-Id"),
            "x_api_key_scopes": scopes,
            # The gateway should not pass the secret on.
            "received_x_api_key": "X-API-Key" in self.headers,
            "received_authorization": "Authorization" in self.headers,
            # Every header as it arrived, in order: [name exactly as sent, value].
            "headers": [[name, value] for name, value in self.headers.items()],
            "trailers": [[name, value] for name, value in trailers],
            # Every header or trailer an API could read as one of the X-Api-Key-* it trusts (the
            # module's doc), [name as sent, value], in the order they came.
            "api_key_headers": [
                [name, value]
                for name, value in [*self.headers.items(), *trailers]
                if api_key_family(name)
            ],
            "handlers": reached,
            # True if the key's scopes cover every handler this path could reach here.
            "scope_ok": all(SCOPE_OF_HANDLER[h] in held for h in reached.values()),
        }
        if self.record:
            with self.record_lock, open(self.record, "a", encoding="utf-8") as f:
                f.write(json.dumps(seen) + "\n")
        answer = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = answer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        sys.stderr.write("upstream: " + (format % args) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        Echo.record = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo)
    server.daemon_threads = True
    server.serve_forever()
