"""The node-side engine and audit run on every Python the README promises for nodes (3.9+).

Runs node_side_smoke.py under the oldest and newest interpreters pyenv provides on these
machines; a version that is not installed is skipped, naming it.
"""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PYENV = os.path.expanduser("~/.pyenv/versions")


def _interpreter(version):
    if not os.path.isdir(PYENV):
        return None
    for name in sorted(os.listdir(PYENV), reverse=True):
        if name == version or name.startswith(version + "."):
            path = os.path.join(PYENV, name, "bin", "python")
            if os.path.exists(path):
                return path
    return None


@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_node_side_code_runs_on(version):
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"Python {version} is not installed under {PYENV}")
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [python, os.path.join(REPO, "tests/unit/iptables/node_side_smoke.py"), os.path.join(REPO, "collections")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ok", *version.split(".")]
