"""A loopback HTTP server for the download tests: nothing reaches the internet."""

from __future__ import annotations

import http.server
import threading


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that keeps the test log free of one line per request."""

    timeout = 10  # seconds: a stalled client cannot hold a test

    def log_message(self, *args):
        pass


class LoopbackServer:
    """Serves `handler` (a BaseHTTPRequestHandler class) on 127.0.0.1 at a free port until `stop()`."""

    def __init__(self, handler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
