"""Pure logic of the samples' image recipes (lab.images.samples): the names are the ones the
samples role uses, and productpage's pip-compile'd requirements are split with their hashes."""

from pathlib import Path

import yaml

from lab.images import samples

REPO = Path(__file__).resolve().parents[3]

REQUIREMENTS = """\
#
#    pip-compile --allow-unsafe --generate-hashes requirements.in
#
blinker==1.9.0 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
    # via flask
Flask-Bootstrap==3.3.7.1 \\
    --hash=sha256:cccc
    # via -r requirements.in
setuptools==78.1.0 \\
    --hash=sha256:dddd
    # via
    #   -r requirements.in
"""


def _names():
    return {image.name for image in samples.sample_images()}


def test_the_tutorials_images_have_the_names_containerd_gives_the_roles_references():
    defaults = yaml.safe_load((REPO / "roles" / "istio_samples" / "defaults" / "main.yml").read_text())
    nginx = defaults["istio_samples_nginx_image"]
    assert "/" not in nginx  # a Docker Hub library image: containerd names it docker.io/library/…
    assert f"docker.io/library/{nginx}" in _names()
    assert defaults["istio_samples_tomcat_image"] in _names()


def test_bookinfo_images_are_the_six_of_bookinfo_yaml():
    bookinfo = {n for n in _names() if "examples-bookinfo" in n}
    services = ["details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3", "productpage-v1"]
    assert bookinfo == {f"registry.istio.io/release/examples-bookinfo-{s}:1.20.3" for s in services}


def test_requirements_are_split_by_name_with_their_hashes_and_without_comments():
    blocks = samples._requirement_blocks(REQUIREMENTS)
    assert list(blocks) == ["blinker", "flask-bootstrap", "setuptools"]
    assert blocks["blinker"] == "blinker==1.9.0 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bbbb\n"
    assert blocks["flask-bootstrap"] == "Flask-Bootstrap==3.3.7.1 \\\n    --hash=sha256:cccc\n"
    assert all("#" not in block for block in blocks.values())
    assert "flask-bootstrap" in samples.PRODUCTPAGE_SDIST_ONLY  # keys are lowercased to match it
