"""A loopback HTTP server for the download tests: nothing reaches the internet."""

from __future__ import annotations

import http.server
import pathlib
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


# Published files the tests and the notebooks use as the presets' downloads (KERASNETS_WEIGHTS_MIRROR).
RELEASED_WEIGHTS = pathlib.Path(__file__).resolve().parent / "data" / "fsrcnn_tensorflow"


def serve_folder(folder, suffixes=(".pb",)):
    """A LoopbackServer giving GET /<name> for the files of `folder` with those suffixes (nothing else, no
    subfolders); 404 otherwise."""
    folder = pathlib.Path(folder)

    class Handler(QuietHandler):
        def do_GET(self):
            name = self.path.lstrip("/")
            path = folder / name
            if "/" in name or path.suffix not in suffixes or not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return LoopbackServer(Handler)
