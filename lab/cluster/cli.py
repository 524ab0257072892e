"""``lab/labctl``: build | up | down | status | kubeconfig | bundle | env."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from lab.cluster import build as labbuild
from lab.cluster import paths
from lab.cluster.cluster import DEFAULT_NODES, Lab, nodes_from_inventory, parse_nodes
from lab.cluster.errors import LabError


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"lab state directory (default: $MESHOPS_LAB_STATE or {paths.default_state_dir()})",
    )
    p = argparse.ArgumentParser(
        prog="labctl",
        description="Lab Kubernetes control plane and istioctl, built from pinned Go modules.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("build", parents=[common], help="compile the lab binaries (cached)")
    b.add_argument("--force", action="store_true", help="rebuild even if a cached build exists")
    b.add_argument("--jobs", type=int, default=None, help="go build -p (default $LAB_GO_JOBS or 2)")
    b.add_argument(
        "--only",
        default=",".join(labbuild.BUILD_ORDER),
        help=f"comma-separated components (default: {','.join(labbuild.BUILD_ORDER)})",
    )
    b.add_argument("--json", action="store_true", help="print the result as JSON")

    lab_opt = argparse.ArgumentParser(add_help=False)
    lab_opt.add_argument("--lab", default="meshops-lab", help="which lab of real nodes (default meshops-lab)")
    u = sub.add_parser(
        "up",
        parents=[common, lab_opt],
        help="start the lab: node containers running Kubernetes (or --kwok: simulated nodes); no-op when up",
    )
    u.add_argument(
        "--kwok",
        action="store_true",
        help="only the control plane, on loopback (or --bind-address), with kwok's simulated nodes: no "
        "containers, no pods that run (implied by --state-dir, --nodes, --inventory, --bind-address, ...)",
    )
    u.add_argument("--proxy-mode", default="iptables", help="kube-proxy mode of real nodes: iptables or nftables")
    u.add_argument(
        "--nodes",
        default=None,
        help=f"name[:role][@address],... (default {DEFAULT_NODES}; without roles the first is the control plane)",
    )
    u.add_argument(
        "--inventory", type=Path, default=None, help="take node names from an inventory's control_plane/workers groups"
    )
    u.add_argument("--bind-address", default="127.0.0.1", help="address the API server listens on (default 127.0.0.1)")
    u.add_argument("--apiserver-port", type=int, default=0, help="API server port (default 0: a free port)")
    u.add_argument("--extra-san", action="append", default=[], help="extra IP/DNS name for the API server certificate")
    u.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness (default 180)")
    u.add_argument("--json", action="store_true")

    sub.add_parser("down", parents=[common, lab_opt], help="stop what up started, leave nothing behind")

    sub.add_parser("images", parents=[lab_opt], help="the lab's images: built (cached) and loaded in each node")

    s = sub.add_parser("status", parents=[common, lab_opt], help="show the lab state (exit 0 when up, 3 when not)")
    s.add_argument("--json", action="store_true")

    k = sub.add_parser("kubeconfig", parents=[common, lab_opt], help="print the path of the admin kubeconfig")
    k.add_argument("--for-address", default=None, help="a kubeconfig using this server address (must be in the SANs)")

    bu = sub.add_parser("bundle", parents=[common], help="make the release-layout istio bundle; print its directory")
    bu.add_argument("--force", action="store_true")
    bu.add_argument("--json", action="store_true")

    sub.add_parser("env", parents=[common, lab_opt], help='print shell exports for the lab (eval "$(lab/labctl env)")')
    return p


def _bin_dir(echo: bool) -> Path:
    return labbuild.bin_set(labbuild.build_all(echo=echo))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except LabError as exc:
        print(f"labctl {args.cmd}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into head & co.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"labctl {args.cmd}: interrupted", file=sys.stderr)
        return 130


def _run(args) -> int:
    from lab import stack

    args.state_dir = getattr(args, "state_dir", None)
    args.lab = getattr(args, "lab", "meshops-lab")
    lab = Lab(args.state_dir)
    real = None  # the control plane of the lab of real nodes, when that lab is up
    if args.cmd != "build" and args.state_dir is None:
        candidate = Lab(stack.lab_home(args.lab) / "cluster")
        if candidate.load() is not None:
            real = candidate
    if args.cmd in ("status", "kubeconfig", "env") and real is not None:
        lab = real
    if args.cmd == "build":
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in labbuild.COMPONENTS]
        if unknown:
            raise LabError(f"--only: unknown component(s) {unknown}; choose from {labbuild.BUILD_ORDER}")
        builds = {n: labbuild.build(n, force=args.force, jobs=args.jobs) for n in names}
        bindir = labbuild.bin_set(labbuild.build_all(echo=False)) if set(names) == set(labbuild.BUILD_ORDER) else None
        if args.json:
            print(
                json.dumps(
                    {
                        n: {
                            "version": b.version,
                            "directory": str(b.directory),
                            "cached": b.cached,
                            "seconds": b.seconds,
                            "binaries": {k: str(v) for k, v in b.binaries.items()},
                        }
                        for n, b in builds.items()
                    }
                    | ({"bin_dir": str(bindir)} if bindir else {}),
                    indent=2,
                )
            )
        else:
            for n, b in builds.items():
                how = "cached" if b.cached else f"built in {b.seconds:.0f}s"
                print(f"{n:9} {b.version:45} {how:16} {b.directory}")
            if bindir:
                print(f"bin dir   {bindir}")
        return 0
    # --state-dir, --nodes, --inventory, --bind-address, --extra-san, --apiserver-port shape a
    # control plane of its own with kwok nodes; a lab of real nodes is cp1, w1, w2 of
    # inventories/lab on its own podman network.
    kwok_options = args.cmd == "up" and (
        args.nodes or args.inventory or args.bind_address != "127.0.0.1" or args.extra_san or args.apiserver_port
    )
    if args.cmd == "up" and not (args.kwok or args.state_dir or kwok_options):
        res = stack.up(args.lab, args.proxy_mode)
        print(json.dumps(res, indent=2, default=str) if args.json else res["lab_kubeconfig"])
        return 0
    if args.cmd == "images":
        return _images(stack, args.lab)
    if args.cmd == "up":
        if args.nodes and args.inventory:
            raise LabError("give either --nodes or --inventory, not both")
        nodes = nodes_from_inventory(args.inventory) if args.inventory else parse_nodes(args.nodes or DEFAULT_NODES)
        res = lab.up(nodes, args.bind_address, args.apiserver_port, args.extra_san, args.timeout)
        if args.json:
            print(json.dumps(res, indent=2, default=str))
        else:
            print(res["kubeconfig"])
        return 0
    if args.cmd == "down":
        res = lab.down()
        print(f"stopped: {', '.join(res['stopped']) or 'nothing'}; removed: {res['removed'] or 'nothing'}")
        if args.state_dir is None:
            res = stack.down(args.lab)
            print(
                f"{args.lab}: stopped: {', '.join(res['cluster']['stopped']) or 'nothing'}; "
                f"containers removed: {', '.join(res['containers']) or 'none'}; "
                f"host routes removed: {', '.join(res['host_routes']) or 'none'}"
            )
        return 0
    if args.cmd == "status":
        st = lab.status()
        if args.json:
            print(json.dumps(st, indent=2))
        else:
            print(f"state dir  {st['state_dir']}")
            print(f"up         {st['up']}")
            for name, p in st.get("processes", {}).items():
                print(f"  {name:24} pid {p['pid']:<8} {'running' if p['running'] else 'NOT RUNNING'}")
            if st.get("kubeconfig"):
                print(f"kubeconfig {st['kubeconfig']}")
                print(f"api        https://{st['bind_address']}:{st['ports']['apiserver']}  readyz={st.get('readyz')}")
                print(f"nodes      {', '.join(n['name'] + '(' + n['role'] + ')' for n in st['nodes'])}")
        return 0 if st["up"] else 3
    if args.cmd == "kubeconfig":
        print(lab.kubeconfig_path(args.for_address))
        return 0
    if args.cmd == "bundle":
        from lab.cluster.bundle import make_bundle

        b = make_bundle(force=args.force)
        print(json.dumps(b.as_dict(), indent=2) if args.json else b.directory)
        return 0
    if args.cmd == "env":
        from lab.cluster.bundle import make_bundle

        bindir = _bin_dir(echo=True)
        b = make_bundle()
        lines = [
            f"export LAB_BIN_DIR={shlex.quote(str(bindir))}",
            f'export PATH={shlex.quote(str(bindir))}:"$PATH"',
            f"export LAB_ISTIO_VERSION={shlex.quote(b.version)}",
            f"export LAB_BUNDLE_DIR={shlex.quote(str(b.directory))}",
            f"export LAB_BUNDLE_ARCHIVE={shlex.quote(str(b.archive))}",
        ]
        st = lab.status()
        if st["up"]:
            lines.append(f"export KUBECONFIG={shlex.quote(st['kubeconfig'])}")
        else:
            lines.append(f"# the lab cluster is not up (state dir {st['state_dir']}): run lab/labctl up for KUBECONFIG")
        print("\n".join(lines))
        return 0
    raise AssertionError(args.cmd)


def _images(stack, lab_name: str) -> int:
    """What is built (the cache) and which node's containerd has it."""
    from lab.images import catalog
    from lab.nodes import agents
    from lab.nodes.containers import KUBE_NODES
    from lab.nodes.containers import Lab as NodeLab
    from lab.nodes.containers import status as node_status

    node_lab = NodeLab(lab_name)
    running = [n for n, s in node_status(node_lab)["nodes"].items() if n in KUBE_NODES and s["state"] == "running"]
    ctr = None
    if running:
        build = labbuild.cached_build("containerd")
        ctr = build and f"{stack.lab_nodes.BIN_MOUNT}/{build.directory.name}/ctr"
    for name, image in catalog.images().items():
        built = catalog.cached(name)
        where = []
        if built and ctr:
            where = [n for n in running if catalog.loaded(agents.node_exec(node_lab.prefix + n), ctr, built)]
        state = f"built {built.image_id[:19]} {built.size >> 20} MiB" if built else "not built"
        print(f"{name:45} {state:36} loaded: {', '.join(where) or '-'}")
        print(f"{'':45} {image.about}")
    return 0
