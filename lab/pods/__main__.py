"""CLI: start and stop lab pods, e.g. inside a molecule node container.

    python -m lab.pods up --pods 3 --state /run/meshops-podlab.json [--node current]
        [--node-index 1] [--legacy 1] [--broken missing_uid_exemption] [--no-sidecar 1]
        [--gateway] [--app nginx|python]
    python -m lab.pods down --state /run/meshops-podlab.json
    python -m lab.pods envoy-path

``up`` prints the state (JSON) and writes it to --state; the pods keep running after it exits.
``down`` kills exactly the processes recorded there (pid and start time must both match) and
deletes the namespaces.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from lab.pods.envoy import find_envoy_binary
from lab.pods.lab import BROKEN_VARIANTS, CaptureOptions, PodLab


def _up(args) -> int:
    if os.path.exists(args.state):
        print(f"state file {args.state} exists: run 'down --state {args.state}' first", file=sys.stderr)
        return 2
    start = time.monotonic()
    lab = PodLab(node=args.node, node_index=args.node_index, node_backend=args.node_backend)
    try:
        specs = []
        for i in range(args.pods):
            specs.append({"name": f"web-{i}", "labels": {"app": "web"}, "app": args.app})
        for i in range(args.legacy):
            specs.append(
                {
                    "name": f"legacy-{i}",
                    "labels": {"app": "legacy"},
                    "app": args.app,
                    "capture": CaptureOptions(backend="legacy"),
                }
            )
        for variant in args.broken:
            specs.append(
                {
                    "name": f"broken-{variant.replace('_', '-')}",
                    "labels": {"app": "broken"},
                    "app": args.app,
                    "capture": CaptureOptions(broken=variant),
                }
            )
        for i in range(args.no_sidecar):
            specs.append({"name": f"plain-{i}", "labels": {"app": "plain"}, "app": args.app, "envoy": False})
        if specs:
            lab.add_pods(specs)
        if args.gateway:
            web = [p for p in lab.pods.values() if p.labels.get("app") == "web"]
            target = None
            if web:
                svc = lab.add_service("web", port=80, selector={"app": "web"})
                target = (svc["cluster_ip"], 80)
            gw = lab.add_pod(
                "istio-ingressgateway-0",
                namespace="istio-system",
                app_port=8080,
                gateway=True,
                app="none",
                labels={"app": "istio-ingressgateway", "istio": "ingressgateway"},
                gateway_target=target,
            )
            lab.add_service(
                "istio-ingressgateway",
                "istio-system",
                port=80,
                target_port=8080,
                pods=[gw.name],
                node_port=args.node_port,
            )
        state = lab.to_state()
        state["up_seconds"] = round(time.monotonic() - start, 3)
        with open(args.state, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
    except BaseException:
        lab.close()
        raise
    summary = {
        "state": args.state,
        "up_seconds": state["up_seconds"],
        "node_ip": lab.node_ip,
        "pods": {name: {"ip": p.ip, "netns": p.netns_path, "pids": p.pids} for name, p in lab.pods.items()},
    }
    print(json.dumps(summary, indent=1, sort_keys=True))
    return 0


def _down(args) -> int:
    if not os.path.exists(args.state):
        print(f"no state file {args.state}: nothing to do")
        return 0
    with open(args.state, encoding="utf-8") as handle:
        state = json.load(handle)
    lab = PodLab.from_state(state)
    lab.close()
    os.unlink(args.state)
    print(json.dumps({"state": args.state, "down_seconds": round(lab.timings.get("down", 0.0), 3)}))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.pods", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start pods and write the state file")
    up.add_argument("--state", required=True)
    up.add_argument("--pods", type=int, default=1, help="healthy sidecar pods (nft backend)")
    up.add_argument("--legacy", type=int, default=0, help="extra sidecar pods on the legacy backend")
    up.add_argument(
        "--broken",
        action="append",
        default=[],
        choices=BROKEN_VARIANTS,
        help="one extra pod per broken variant (repeatable)",
    )
    up.add_argument("--no-sidecar", type=int, default=0, help="extra pods without Envoy")
    up.add_argument("--gateway", action="store_true", help="ingress gateway pod + NodePort + ClusterIP service")
    up.add_argument("--node-port", type=int, default=30080)
    up.add_argument("--node", choices=("netns", "current"), default="netns")
    up.add_argument("--node-index", type=int, default=1)
    up.add_argument("--node-backend", choices=("nft", "legacy"), default="nft")
    up.add_argument("--app", choices=("nginx", "python"), default="nginx")
    down = sub.add_parser("down", help="stop what 'up' started")
    down.add_argument("--state", required=True)
    sub.add_parser("envoy-path", help="print the path of the real Envoy binary the lab runs")
    args = parser.parse_args(argv)
    if args.command == "envoy-path":
        print(find_envoy_binary())
        return 0
    return _up(args) if args.command == "up" else _down(args)


if __name__ == "__main__":
    sys.exit(main())
