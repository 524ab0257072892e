"""Small real HTTP servers with distinguishable bodies, one per ``PORT=FILE`` argument.

Run as a separate process by the verify fixtures (``python backends.py 8081=a.html 8082=b.html``);
each port serves its file's content for every GET path on 127.0.0.1.
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(body):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this Nagle holds the body for the
        # peer's delayed ACK (40 ms a response).
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def main(specs):
    servers = []
    for spec in specs:
        port, path = spec.split("=", 1)
        with open(path, "rb") as handle:
            body = handle.read()
        server = ThreadingHTTPServer(("127.0.0.1", int(port)), make_handler(body))
        server.daemon_threads = True
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin or kills us


if __name__ == "__main__":
    main(sys.argv[1:])
