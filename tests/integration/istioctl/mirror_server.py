"""HTTP mirror for the istioctl role tests; runs inside the test's "mirror" container.

Standard library only (the node image's python3). Serves one directory on two ports:

* ``--port`` (8080): a plain static file server, as an internal mirror would be.
* ``--drop-port`` (8081): answers every archive request with ``200`` and the full
  ``Content-Length``, sends the first half of the body and closes the connection: a download
  that breaks half-way. ``.sha256`` files are served whole, so that the archive is what fails.

Both ports answer ``GET /_hits`` with a JSON map ``{"<port> <path>": count}`` of the requests
seen so far, which lets a test check how often the role retried.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections import Counter
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

HITS: Counter[str] = Counter()
LOCK = threading.Lock()


class MirrorHandler(SimpleHTTPRequestHandler):
    drop_half_way = False

    def do_GET(self) -> None:
        if self.path == "/_hits":
            with LOCK:
                body = json.dumps(dict(HITS)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with LOCK:
            HITS[f"{self.server.server_address[1]} {self.path}"] += 1
        if self.drop_half_way and not self.path.endswith(".sha256"):
            self._send_half()
            return
        super().do_GET()

    def _send_half(self) -> None:
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404, "File not found")
            return
        with open(path, "rb") as fh:
            data = fh.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)


class DropHandler(MirrorHandler):
    drop_half_way = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", default="/srv/mirror")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--drop-port", type=int, default=8081)
    args = parser.parse_args()
    # PID 1 of its container: exit on SIGTERM so that `podman stop` is quick.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    servers = [
        ThreadingHTTPServer(("", args.port), partial(MirrorHandler, directory=args.directory)),
        ThreadingHTTPServer(("", args.drop_port), partial(DropHandler, directory=args.directory)),
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    print(f"mirror: serving {args.directory} on :{args.port}, half-way drops on :{args.drop_port}", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
