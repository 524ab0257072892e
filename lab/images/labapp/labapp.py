"""The lab's test workload: a small HTTP server in the image ``localhost/meshops-lab/app``.

    labapp.py serve [--port 8080]                       GET / answers who served it (JSON)
    labapp.py webhook --cert C --key K [--port 8443]    a validating admission webhook

``serve`` answers ``GET /`` with the pod, node and host name from its environment and logs one
line per request to stdout (what ``kubectl logs`` shows). ``webhook`` allows every object except
one labelled ``meshops.lab/deny: "true"``, which it denies with a message naming the label.
Standard library only: the image is a Debian root with python3 and nothing else of ours.
"""

import argparse
import json
import os
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DENY_LABEL = "meshops.lab/deny"


class Serve(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(
            {
                "pod": os.environ.get("POD_NAME", ""),
                "node": os.environ.get("NODE_NAME", ""),
                "hostname": socket.gethostname(),
                "path": self.path,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(f"labapp: {self.client_address[0]} {fmt % args}", flush=True)


class Webhook(Serve):
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        request = review.get("request") or {}
        labels = ((request.get("object") or {}).get("metadata") or {}).get("labels") or {}
        allowed = labels.get(DENY_LABEL) != "true"
        response = {"uid": request.get("uid", ""), "allowed": allowed}
        if not allowed:
            response["status"] = {"code": 403, "message": f"denied by the lab webhook: label {DENY_LABEL}=true"}
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())
        print(f"labapp: webhook {'allowed' if allowed else 'denied'} {request.get('name', '')}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="labapp.py")
    parser.add_argument("mode", choices=("serve", "webhook"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args(argv)
    handler = Serve if args.mode == "serve" else Webhook
    server = ThreadingHTTPServer(("", args.port or (8080 if args.mode == "serve" else 8443)), handler)
    if args.mode == "webhook":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"labapp: {args.mode} on port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
