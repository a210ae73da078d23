"""ruff (lint and format) is clean over the whole project."""

import os
import shutil
import subprocess
import sys

from tests.helpers import REPO_ROOT

PATHS = ["ka_tf", "tools", "tests", "benchmarks"]


def _ruff() -> str:
    candidate = os.path.join(os.path.dirname(sys.executable), "ruff")
    return candidate if os.path.exists(candidate) else shutil.which("ruff")


def test_ruff_check_clean():
    result = subprocess.run(
        [_ruff(), "check", *PATHS], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_format_clean():
    result = subprocess.run(
        [_ruff(), "format", "--check", *PATHS], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:]
