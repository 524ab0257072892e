"""Bring the lab control plane up and down: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (simulated nodes), as local processes on loopback (or on one given
address, e.g. a podman network gateway, so that node containers reach the API server).

State (PIDs, ports, certificates, kubeconfigs, logs, etcd data) lives in one state directory;
``down`` stops exactly the recorded processes and removes it. A failed ``up`` stops what it
started and removes the state directory (its logs are kept under ``<lab home>/last-failed-up``).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.client
import ipaddress
import json
import os
import re
import shutil
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab.cluster import build as labbuild
from lab.cluster import paths, pki, procs
from lab.cluster.errors import LabError

SERVICE_CIDR = "10.96.0.0/16"
FIRST_SERVICE_IP = "10.96.0.1"
POD_CIDR_PREFIX = "10.244"
CLUSTER_NAME = "meshops-lab"
STATE_FILE = "lab.json"
NODE_ANNOTATION = "kwok.x-k8s.io/node"
DEFAULT_NODES = "cp1:control-plane,w1,w2"
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# --------------------------------------------------------------------------------------------
# input


@dataclass
class NodeSpec:
    name: str
    role: str  # control-plane | worker
    address: str | None = None


def parse_nodes(text: str) -> list[NodeSpec]:
    """``name[:role][@address],...``; unless a node is named control-plane, the first node
    without a role is the control plane (the others default to worker)."""
    specs: list[NodeSpec] = []
    unset: list[NodeSpec] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, address = item.partition("@")
        name, _, role = name.partition(":")
        if not _NAME_RE.match(name) or len(name) > 63:
            raise LabError(
                f"--nodes: {name!r} is not a valid node name (lower-case letters, digits, '-', '.'); "
                f"example: --nodes {DEFAULT_NODES}"
            )
        if role and role not in ("control-plane", "worker"):
            raise LabError(f"--nodes: role {role!r} of {name} must be 'control-plane' or 'worker'")
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise LabError(f"--nodes: address {address!r} of {name} is not an IP address") from exc
        specs.append(NodeSpec(name, role or "worker", address or None))
        if not role:
            unset.append(specs[-1])
    if not specs:
        raise LabError(f"--nodes is empty; example: --nodes {DEFAULT_NODES}")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LabError(f"--nodes: duplicate node names {dupes}")
    if unset and not any(s.role == "control-plane" for s in specs):
        unset[0].role = "control-plane"
    return specs


def nodes_from_inventory(path: Path) -> list[NodeSpec]:
    """Hosts of the inventory's ``control_plane`` and ``workers`` groups (YAML inventory)."""
    import yaml  # PyYAML, in the venv with ansible

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"--inventory: cannot read {path}: {exc}") from exc

    def hosts_of(group: str, node: dict | None) -> list[str] | None:
        if not isinstance(node, dict):
            return None
        for gname, g in (node.get("children") or {}).items():
            if gname == group and isinstance(g, dict):
                return list((g.get("hosts") or {}).keys())
            found = hosts_of(group, g)
            if found is not None:
                return found
        return None

    root = data.get("all", data)
    cps = hosts_of("control_plane", root) or []
    workers = hosts_of("workers", root) or []
    if not cps and not workers:
        raise LabError(f"--inventory: {path} has no hosts in groups control_plane / workers")
    text = ",".join([f"{h}:control-plane" for h in cps] + [f"{h}:worker" for h in workers if h not in cps])
    return parse_nodes(text)


# --------------------------------------------------------------------------------------------
# state


class Lab:
    """One lab cluster, identified by its state directory."""

    def __init__(self, state_dir: Path | str | None = None, echo: bool = True):
        self.state_dir = Path(state_dir) if state_dir else paths.default_state_dir()
        self.echo = echo

    # ---- small helpers
    def _say(self, msg: str) -> None:
        if self.echo:
            print(f"lab: {msg}", file=sys.stderr)

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def load(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise LabError(f"state file {self.state_file} is corrupt ({exc}); remove {self.state_dir}") from exc

    def _save(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.state_file)

    @staticmethod
    def _procs(state: dict) -> list[procs.Proc]:
        return [procs.Proc.from_json(p) for p in state.get("procs", [])]

    def kubeconfig_path(self, for_address: str | None = None) -> Path:
        state = self.load()
        if not state or not state.get("ready"):
            raise LabError(f"the lab is not up (state dir {self.state_dir}); run `lab/labctl up`")
        if not for_address or for_address == state["bind_address"]:
            return Path(state["kubeconfig"])
        if for_address in ("127.0.0.1", "localhost") and state["bind_address"] not in ("127.0.0.1",):
            raise LabError(
                f"the API server listens on {state['bind_address']} only (up --bind-address); "
                f"use `labctl kubeconfig` or --for-address {state['bind_address']}"
            )
        ip_sans, dns_sans = pki.serving_sans(pki.Pki(self.state_dir / "pki"))
        if for_address not in ip_sans and for_address not in dns_sans:
            raise LabError(
                f"--for-address {for_address} is not in the API server certificate (SANs: "
                f"{', '.join(ip_sans + dns_sans)}); bring the lab up with --bind-address or --extra-san {for_address}"
            )
        path = self.state_dir / f"kubeconfig-{for_address}"
        if not path.exists():
            write_kubeconfig(
                path,
                f"https://{_hostport(for_address, state['ports']['apiserver'])}",
                pki.Pki(self.state_dir / "pki"),
                "admin",
            )
        return path

    # ---- status
    def status(self) -> dict:
        state = self.load()
        if state is None:
            return {"state_dir": str(self.state_dir), "up": False, "processes": {}}
        plist = self._procs(state)
        alive = {p.name: procs.is_ours(p) for p in plist}
        result = {
            "state_dir": str(self.state_dir),
            "up": bool(state.get("ready")) and all(alive.values()),
            "ready": bool(state.get("ready")),
            "processes": {p.name: {"pid": p.pid, "running": alive[p.name]} for p in plist},
            "bind_address": state.get("bind_address"),
            "ports": state.get("ports"),
            "kubeconfig": state.get("kubeconfig"),
            "nodes": state.get("nodes"),
            "versions": state.get("versions"),
            "up_seconds": state.get("up_seconds"),
            "timings": state.get("timings"),
        }
        if result["up"]:
            try:
                result["readyz"] = self.api(state).get_text("/readyz")
            except Exception as exc:  # report, do not fail
                result["readyz"] = f"error: {exc}"
        return result

    def api(self, state: dict | None = None) -> Api:
        state = state or self.load()
        if not state:
            raise LabError("the lab is not up")
        return Api(state["bind_address"], state["ports"]["apiserver"], pki.Pki(self.state_dir / "pki"), "admin")

    # ---- down
    @contextlib.contextmanager
    def _locked(self):
        """One up/down at a time per state directory (a lock file next to it)."""
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir.parent / f".{self.state_dir.name}.lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._say(f"waiting for another labctl up/down on {self.state_dir}")
                fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def down(self) -> dict:
        with self._locked():
            return self._down()

    def _down(self) -> dict:
        state = self.load()
        stopped = []
        if state is not None:
            for p in reversed(self._procs(state)):
                if procs.stop(p):
                    stopped.append(p.name)
                    self._say(f"stopped {p.name} (pid {p.pid})")
        elif self.state_dir.exists() and any(self.state_dir.iterdir()):
            self._say(f"no {STATE_FILE} in {self.state_dir}; removing the directory")
        existed = self.state_dir.exists()
        if existed:
            shutil.rmtree(self.state_dir)
        return {"stopped": stopped, "removed": str(self.state_dir) if existed else None}

    # ---- up
    def up(self, *args, **kwargs) -> dict:
        """Start the lab (see ``_up``); serialised with other up/down calls on the same state."""
        with self._locked():
            return self._up(*args, **kwargs)

    def _up(
        self,
        nodes: list[NodeSpec] | None = None,
        bind_address: str = "127.0.0.1",
        apiserver_port: int = 0,
        extra_sans: list[str] | None = None,
        timeout: float = 180.0,
        real_nodes: bool = False,
        pod_prefix: str = POD_CIDR_PREFIX,
    ) -> dict:
        nodes = nodes or parse_nodes(DEFAULT_NODES)
        extra_sans = list(extra_sans or [])
        t0 = time.monotonic()

        # -- validate before anything changes
        try:
            ipaddress.ip_address(bind_address)
        except ValueError as exc:
            raise LabError(f"--bind-address {bind_address!r} is not an IP address (example: 10.89.0.1)") from exc
        for s in extra_sans:
            if not _NAME_RE.match(s):
                try:
                    ipaddress.ip_address(s)
                except ValueError as exc:
                    raise LabError(f"--extra-san {s!r} is neither an IP address nor a DNS name") from exc
        if not 0 <= apiserver_port <= 65535:
            raise LabError(f"--apiserver-port {apiserver_port} is out of range (0 = pick a free port)")

        state = self.load()
        if state is not None:
            plist = self._procs(state)
            alive = [p.name for p in plist if procs.is_ours(p)]
            if state.get("ready") and len(alive) == len(plist):
                if bool(state.get("real_nodes")) != real_nodes:
                    have_kind = "real" if state.get("real_nodes") else "kwok"
                    raise LabError(
                        f"the lab is already up with {have_kind} nodes; run `lab/labctl down` first to change that"
                    )
                if state["bind_address"] != bind_address:
                    raise LabError(
                        f"the lab is already up on {state['bind_address']}, not {bind_address}; "
                        "run `lab/labctl down` first to change the address"
                    )
                want = sorted(n.name for n in nodes)
                have = sorted(n["name"] for n in state["nodes"])
                if want != have:
                    raise LabError(f"the lab is already up with nodes {have}, not {want}; run `lab/labctl down` first")
                self._say(f"already up (state {self.state_dir})")
                return {"changed": False, "seconds": 0.0, **self.status()}
            dead = [p.name for p in plist if p.name not in alive]
            raise LabError(
                f"stale state directory {self.state_dir}: "
                + (f"recorded processes not running: {', '.join(dead)}; " if dead else "")
                + (f"still running: {', '.join(alive)}; " if alive else "")
                + ("a previous up did not finish; " if not state.get("ready") else "")
                + "run `lab/labctl down` to stop what is left and remove it"
            )
        if self.state_dir.exists() and any(self.state_dir.iterdir()):
            raise LabError(
                f"stale state directory {self.state_dir} (no {STATE_FILE}); run `lab/labctl down` "
                "to remove it, or choose another --state-dir"
            )
        procs.check_local_address(bind_address, "kube-apiserver")
        if apiserver_port and not procs.port_free(bind_address, apiserver_port):
            holder = procs.port_holder(apiserver_port)
            raise LabError(
                f"port {apiserver_port} on {bind_address} is already taken"
                + (f" by {holder}" if holder else "")
                + "; choose another with --apiserver-port (0 picks a free one) or stop what holds it",
                component="kube-apiserver",
            )

        # -- binaries (cached builds are reused; builds otherwise)
        builds = labbuild.build_all(["kube", "etcd"] + ([] if real_nodes else ["kwok"]), echo=self.echo)
        kwok_dir = None if real_nodes else Path(builds["kwok"].info["Dir"])

        started: list[procs.Proc] = []
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "schema": 1,
            "ready": False,
            "state_dir": str(self.state_dir),
            "bind_address": bind_address,
            "real_nodes": real_nodes,
            "pod_prefix": pod_prefix,
            "nodes": [n.__dict__ | {"pod_cidr": pod_cidr(i + 1, pod_prefix)} for i, n in enumerate(nodes)],
            "versions": {k: b.version for k, b in builds.items()},
            "binaries": {name: str(path) for b in builds.values() for name, path in b.binaries.items()},
            "procs": [],
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            self._start_all(state, builds, kwok_dir, nodes, bind_address, apiserver_port, extra_sans, started, timeout)
        except BaseException as exc:
            self._say("up failed; stopping what was started")
            for p in reversed(started):
                with contextlib.suppress(Exception):
                    procs.stop(p)
            keep = paths.lab_home() / "last-failed-up"
            shutil.rmtree(keep, ignore_errors=True)
            with contextlib.suppress(Exception):
                if (self.state_dir / "logs").exists():
                    shutil.copytree(self.state_dir / "logs", keep)
            shutil.rmtree(self.state_dir, ignore_errors=True)
            if isinstance(exc, LabError):
                raise LabError(f"{exc}\n(nothing left running; logs of this attempt kept in {keep})") from exc
            raise
        seconds = time.monotonic() - t0
        state["ready"] = True
        state["up_seconds"] = round(seconds, 1)
        self._save(state)
        self._say(f"up in {seconds:.1f}s; kubeconfig: {state['kubeconfig']}")
        return {"changed": True, "seconds": seconds, **self.status()}

    def _start_all(self, state, builds, kwok_dir, nodes, bind, apiserver_port, extra_sans, started, timeout):
        sd = self.state_dir
        logs = sd / "logs"
        bins = {name: str(path) for b in builds.values() for name, path in b.binaries.items()}
        deadline = time.monotonic() + timeout
        t_start = time.monotonic()

        def mark(label: str) -> None:  # seconds since the start of the bring-up, kept in lab.json
            state.setdefault("timings", {})[label] = round(time.monotonic() - t_start, 2)

        def record(p: procs.Proc) -> None:
            started.append(p)
            state["procs"] = [x.to_json() for x in started]
            self._save(state)

        # ports: explicit apiserver port or free ones; the rest always picked
        taken: set[int] = set()
        api_port = apiserver_port or procs.free_port(bind, taken)
        taken.add(api_port)
        ports = {"apiserver": api_port}
        simulated = () if kwok_dir is None else ("kwok",)
        for name in ("etcd_client", "etcd_peer", "controller_manager", "scheduler", *simulated):
            ports[name] = procs.free_port("127.0.0.1", taken)
            taken.add(ports[name])
        state["ports"] = ports
        self._save(state)

        # certificates
        ip_sans = ["127.0.0.1", bind, FIRST_SERVICE_IP] + [s for s in extra_sans if _is_ip(s)]
        dns_sans = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] + [s for s in extra_sans if not _is_ip(s)]
        cert = pki.generate(sd / "pki", ip_sans=ip_sans, dns_sans=dns_sans)
        server = f"https://{_hostport(bind, api_port)}"
        if kwok_dir is None:  # real kubelets: the API server's client identity towards them
            pki.issue(cert, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
        kc = {}
        for ident in ("admin", "controller-manager", "scheduler", *simulated):
            kc[ident] = sd / ("kubeconfig" if ident == "admin" else f"kubeconfigs/{ident}.kubeconfig")
            write_kubeconfig(kc[ident], server, cert, ident)
        state["kubeconfig"] = str(kc["admin"])

        # etcd
        etcd_url = f"http://127.0.0.1:{ports['etcd_client']}"
        peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
        self._say(f"starting etcd on {etcd_url}")
        etcd = procs.start(
            "etcd",
            [
                bins["etcd"],
                "--name=lab",
                f"--data-dir={sd / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=lab={peer_url}",
                "--initial-cluster-state=new",
                "--log-level=warn",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=2147483648",
            ],
            logs / "etcd.log",
        )
        record(etcd)
        _wait(
            lambda: _http_get_ok("127.0.0.1", ports["etcd_client"], "/health", b'"health":"true"'),
            etcd,
            deadline,
            "etcd /health",
        )
        mark("etcd /health")

        # kube-apiserver. With kwok nodes its "cluster" egress (admission webhooks, aggregated APIs,
        # the service and node proxies: traffic to Service, Pod and Node addresses) goes to a Unix
        # socket nobody listens on: simulated pods serve nothing, and these addresses would otherwise
        # be routed off this machine. Such calls fail at once, naming the socket. With real nodes it
        # goes direct: the host routes every pod CIDR to its node, and webhooks and aggregated APIs
        # are dialled at their endpoints (pod IPs), since the host runs no kube-proxy for ClusterIPs.
        egress = sd / "egress-selector.yaml"
        if kwok_dir is None:
            cluster_egress = [
                "--enable-aggregator-routing=true",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={cert.cert('apiserver-kubelet-client')}",
                f"--kubelet-client-key={cert.key('apiserver-kubelet-client')}",
                "--enable-admission-plugins=NodeRestriction",
            ]
        else:
            cluster_egress = [f"--egress-selector-config-file={egress}"]
        egress.write_text(
            json.dumps(
                {
                    "apiVersion": "apiserver.k8s.io/v1beta1",
                    "kind": "EgressSelectorConfiguration",
                    "egressSelections": [
                        {
                            "name": "cluster",
                            "connection": {
                                "proxyProtocol": "HTTPConnect",
                                "transport": {"uds": {"udsName": str(sd / "no-cluster-network.sock")}},
                            },
                        }
                    ],
                },
                indent=2,
            )
            + "\n"
        )
        self._say(f"starting kube-apiserver on {server}")
        loopback = ipaddress.ip_address(bind).is_loopback
        api = procs.start(
            "kube-apiserver",
            [
                bins["kube-apiserver"],
                f"--etcd-servers={etcd_url}",
                f"--bind-address={bind}",
                f"--secure-port={api_port}",
                f"--advertise-address={bind}",
                # a loopback address cannot be an Endpoints address: no reconciler then
                *(["--endpoint-reconciler-type=none"] if loopback else []),
                f"--tls-cert-file={cert.cert('apiserver')}",
                f"--tls-private-key-file={cert.key('apiserver')}",
                f"--client-ca-file={cert.ca}",
                f"--service-account-key-file={cert.sa_pub}",
                f"--service-account-signing-key-file={cert.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                *cluster_egress,
                "--profiling=false",
                "--v=1",
            ],
            logs / "kube-apiserver.log",
        )
        record(api)
        admin = Api(bind, api_port, cert, "admin")
        _wait(lambda: admin.get_text("/readyz", quiet=True) == "ok", api, deadline, "kube-apiserver /readyz")
        mark("kube-apiserver /readyz")

        # controller-manager, scheduler, kwok
        self._say("starting kube-controller-manager, kube-scheduler" + ("" if kwok_dir is None else ", kwok"))
        cm = procs.start(
            "kube-controller-manager",
            [
                bins["kube-controller-manager"],
                f"--kubeconfig={kc['controller-manager']}",
                f"--authentication-kubeconfig={kc['controller-manager']}",
                f"--authorization-kubeconfig={kc['controller-manager']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['controller_manager']}",
                f"--root-ca-file={cert.ca}",
                f"--service-account-private-key-file={cert.sa_key}",
                f"--cluster-signing-cert-file={cert.ca}",
                f"--cluster-signing-key-file={cert.key('ca')}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--leader-elect=false",
                "--controllers=*",
                "--v=1",
            ],
            logs / "kube-controller-manager.log",
        )
        record(cm)
        sched = procs.start(
            "kube-scheduler",
            [
                bins["kube-scheduler"],
                f"--kubeconfig={kc['scheduler']}",
                f"--authentication-kubeconfig={kc['scheduler']}",
                f"--authorization-kubeconfig={kc['scheduler']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['scheduler']}",
                "--leader-elect=false",
                "--v=1",
            ],
            logs / "kube-scheduler.log",
        )
        record(sched)
        if kwok_dir is None:
            self._wait_controllers(state, admin, cm, sched, ports, nodes, started, deadline, mark, real_nodes=True)
            return
        kwok_conf = sd / "kwok.yaml"
        kwok_conf.write_text(kwok_stages(kwok_dir))
        kwok = procs.start(
            "kwok",
            [
                bins["kwok"],
                f"--config={kwok_conf}",
                f"--kubeconfig={kc['kwok']}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{ports['kwok']}",
                "--node-lease-duration-seconds=40",
                # InternalIP of nodes created without an address: the host the lab runs on
                f"--node-ip={bind}",
                f"--cidr={state['pod_prefix']}.0.0/16",
            ],
            logs / "kwok.log",
        )
        record(kwok)
        _wait(lambda: _http_get_ok("127.0.0.1", ports["kwok"], "/healthz", b"ok"), kwok, deadline, "kwok /healthz")
        mark("kwok /healthz")
        self._wait_controllers(state, admin, cm, sched, ports, nodes, started, deadline, mark, real_nodes=False)
        self._say(f"nodes {', '.join(n.name for n in nodes)} created; waiting for Ready")

        def nodes_ready() -> bool:
            items = admin.get_json("/api/v1/nodes").get("items", [])
            ready = {
                i["metadata"]["name"]
                for i in items
                for c in i.get("status", {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            }
            return all(n.name in ready for n in nodes)

        _wait(nodes_ready, kwok, deadline, "nodes Ready (set by kwok)", others=started)
        mark("nodes Ready (set by kwok)")
        # the service-account controller is what lets pods be created in a namespace
        _wait(
            lambda: admin.exists("/api/v1/namespaces/default/serviceaccounts/default"),
            cm,
            deadline,
            "default ServiceAccount (kube-controller-manager)",
            others=started,
        )
        mark("default ServiceAccount (kube-controller-manager)")

    def _wait_controllers(self, state, admin, cm, sched, ports, nodes, started, deadline, mark, real_nodes):
        """Controller-manager and scheduler healthy, then the Node objects created (with their pod
        CIDRs and roles; real kubelets then register into them); with real nodes also wait for the
        default ServiceAccount here, since the nodes' readiness is the caller's to wait for."""
        _wait(
            lambda: _https_get_ok("127.0.0.1", ports["controller_manager"], "/healthz"),
            cm,
            deadline,
            "kube-controller-manager /healthz",
        )
        mark("kube-controller-manager /healthz")
        _wait(
            lambda: _https_get_ok("127.0.0.1", ports["scheduler"], "/healthz"),
            sched,
            deadline,
            "kube-scheduler /healthz",
        )
        mark("kube-scheduler /healthz")
        version = state["versions"]["kube"]
        for i, n in enumerate(nodes):
            manifest = node_manifest(n, i + 1, version, simulated=not real_nodes, pod_prefix=state["pod_prefix"])
            admin.create("/api/v1/nodes", manifest)
        if real_nodes:
            _wait(
                lambda: admin.exists("/api/v1/namespaces/default/serviceaccounts/default"),
                cm,
                deadline,
                "default ServiceAccount (kube-controller-manager)",
                others=started,
            )
            mark("default ServiceAccount (kube-controller-manager)")


# --------------------------------------------------------------------------------------------
# kwok configuration and node objects


def kwok_stages(kwok_dir: Path) -> str:
    """kwok's own default stages (node fast + heartbeat with lease, pod fast), read from the
    kwok module tree in the Go module cache; the same set kwokctl uses by default."""
    parts = []
    for sub in ("node/fast", "node/heartbeat-with-lease", "pod/fast"):
        d = kwok_dir / "kustomize" / "stage" / sub
        files = sorted(d.glob("*.yaml"))
        files = [f for f in files if f.name != "kustomization.yaml"]
        if not files:
            raise LabError(f"no stage files in {d}", component="kwok")
        parts += [f.read_text() for f in files]
    return "\n---\n".join(parts)


def pod_cidr(index: int, prefix: str = POD_CIDR_PREFIX) -> str:
    return f"{prefix}.{index}.0/24"


def node_manifest(
    n: NodeSpec, index: int, kube_version: str, simulated: bool = True, pod_prefix: str = POD_CIDR_PREFIX
) -> dict:
    """The Node object of a lab node: for kwok the whole node (status included); for a real
    kubelet the parts it may not set itself under NodeRestriction (role labels, taint, pod CIDR)."""
    labels = {
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "meshops.istio/lab": "true",
    }
    if simulated:
        labels["type"] = "kwok"
    taints = []
    if n.role == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = ""
        taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    else:
        labels["node-role.kubernetes.io/worker"] = ""
    cidr = pod_cidr(index, pod_prefix)
    spec = {"podCIDR": cidr, "podCIDRs": [cidr], "taints": taints}
    if not simulated:
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n.name, "labels": labels}, "spec": spec}
    status: dict = {
        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        "nodeInfo": {
            "kubeletVersion": kube_version,
            "operatingSystem": "linux",
            "architecture": "amd64",
            "containerRuntimeVersion": "kwok://simulated",
        },
    }
    if n.address:
        status["addresses"] = [{"type": "InternalIP", "address": n.address}, {"type": "Hostname", "address": n.name}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": n.name,
            "labels": labels,
            "annotations": {NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": spec,
        "status": status,
    }


# --------------------------------------------------------------------------------------------
# kubeconfig and a minimal API client (stdlib only, so `up` needs no Kubernetes library)


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, cert: pki.Pki, ident: str) -> None:
    """A self-contained kubeconfig (certificates embedded, so it can be copied into a node)."""
    conf = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority-data": _b64(cert.ca)}}
        ],
        "users": [
            {
                "name": f"{CLUSTER_NAME}-{ident}",
                "user": {"client-certificate-data": _b64(cert.cert(ident)), "client-key-data": _b64(cert.key(ident))},
            }
        ],
        "contexts": [
            {
                "name": CLUSTER_NAME if ident == "admin" else f"{CLUSTER_NAME}-{ident}",
                "context": {"cluster": CLUSTER_NAME, "user": f"{CLUSTER_NAME}-{ident}"},
            }
        ],
        "preferences": {},
    }
    conf["current-context"] = conf["contexts"][0]["name"]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        try:
            import yaml

            yaml.safe_dump(conf, fh, sort_keys=False)
        except ImportError:
            json.dump(conf, fh, indent=2)


class Api:
    """Just enough of the Kubernetes REST API for bring-up (readyz, create, get)."""

    def __init__(self, host: str, port: int, cert: pki.Pki, ident: str):
        self.host, self.port = host, port
        self.ctx = ssl.create_default_context(cafile=str(cert.ca))
        self.ctx.load_cert_chain(str(cert.cert(ident)), str(cert.key(ident)))

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def get_text(self, path: str, quiet: bool = False) -> str:
        try:
            status, data = self.request("GET", path)
        except OSError:
            if quiet:
                return ""
            raise
        return data.decode(errors="replace").strip() if status == 200 else ("" if quiet else f"HTTP {status}")

    def get_json(self, path: str) -> dict:
        status, data = self.request("GET", path)
        if status != 200:
            raise LabError(f"GET {path}: HTTP {status}: {data[:300]!r}")
        return json.loads(data)

    def exists(self, path: str) -> bool:
        return self.request("GET", path)[0] == 200

    def create(self, path: str, obj: dict) -> None:
        status, data = self.request("POST", path, obj)
        if status not in (200, 201, 409):
            raise LabError(f"POST {path}: HTTP {status}: {data[:300]!r}")


def _http_get_ok(host: str, port: int, path: str, expect: bytes) -> bool:
    try:
        conn = http.client.HTTPConnection(host, port, timeout=3)
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status == 200 and expect in resp.read()
    except OSError:
        return False


def _https_get_ok(host: str, port: int, path: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed serving cert of a loopback health endpoint
    try:
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=3)
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status == 200 and resp.read().strip() == b"ok"
    except OSError:
        return False


def _wait(check, proc: procs.Proc, deadline: float, what: str, others: list[procs.Proc] | None = None) -> None:
    """Poll ``check`` until true; fail fast (with its log) if ``proc`` (or any of ``others``) exits."""
    delay = 0.05
    while True:
        for p in [proc, *(others or [])]:
            if procs.exited(p):
                raise LabError(f"exited while waiting for {what}", component=p.name, log_tail=procs.tail(p.log))
        try:
            if check():
                return
        except (OSError, LabError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise LabError(f"timed out waiting for {what}", component=proc.name, log_tail=procs.tail(proc.log))
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
