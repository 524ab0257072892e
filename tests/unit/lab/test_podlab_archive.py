"""The pod lab runs inside node containers from the files lab/playbooks/podlab.yml packs.

A module the pod lab imports but the playbook does not pack only fails inside a node (the main
job and two molecule scenarios did, once). This unpacks exactly the packed paths into an empty
directory and imports the pod lab from there, with nothing of the checkout on the path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = REPO / "lab" / "playbooks" / "podlab.yml"


def packed_paths() -> list[Path]:
    play = yaml.safe_load(PLAYBOOK.read_text())[0]
    task = next(t for t in play["tasks"] if "community.general.archive" in t)
    return [REPO / p.replace("{{ __repo }}/", "") for p in task["community.general.archive"]["path"]]


def test_every_packed_path_exists():
    missing = [str(p) for p in packed_paths() if not p.exists()]
    assert not missing, missing


def test_pod_lab_imports_from_the_packed_files_alone(tmp_path):
    root = tmp_path / "srv"
    for src in packed_paths():
        dest = root / src.relative_to(REPO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest)
    # the link the playbook makes: ansible_collections.meshops.istio -> the unpacked root
    link = root / "collections" / "ansible_collections" / "meshops" / "istio"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../..")
    proc = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import lab.pods.rules", str(root)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
