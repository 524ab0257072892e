#!/usr/bin/env python3
"""Benchmarks of the lab cluster tooling (lab/labctl). Prints figures; asserts nothing.

    python benchmarks/lab_build.py           # cold build (empty Go build cache and binary cache),
                                             # warm build (Go build cache kept: link only), cached
                                             # (no-op) build, then up / up again / down, 3 times
    python benchmarks/lab_build.py --quick   # cached (no-op) build and one up / up again / down

The cold build uses a throw-away GOCACHE and lab home, so it does not disturb the real caches;
it still uses the Go module cache (downloads are not part of the figure). It takes half an hour
or more on 2 cores. Builds run with $LAB_GO_JOBS (default 2) parallel compiles.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LABCTL = REPO / "lab" / "labctl"


def labctl(*args: str, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t = time.monotonic()
    proc = subprocess.run([sys.executable, str(LABCTL), *args], capture_output=True, text=True, env=env)
    seconds = time.monotonic() - t
    if proc.returncode != 0:
        sys.exit(f"labctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, proc


def build_figures(env: dict | None, label: str) -> None:
    seconds, proc = labctl("build", "--json", env=env)
    data = json.loads(proc.stdout)
    parts = ", ".join(
        f"{name} {info['seconds']:.0f}s" if info.get("seconds") is not None else f"{name} cached"
        for name, info in data.items()
        if isinstance(info, dict)
    )
    print(f"{label:28} {seconds:8.1f} s   ({parts})")


def up_down(rounds: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="lab-bench-")) / "state"
    try:
        for i in range(rounds):
            t_up, _ = labctl("up", "--state-dir", str(state))
            t_noop, _ = labctl("up", "--state-dir", str(state))
            t_down, _ = labctl("down", "--state-dir", str(state))
            print(f"up / up again / down #{i + 1:<4} {t_up:8.1f} s  {t_noop:6.2f} s  {t_down:6.2f} s")
    finally:
        if state.exists():
            subprocess.run([sys.executable, str(LABCTL), "down", "--state-dir", str(state)], capture_output=True)
        shutil.rmtree(state.parent, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the cached build and one up/down")
    args = ap.parse_args()
    print(f"lab benchmark on {os.cpu_count()} CPUs, LAB_GO_JOBS={os.environ.get('LAB_GO_JOBS', '2')}")
    if not args.quick:
        scratch = Path(tempfile.mkdtemp(prefix="lab-bench-build-"))
        try:
            env = dict(os.environ, GOCACHE=str(scratch / "gocache"), MESHOPS_LAB_HOME=str(scratch / "home"))
            build_figures(env, "build, cold (empty caches)")
            shutil.rmtree(scratch / "home")
            build_figures(env, "build, warm (Go cache kept)")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    build_figures(None, "build, cached (no-op)")
    up_down(1 if args.quick else 3)


if __name__ == "__main__":
    main()
