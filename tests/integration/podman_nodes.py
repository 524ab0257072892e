"""podman and the systemd node image for tests that start their own node containers."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_IMAGE = os.environ.get("MESHOPS_NODE_IMAGE", "localhost/meshops-node:bookworm")
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "lab" / "podman" / "containers.conf")}


def podman(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", *args], env=PODMAN_ENV, capture_output=True, text=True, check=check, timeout=timeout
    )


def start_node(name: str, hostname: str | None = None, network: str | None = None) -> None:
    """A privileged systemd node container from the node image (remove it with podman rm -f)."""
    podman(
        "run",
        "-d",
        "--name",
        name,
        "--hostname",
        hostname or name,
        *(["--network", network] if network else []),
        "--privileged",
        "--systemd=always",
        NODE_IMAGE,
        "/sbin/init",
    )
