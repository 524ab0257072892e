"""Where the lab keeps things. Everything lives outside the checkout, under one home."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GO_DIR = Path(__file__).resolve().parent / "go"


def lab_home() -> Path:
    """``$MESHOPS_LAB_HOME`` or ``~/.cache/meshops-istio/lab``."""
    env = os.environ.get("MESHOPS_LAB_HOME")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "meshops-istio" / "lab"


def bin_root() -> Path:
    return lab_home() / "bin"


def default_state_dir() -> Path:
    env = os.environ.get("MESHOPS_LAB_STATE")
    return Path(env) if env else lab_home() / "state"


def bundle_root() -> Path:
    return lab_home() / "bundle"
