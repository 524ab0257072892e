"""The samples' images work: each is built (or taken from the lab's image cache), loaded into
podman from its docker-archive, started on a network this test creates, and its HTTP API answers
as the samples need it — Bookinfo's services calling each other by their Service names.

Needs root podman, the Debian mirror, the package registries (a cold build downloads the Python,
npm and Maven dependencies) and the istio module; with a warm cache it takes a few minutes.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid

import pytest

from lab.images import catalog
from lab.images.samples import sample_images
from tests.integration.podman_nodes import podman

pytestmark = [
    pytest.mark.podman,
    pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman"),
    pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="needs mmdebstrap (the Debian roots)"),
]

BOOKINFO = "registry.istio.io/release/examples-bookinfo-{}:1.20.3"
NGINX = "docker.io/library/nginx:1.14-alpine"
TOMCAT = "docker.io/kubeguide/tomcat-app:v1"


class Lab:
    """Images loaded, containers started and the network, all made by this test and removed by it."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.network = f"meshops-samples-{self.tag}"
        self.loaded: dict[str, bool] = {}  # name -> loaded by this test (it was not there before)
        self.containers: dict[str, str] = {}  # host name -> container IP
        registry = catalog.images()
        for image in sample_images():  # until catalog.images() lists them itself
            registry.setdefault(image.name, image)
        podman("network", "create", self.network)

    def load(self, name: str) -> None:
        if name in self.loaded:
            return
        built = catalog.build(name)
        existed = podman("image", "exists", name, check=False).returncode == 0
        proc = podman("load", "-i", str(built.archive), timeout=600)
        assert name in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        self.loaded[name] = not existed

    def start(self, host: str, name: str, *args: str, env: dict[str, str] | None = None) -> str:
        """Start ``name`` as ``host`` on the network, resolving the hosts started before; its IP."""
        if host in self.containers:
            return self.containers[host]
        self.load(name)
        hosts = [f"--add-host={h}:{ip}" for h, ip in self.containers.items()]
        envs = [f"--env={k}={v}" for k, v in (env or {}).items()]
        container = f"{self.network}-{host}"
        podman(
            "run", "-d", "--name", container, "--hostname", host, "--network", self.network, *hosts, *envs, name, *args
        )
        ip = podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container).stdout
        self.containers[host] = ip.strip()
        return self.containers[host]

    def get(self, host: str, port: int, path: str, timeout: float = 300) -> str:
        """GET from a client container on the network until it answers 200 (services take a while
        to start, Open Liberty most); the body."""
        self.start("client", BOOKINFO.format("details-v1"), "sleep", "infinity")
        url = f"http://{self.containers[host]}:{port}{path}"
        deadline = time.monotonic() + timeout
        while True:
            proc = podman("exec", f"{self.network}-client", "curl", "-sS", "-f", "-m", "60", url, check=False)
            if proc.returncode == 0:
                return proc.stdout
            if time.monotonic() > deadline:
                logs = podman("logs", f"{self.network}-{host}", check=False)
                pytest.fail(f"{url}: {proc.stderr.strip()}\n--- {host} logs:\n{(logs.stdout + logs.stderr)[-3000:]}")
            time.sleep(3)

    def close(self) -> None:
        for host in self.containers:
            podman("rm", "-f", "-t", "2", f"{self.network}-{host}", check=False)
        podman("network", "rm", "-f", self.network, check=False)
        for name, ours in self.loaded.items():
            if ours:
                podman("rmi", "-f", name, check=False)


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


def test_details_answers_book_details(lab):
    lab.start("details", BOOKINFO.format("details-v1"))
    details = json.loads(lab.get("details", 9080, "/details/0"))
    assert details["id"] == 0
    assert details["author"] == "William Shakespeare"
    assert details["ISBN-10"] == "1234567890"


def test_ratings_answers_ratings(lab):
    lab.start("ratings", BOOKINFO.format("ratings-v1"))
    assert json.loads(lab.get("ratings", 9080, "/ratings/0")) == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}


@pytest.mark.parametrize("version, color", [("v1", None), ("v2", "black"), ("v3", "red")])
def test_reviews_versions_differ_as_bookinfo_says(lab, version, color):
    lab.start("ratings", BOOKINFO.format("ratings-v1"))  # v2 and v3 call it by its Service name
    host = f"reviews-{version}"
    lab.start(host, BOOKINFO.format(host))
    reviews = json.loads(lab.get(host, 9080, "/reviews/0"))
    assert reviews["id"] == "0"
    assert [r["reviewer"] for r in reviews["reviews"]] == ["Reviewer1", "Reviewer2"]
    if color is None:
        assert all("rating" not in r for r in reviews["reviews"])
    else:
        assert [r["rating"] for r in reviews["reviews"]] == [{"stars": 5, "color": color}, {"stars": 4, "color": color}]


def test_productpage_shows_the_book_from_the_other_services(lab):
    lab.start("details", BOOKINFO.format("details-v1"))
    lab.start("ratings", BOOKINFO.format("ratings-v1"))
    # productpage calls "reviews": here reviews v3 under that name (red stars from ratings)
    lab.start("reviews", BOOKINFO.format("reviews-v3"))
    lab.start("productpage", BOOKINFO.format("productpage-v1"))
    for host, path in (("details", "/details/0"), ("ratings", "/ratings/0"), ("reviews", "/reviews/0")):
        lab.get(host, 9080, path)  # all up, so that the page has everything at once
    page = lab.get("productpage", 9080, "/productpage", timeout=420)
    assert "<title>Simple Bookstore App</title>" in page
    assert "William Shakespeare" in page  # from details
    assert "An extremely entertaining play by Shakespeare" in page  # from reviews
    assert "text-red-500" in page  # reviews v3 got the stars from ratings (template: text-<color>-500)
    assert "Sorry, product details are currently unavailable" not in page


def test_nginx_serves_its_welcome_page_on_80(lab):
    lab.start("nginx", NGINX)
    assert "<title>Welcome to nginx!</title>" in lab.get("nginx", 80, "/")


def test_tomcat_serves_its_root_page_on_8080(lab):
    lab.start("tomcat", TOMCAT)
    assert "Tomcat" in lab.get("tomcat", 8080, "/", timeout=180)
