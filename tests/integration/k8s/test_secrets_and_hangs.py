"""No secret of any connection option ever shows, at -vvvv or in the target's syslog, and a
Kubernetes API that never answers fails the task in time with the server named.

The cluster-facing modules run through ``ansible-playbook -vvvv`` on localhost against two
stand-in API servers on loopback (a real API server cannot be made to hang or refuse on demand):
one that accepts connections and never answers, and one that answers 401 to everything. Every
secret of every cluster-facing option is a fresh random value; the test searches the whole
output and everything the modules sent to syslog. The syslog is captured without touching the
machine: the playbook runs in a private mount namespace (``unshare --mount``) whose ``/dev`` is a
fresh tmpfs where ``/dev/log`` is a socket this test reads.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import yaml

from tests.support.loopback_api import SilentServer, UnauthorizedServer

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare for a private /dev/log"
)


def fresh_secret(label):
    return f"{label}-{uuid.uuid4().hex}"


@pytest.fixture
def secrets():
    key_bytes = os.urandom(48)
    cert_bytes = os.urandom(48)
    return {
        "kubeconfig token": fresh_secret("kctoken"),
        "kubeconfig password": fresh_secret("kcpassword"),
        "kubeconfig client-key-data": base64.b64encode(key_bytes).decode(),
        "kubeconfig client-certificate-data": base64.b64encode(cert_bytes).decode(),
        "kubeconfig auth-provider id-token": fresh_secret("idtoken"),
        "api_key": fresh_secret("apikey"),
        "password": fresh_secret("password"),
        "proxy_headers.proxy_basic_auth": "proxyuser:" + fresh_secret("proxypw"),
        "proxy_headers.basic_auth": "basicuser:" + fresh_secret("basicpw"),
        "kubeconfig token in one-line JSON text": fresh_secret("jsontoken"),
        "password in the host URL": fresh_secret("hostpw"),
        "password in the proxy URL": fresh_secret("proxypw"),
        "password in the kubeconfig proxy-url": fresh_secret("kcproxypw"),
    }


def inline_kubeconfig(server, secrets, with_token=True):
    user = {
        "client-key-data": secrets["kubeconfig client-key-data"],
        "client-certificate-data": secrets["kubeconfig client-certificate-data"],
        "username": "admin",
        "password": secrets["kubeconfig password"],
    }
    if with_token:
        user["token"] = secrets["kubeconfig token"]
    else:
        user = {"auth-provider": {"name": "oidc", "config": {"id-token": secrets["kubeconfig auth-provider id-token"]}}}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "loopback",
        "clusters": [{"name": "loopback", "cluster": {"server": server}}],
        "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "loopback-admin"}}],
        "users": [{"name": "loopback-admin", "user": user}],
    }


def with_password(url, password):
    return url.replace("://", f"://user:{password}@", 1)


def tasks_for(server, secrets):
    """Every cluster-facing module, with every secret option set, against ``server``."""
    one_line = inline_kubeconfig(server, secrets)
    one_line["users"][0]["user"] = {"token": secrets["kubeconfig token in one-line JSON text"]}
    proxied = inline_kubeconfig(server, secrets)
    # A proxy that refuses at once: the error names the proxy, and the password must not show.
    proxied["clusters"][0]["cluster"]["proxy-url"] = with_password(
        "http://127.0.0.1:9", secrets["password in the kubeconfig proxy-url"]
    )
    auth_variants = [
        {"kubeconfig": inline_kubeconfig(server, secrets)},
        {"kubeconfig": inline_kubeconfig(server, secrets, with_token=False)},
        {
            "host": server,
            "api_key": secrets["api_key"],
            "username": "admin",
            "password": secrets["password"],
            "proxy_headers": {
                "proxy_basic_auth": secrets["proxy_headers.proxy_basic_auth"],
                "basic_auth": secrets["proxy_headers.basic_auth"],
            },
        },
        # Kubeconfig content as one line of text (e.g. from to_json): refused, never shown.
        {"kubeconfig": json.dumps(one_line)},
        {
            "host": with_password(server, secrets["password in the host URL"]),
            "proxy": with_password("http://127.0.0.1:9", secrets["password in the proxy URL"]),
        },
        {"kubeconfig": proxied},
    ]
    modules = [
        (
            "meshops.istio.istio_verify",
            {"checks": ["control_plane"], "control_plane": {"compare_istioctl_version": False}},
        ),
        ("meshops.istio.istio_sidecar_injection", {"mode": "namespace", "namespaces": ["jiuxi"]}),
    ]
    tasks = []
    for module, options in modules:
        for index, auth in enumerate(auth_variants):
            tasks.append(
                {
                    "name": f"{module} auth variant {index}",
                    module: dict(options, request_timeout=2, **auth),
                    "ignore_errors": True,
                    "register": f"result_{len(tasks)}",
                }
            )
    tasks.append(
        {
            "name": "Show every result",
            "ansible.builtin.debug": {"var": "vars | dict2items | selectattr('key', 'match', 'result_') | list"},
        }
    )
    return tasks


class SyslogCapture:
    """A datagram socket standing in for /dev/log inside the playbook's mount namespace."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self):
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(1 << 20).decode("utf-8", "replace"))
            except OSError:
                continue

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


# Inside the new mount namespace: keep the real /dev reachable, cover /dev with a tmpfs, bring
# back the few device nodes a playbook needs, and put the capture socket at /dev/log.
PRIVATE_DEV = r"""
set -eu
mount --make-rprivate /
mkdir -p "$T/realdev"
mount --rbind /dev "$T/realdev"
mount -t tmpfs tmpfs /dev
for node in null zero full random urandom tty; do
  touch "/dev/$node"; mount --bind "$T/realdev/$node" "/dev/$node"
done
mkdir /dev/pts /dev/shm
mount --rbind "$T/realdev/pts" /dev/pts
mount -t tmpfs tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd
touch /dev/log; mount --bind "$T/log" /dev/log
exec "$@"
"""


@pytest.mark.parametrize("server_kind", ["silent", "unauthorized"])
def test_no_secret_in_output_or_syslog(tmp_path, secrets, server_kind):
    server_class = SilentServer if server_kind == "silent" else UnauthorizedServer
    with server_class() as server, SyslogCapture(str(tmp_path / "log")) as syslog:
        playbook = [
            {
                "name": "cluster-facing modules",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": tasks_for(server.url, secrets),
            }
        ]
        (tmp_path / "playbook.yml").write_text(yaml.safe_dump(playbook))
        env = dict(
            os.environ,
            T=str(tmp_path),
            ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCALHOST_WARNING="0",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            K8S_AUTH_KUBECONFIG="",
        )
        started = time.monotonic()
        completed = subprocess.run(
            [
                "unshare",
                "--mount",
                "sh",
                "-c",
                PRIVATE_DEV,
                "sh",
                os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                "-vvvv",
                "-i",
                "localhost,",
                "-c",
                "local",
                str(tmp_path / "playbook.yml"),
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        elapsed = time.monotonic() - started
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    logged = "\n".join(syslog.messages)

    # The test can fail: the modules ran, failed as expected, and their invocations reached syslog.
    assert output.count("FAILED!") == 12, output[-3000:]
    assert logged.count("Invoked with") >= 12, logged[:2000]
    assert "NOT_LOGGING_PARAMETER" in logged
    assert output.count("kubeconfig is text (content such as YAML or JSON, not a path; not shown)") >= 2
    if server_kind == "silent":
        assert output.count(f"the Kubernetes API at {server.url} did not answer within 2 s") >= 6
        # Tasks of one 2 s timeout each (plus Ansible's own time), not minutes of retries.
        assert elapsed < 150
    else:
        assert output.count(f"the Kubernetes API at {server.url} refused discovery") >= 6
        # What is not a credential is still shown: the server of an inline kubeconfig, the context name.
        assert "loopback-admin" in output

    for name, value in secrets.items():
        for where, text in (("-vvvv output", output), ("syslog", logged)):
            assert value not in text, f"the {name} secret shows in the {where}"
        for part in value.split(":"):
            if len(part) > 8:
                assert part not in output and part not in logged, f"part of the {name} secret shows"
