"""Runs the ka_tf demo end to end on the embedded default (what `make demo` runs).

Stages that exist in this version of ka_tf run for real; none is simulated.
Today: the environment check (devices, strategy, precision policy).
"""

from __future__ import annotations

import os
import subprocess
import sys

from absl import flags

from ka_tf import cli

FLAGS = flags.FLAGS
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_stage(title: str, *args: str) -> None:
    print(f"\n=== {title} ===", flush=True)
    subprocess.run([sys.executable, *args], cwd=REPO_ROOT, check=True)


def main(argv: list[str]) -> int:
    del argv
    _run_stage("Environment", "tools/env_info.py")
    return 0


if __name__ == "__main__":
    cli.run(main)
