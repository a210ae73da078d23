"""tools/demo.py: each recipe's stages chain real tool runs into a report."""

import json

import pytest

from ka_tf.constants import NYU13_CLASSES
from ka_tf.models import SegNet
from tests.helpers import assert_one_line_error, run_tool

TINY = [
    "IMAGE_SIZE = (32, 64)",
    "BATCH_SIZE = 2",
    "WIDTH_MULTIPLIER = 0.0625",
    "TRAIN_STEPS = 1",
    "BLOCKWISE_STEPS = 0",  # branch points fixed: the block-wise phase is tested elsewhere
    "amalgamate.branch_points = {'semseg': 3, 'depth': 2, 'normals': 2}",
    "synth_benchmark.splits = {'teacher': 4, 'transfer': 4, 'val': 2, 'test': 2}",
    "train_teacher.steps_per_epoch = 1",
    "amalgamate.steps_per_epoch = 1",
    "amalgamate.eval_max_batches = 1",
    "amalgamate.num_panels = 1",
]


def test_unknown_recipe_is_a_one_line_error():
    result = run_tool("tools/demo.py", "--recipe=outdoor_9task", timeout=120)
    assert_one_line_error(result, "--recipe")


@pytest.mark.slow  # ~2 minutes: two amalgamations, each a process
def test_offline_recipe_chains_two_task_student_into_three_task_student(tmp_path):
    # Teachers already in the run directory are reused (as a rerun of the demo does),
    # so only the two amalgamation stages run here.
    run = tmp_path / "run"
    for task in ("semseg", "depth", "normals"):
        (run / "teachers" / task).mkdir(parents=True)
        classes = len(NYU13_CLASSES) if task == "semseg" else None
        SegNet(task, num_classes=classes, width_multiplier=1 / 16).save(
            str(run / "teachers" / task / "teacher.keras")
        )
    result = run_tool(
        "tools/demo.py",
        "--recipe=indoor_offline",
        f"--run_dir={run}",
        *[f"--gin_bindings={binding}" for binding in TINY],
        timeout=600,
        env={"KA_TF_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count(" teacher: reusing ") == 3
    two = json.loads((run / "student2" / "amalgamation_report.json").read_text())
    three = json.loads((run / "student3_offline" / "amalgamation_report.json").read_text())
    assert two["tasks"] == ["semseg", "depth"]
    assert sorted(three["tasks"]) == ["depth", "normals", "semseg"]
    # The two-task student is the joint teacher of both its tasks in the offline stage.
    student2 = str(run / "student2" / "student.keras")
    assert three["teachers"]["semseg"] == three["teachers"]["depth"] == student2
    assert three["teachers"]["normals"] == str(run / "teachers" / "normals" / "teacher.keras")
    assert three["branch_points"] == {"semseg": 3, "depth": 2, "normals": 2}
    assert "normals/mean_angle" in three["metrics"]["test"]["student"]


# The street recipe on the zoo teachers (no teacher training) runs in
# tests/test_packaging.py, from an installed wheel outside the checkout.
