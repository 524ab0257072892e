"""AWX / Automation Platform users can build an execution environment with meshops.istio.

The collection is built and installed the way a user gets it; ansible-builder then reads its
meta/execution-environment.yml (``introspect``: the Python and system requirements it names must
come through) and ``create`` accepts an execution environment definition with the collection and
those requirements, writing a build context. Nothing is pulled or built: the base image named
is a local placeholder.
"""

import glob
import os
import shutil
import subprocess
import sys

import pytest
import yaml

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.dirname(sys.executable)

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(BIN, "ansible-builder")), reason="ansible-builder (requirements-dev.txt)"
)


def run(*argv, cwd):
    # Away from the checkout: its ansible.cfg would resolve meshops.istio to the checkout.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    completed = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, f"{argv}: {completed.stdout[-2000:]}{completed.stderr[-2000:]}"
    return completed.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ee")
    run(
        os.path.join(BIN, "ansible-galaxy"),
        "collection",
        "build",
        "--output-path",
        str(tmp),
        "--force",
        REPO_ROOT,
        cwd=str(tmp),
    )
    tarball = glob.glob(str(tmp / "meshops-istio-*.tar.gz"))[0]
    run(
        os.path.join(BIN, "ansible-galaxy"),
        "collection",
        "install",
        "--offline",
        "--no-deps",
        "--force",
        "-p",
        str(tmp / "collections"),
        tarball,
        cwd=str(tmp),
    )
    return tmp, tarball, tmp / "collections" / "ansible_collections" / "meshops" / "istio"


def test_metadata_names_files_the_collection_ships(installed):
    _tmp, _tarball, root = installed
    metadata = yaml.safe_load((root / "meta" / "execution-environment.yml").read_text())
    assert set(metadata["dependencies"]) == {"python", "system"}
    for path in metadata["dependencies"].values():
        assert (root / path).is_file(), f"meta/execution-environment.yml names {path}, which the collection lacks"


def test_introspect_reads_the_collections_requirements(installed):
    tmp, _tarball, _root = installed
    found = yaml.safe_load(
        run(os.path.join(BIN, "ansible-builder"), "introspect", "--sanitize", str(tmp / "collections"), cwd=str(tmp))
    )
    python = " ".join(found["python"])
    for requirement in ("kubernetes", "jmespath"):
        assert requirement in python and "from collection meshops.istio" in python, found
    assert any("from collection meshops.istio" in line for line in found["system"]), found


def test_create_accepts_a_definition_with_the_collection(installed):
    tmp, tarball, root = installed
    metadata = yaml.safe_load((root / "meta" / "execution-environment.yml").read_text())
    definition = {
        "version": 3,
        "images": {"base_image": {"name": "localhost/meshops-ee-base:latest"}},
        "dependencies": {
            "ansible_core": {"package_pip": "ansible-core>=2.16,<2.20"},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "galaxy": {"collections": [{"name": "meshops.istio", "source": tarball, "type": "file"}]},
            "python": str(root / metadata["dependencies"]["python"]),
            "system": str(root / metadata["dependencies"]["system"]),
        },
    }
    (tmp / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    context = tmp / "context"
    shutil.rmtree(context, ignore_errors=True)
    run(
        os.path.join(BIN, "ansible-builder"),
        "create",
        "-f",
        str(tmp / "execution-environment.yml"),
        "-c",
        str(context),
        "--output-filename",
        "Containerfile",
        cwd=str(tmp),
    )
    assert (context / "Containerfile").is_file()
    copied = (context / "_build" / "requirements.txt").read_text()
    assert "kubernetes" in copied
