"""The wheel works on its own: built, installed into a fresh venv outside the repo, run.

One slow test (~3 minutes, most of it pip) builds the wheel, installs it with only
the ``synth`` extra (what `make demo` installs) through requirements/constraints.txt,
and from a directory outside the checkout runs the console scripts: ``ka-demo
--help``, the street demo on the zoo teachers the wheel carries (tiny), a missing
gin file, and an export that needs the ``export`` extra.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT, assert_one_line_error

# The street demo on the shipped zoo teachers, shrunk to seconds.
TINY_STREET_DEMO = [
    "IMAGE_SIZE = (64, 128)",
    "CROP_SIZE = (32, 64)",
    "BATCH_SIZE = 2",
    "TRAIN_STEPS = 2",
    "BLOCKWISE_STEPS = 0",
    "amalgamate.branch_points = {'semseg': 3, 'depth': 2}",
    "synth_benchmark.splits = {'teacher': 2, 'transfer': 4, 'val': 2, 'test': 2}",
    "amalgamate.steps_per_epoch = 1",
    "amalgamate.num_panels = 1",
]


PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]


def _run(command, cwd, env, timeout=900):
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """``(venv bin dir, work dir, env)`` of a fresh venv with the wheel and ``[synth]``."""
    root = tmp_path_factory.mktemp("wheel")
    dist, venv, work = root / "dist", root / "venv", root / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["KA_TF_CACHE"] = str(root / "cache")
    built = _run(
        [*PIP_WHEEL, "-w", str(dist), REPO_ROOT],
        REPO_ROOT,
        env,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("ka_tf-*.whl")
    base_python = getattr(sys, "_base_executable", sys.executable)
    created = _run([base_python, "-m", "venv", str(venv)], root, env)
    assert created.returncode == 0, created.stderr[-3000:]
    constraints = os.path.join(REPO_ROOT, "requirements", "constraints.txt")
    installed = _run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-compile",  # no .pyc for TensorFlow's thousands of modules (install: 31 s here)
            "-c",
            constraints,
            f"{wheel}[synth]",
        ],
        root,
        env,
        timeout=1200,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv / "bin", work, env


@pytest.mark.slow  # ~3 minutes: a wheel, a venv, pip, and a tiny demo from it
def test_wheel_runs_outside_the_repository(installed_wheel):
    bin_dir, work, env = installed_wheel
    site = _run(
        [str(bin_dir / "python"), "-c", "import ka_tf, os; print(os.path.dirname(ka_tf.__file__))"],
        work,
        env,
    )
    package_dir = site.stdout.strip()
    assert "site-packages" in package_dir and not package_dir.startswith(REPO_ROOT)
    # `make demo`'s install has neither torch nor the exporters.
    missing = _run([str(bin_dir / "python"), "-c", "import torch"], work, env)
    assert missing.returncode != 0

    helped = _run([str(bin_dir / "ka-demo"), "--help"], work, env)
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "The ka_tf demo, end to end" in helped.stdout
    assert "--run_dir" in helped.stdout
    assert helped.stderr.strip() == ""  # no TensorFlow C++ start-up lines

    # Relative gin paths that exist only in the package are found there (the demo's
    # gin/street_zoo.gin and its includes), with the zoo the wheel carries.
    demo = _run(
        [
            str(bin_dir / "ka-demo"),
            "--run_dir=run",
            *[f"--gin_bindings={binding}" for binding in TINY_STREET_DEMO],
        ],
        work,
        env,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    report = json.loads((work / "run" / "student" / "amalgamation_report.json").read_text())
    shipped_zoo = os.path.join(package_dir, "_shipped", "zoo")
    assert report["teachers"]["semseg"] == os.path.join(
        shipped_zoo, "street_semseg", "teacher.keras"
    )
    assert report["teachers"]["depth"] == os.path.join(shipped_zoo, "street_depth", "teacher.keras")
    assert (work / "run" / "student" / "student.keras").is_file()

    # A gin file in neither place: one line naming both.
    absent = _run(
        [str(bin_dir / "ka-train"), "--gin_file=gin/absent.gin", "--model_dir=out"], work, env
    )
    assert_one_line_error(
        absent, "--gin_file=gin/absent.gin", str(work), os.path.join(package_dir, "_shipped")
    )

    # A command that needs an extra this install lacks: one line naming the extra,
    # nothing written.
    exported = _run(
        [
            str(bin_dir / "ka-export"),
            "--model=run/student/student.keras",
            "--formats=onnx",
            "--out_dir=exported",
        ],
        work,
        env,
    )
    assert_one_line_error(exported, "tf2onnx", "'export' extra", "ka_tf[export]")
    assert not (work / "exported").exists() or not any((work / "exported").iterdir())
