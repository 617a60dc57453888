"""A stand-in for the API behind the gateway: answers every request with JSON saying what it
received, so that tests/gateway/run.sh can see which user the gateway vouched for.

Usage: python3 upstream.py PORT   (listens on 127.0.0.1 only)
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "x_api_key_user": self.headers.get("X-Api-Key-User"),
                "x_api_key_id": self.headers.get("X-Api-Key-Id"),
                "x_api_key_scopes": self.headers.get("X-Api-Key-Scopes"),
                # The gateway should not pass the secret on.
                "received_x_api_key": "X-API-Key" in self.headers,
                "received_authorization": "Authorization" in self.headers,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = answer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        sys.stderr.write("upstream: " + (format % args) + "\n")


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Echo)
    server.daemon_threads = True
    server.serve_forever()
