"""A webhook receiver for Alertmanager in the live tests: prints each POST as one JSON line.

Run as `python3 webhook_receiver.py PORT`; it listens on 127.0.0.1:PORT of the network namespace
it runs in (tests/live/test_monitoring.py starts it with nsenter in Alertmanager's, so the
notification travels to 127.0.0.1 and nowhere else) and answers 200 to every POST. Each line is
{"received": <unix time>, "path": ..., "body": <the parsed JSON body>}.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        print(json.dumps({"received": time.time(), "path": self.path, "body": parsed}), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):  # stdout carries the notifications only
        pass


def main() -> None:
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()


if __name__ == "__main__":
    main()
