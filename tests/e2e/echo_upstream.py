"""A small upstream that is not Rust, behind nginx in tests/e2e/gateway.rs: every request is
answered with JSON naming its method, path and headers (as [name, value] pairs in the order
received, so a header sent twice shows twice). A path under /upstream-error/ answers 500, as a
failing application would.

Listens on 127.0.0.1 on a free port and prints `listening <port>` on stdout; exits when its
stdin closes, so it never outlives the test that started it. Standard library only.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        status = 500 if self.path.startswith("/upstream-error/") else 200
        payload = json.dumps({
            "method": self.command,
            "path": self.path,
            "headers": [[name, value] for name, value in self.headers.items()],
            "body": body,
        }).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def log_message(self, format, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # EOF: the test is over (or died)
    os._exit(0)


if __name__ == "__main__":
    main()
