"""ka_tf.study (bootstrap, summary) and tools/study.py on a tiny config."""

import json
import math

import numpy as np
import pytest

from ka_tf import study
from ka_tf.metrics import relative_change
from ka_tf.metrics.per_image import image_statistics
from ka_tf.models import SegNet
from tests.helpers import assert_one_line_error, run_tool


def _stats(rng, depth_noise, flip_fraction, images=40):
    """Scene-parsing and depth statistics of a fake model: errors set by the arguments."""
    target_ids = rng.integers(0, 3, (images, 4, 4))
    flip = rng.random(target_ids.shape) < flip_fraction
    ids = np.where(flip, (target_ids + 1) % 3, target_ids)
    depth = rng.uniform(1, 20, (images, 4, 4)).astype(np.float32)
    predicted = depth * np.exp(rng.normal(0, depth_noise, depth.shape)).astype(np.float32)
    return {
        "semseg": image_statistics("semseg", ids, target_ids, num_classes=3),
        "depth": image_statistics("depth", predicted, depth),
    }


def test_a_student_equal_to_its_teacher_has_zero_delta_m():
    teacher = _stats(np.random.default_rng(0), 0.2, 0.2)
    result = study.bootstrap_delta_m(teacher, [teacher, teacher], samples=50)
    assert result["delta_m"] == {"mean": 0.0, "ci95": [0.0, 0.0]}
    assert set(result["delta_m_per_task"]) == {"semseg", "depth"}


def test_a_better_student_has_an_interval_above_zero_and_a_worse_one_below():
    teacher = _stats(np.random.default_rng(0), 0.3, 0.3)
    better = [_stats(np.random.default_rng(0), 0.1, 0.1) for _ in range(2)]
    worse = [_stats(np.random.default_rng(0), 0.6, 0.5)]
    up = study.bootstrap_delta_m(teacher, better, samples=200)
    down = study.bootstrap_delta_m(teacher, worse, samples=200)
    assert up["delta_m"]["ci95"][0] > 0 and up["delta_m"]["mean"] > 0
    assert down["delta_m"]["ci95"][1] < 0
    for task in ("semseg", "depth"):
        assert up["delta_m_per_task"][task]["ci95"][0] > 0


def test_summary_counts_wins_and_compares_with_the_control():
    teachers = {"semseg": {"semseg/miou": 0.5, "semseg/pixel_acc": 0.8}}
    students = [
        {"semseg/miou": 0.55, "semseg/pixel_acc": 0.81},
        {"semseg/miou": 0.45, "semseg/pixel_acc": 0.82},
    ]
    control = {"semseg": [{"semseg/miou": 0.49, "semseg/pixel_acc": 0.8}]}
    delta = {"delta_m": {"mean": 0.0, "ci95": [-0.1, 0.1]}, "delta_m_per_task": {}}
    summary = study.summarize("street", [1, 2], 0.4, teachers, students, control, delta, "cmd")
    row = summary["per_metric"]["semseg/miou"]
    assert row["wins"] == 1 and row["student_mean"] == pytest.approx(0.5)
    assert row["control_mean"] == pytest.approx(0.49)
    assert summary["verdict"]["semseg"] == {
        "student_at_or_above_teacher": True,
        "student_above_control": True,
    }
    assert (
        "| semseg/miou | 0.5000 | 0.5000 (0.4500 … 0.5500) | 0.5000 ± 0.0707 | 1/2 | 0.4900 |"
        in study.markdown(summary)
    )
    assert "targets" not in summary


def test_summary_gives_the_median_and_range_over_seeds_beside_the_mean():
    teachers = {"depth": {"depth/abs_rel": 0.3}}
    students = [{"depth/abs_rel": v} for v in (0.20, 0.21, 0.35)]
    delta = {"delta_m": {"mean": 0.0, "ci95": [0.0, 0.0]}, "delta_m_per_task": {}}
    summary = study.summarize("street", [1, 2, 3], 0.4, teachers, students, {}, delta, "cmd")
    row = summary["per_metric"]["depth/abs_rel"]
    # One bad seed pulls the mean (0.2533) but not the median (0.21).
    assert row["student_median"] == pytest.approx(0.21)
    assert row["student_mean"] == pytest.approx(0.76 / 3)
    assert row["student_range"] == pytest.approx([0.20, 0.35])
    assert row["wins"] == 2
    assert "| depth/abs_rel | 0.3000 | 0.2100 (0.2000 … 0.3500) | 0.2533 ± " in (
        study.markdown(summary)
    )


def test_summary_shows_the_controls_delta_m_beside_the_students():
    teachers = {
        "semseg": {"semseg/miou": 0.5},
        "depth": {"depth/abs_rel": 0.2},
    }
    students = [{"semseg/miou": 0.52, "depth/abs_rel": 0.19}]
    delta = {
        "delta_m": {"mean": 0.04, "ci95": [0.01, 0.07]},
        "delta_m_per_task": {
            "semseg": {"mean": 0.04, "ci95": [0.02, 0.06]},
            "depth": {"mean": 0.05, "ci95": [0.0, 0.1]},
        },
    }
    control_delta = {"semseg": {"mean": 0.06, "ci95": [0.05, 0.07]}}
    summary = study.summarize(
        "street", [1], 0.4, teachers, students, {}, delta, "cmd", control_delta_m=control_delta
    )
    assert summary["control_delta_m_per_task"] == control_delta
    text = study.markdown(summary)
    assert "| task | Δm | 95% CI | control's Δm | 95% CI |" in text
    assert "| semseg | +4.00% | +2.00% … +6.00% | +6.00% | +5.00% … +7.00% |" in text
    # A task without a control says so rather than leaving the row short.
    assert "| depth | +5.00% | +0.00% … +10.00% | — | — |" in text
    plain = study.summarize("street", [1], 0.4, teachers, students, {}, delta, "cmd")
    assert "control_delta_m_per_task" not in plain
    assert "control's Δm" not in study.markdown(plain)


def test_summary_shows_what_the_targets_score_beside_the_teacher():
    teachers = {"semseg": {"semseg/miou": 0.5}}
    students = [{"semseg/miou": 0.52}]
    delta = {"delta_m": {"mean": 0.0, "ci95": [0.0, 0.0]}, "delta_m_per_task": {}}
    targets = {"semseg": {"semseg/miou": 0.56}}
    summary = study.summarize("street", [1], 0.4, teachers, students, {}, delta, "cmd", targets)
    assert summary["targets"] == targets
    row = summary["per_metric"]["semseg/miou"]
    assert row["targets"] == pytest.approx(0.56) and row["wins"] == 1  # wins: vs the teacher
    text = study.markdown(summary)
    assert (
        "| semseg/miou | 0.5000 | 0.5600 | 0.5200 (0.5200 … 0.5200) | 0.5200 ± 0.0000 | 1/1 | — |"
        in text
    )


def test_zero_seeds_is_a_one_line_error_and_writes_nothing(tmp_path):
    result = run_tool("tools/study.py", "--seeds=0", f"--out_dir={tmp_path / 's'}", timeout=120)
    assert_one_line_error(result, "--seeds=0", "--seeds=5")
    assert not (tmp_path / "s").exists()


TINY = [
    "IMAGE_SIZE = (32, 64)",
    "CROP_SIZE = (32, 32)",
    "BATCH_SIZE = 2",
    "TRAIN_STEPS = 2",
    "BLOCKWISE_STEPS = 0",
    "amalgamate.branch_points = {'semseg': 3, 'depth': 2}",
    "synth_benchmark.splits = {'teacher': 2, 'transfer': 4, 'val': 2, 'test': 4}",
    "amalgamate.steps_per_epoch = 1",
    "amalgamate.num_panels = 1",
    "amalgamate.target_scales = (1.0, 1.5)",
]


@pytest.mark.slow  # ~2 minutes: three amalgamation runs, each a process
def test_study_tool_writes_the_schema(tmp_path):
    teachers = {}
    for task in ("semseg", "depth"):
        path = str(tmp_path / f"{task}.keras")
        SegNet(task, num_classes=19 if task == "semseg" else None, width_multiplier=1 / 16).save(
            path
        )
        teachers[task] = path
    out = tmp_path / "study"
    result = run_tool(
        "tools/study.py",
        "--seeds=2",
        "--control_seeds=1",
        "--bootstrap_samples=20",
        f"--out_dir={out}",
        *[f"--gin_bindings={b}" for b in [*TINY, f"TEACHERS = {teachers!r}"]],
        timeout=900,
        env={"KA_TF_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "study.json").read_text())
    assert set(summary) >= {
        "recipe",
        "seeds",
        "params_ratio",
        "teachers",
        "students",
        "control",
        "delta_m",
        "delta_m_per_task",
        "per_metric",
        "verdict",
        "targets",
    }
    assert summary["seeds"] == [1, 2] and len(summary["students"]) == 2
    assert {task: len(runs) for task, runs in summary["control"].items()} == {
        "semseg": 1,
        "depth": 1,
    }
    lo, hi = summary["delta_m"]["ci95"]
    assert lo <= hi
    # Each control's Δm against its teacher (its own metrics' mean relative change),
    # with its own interval.
    for task in ("semseg", "depth"):
        row = summary["control_delta_m_per_task"][task]
        teacher = {
            k: v for k, v in summary["teachers"][task].items() if v != 0 and math.isfinite(v)
        }
        change = relative_change(summary["control"][task][0], teacher)
        assert row["mean"] == pytest.approx(study.task_delta_m(change)[task])
        assert row["ci95"][0] <= row["ci95"][1]
    assert set(summary["per_metric"]["semseg/miou"]) == {
        "teacher",
        "student_mean",
        "student_std",
        "student_median",
        "student_range",
        "wins",
        "control_mean",
        "targets",
    }
    # The targets row scores each teacher on the student's target views (mirror and
    # both scales): another model than its single pass.
    assert set(summary["targets"]) == {"semseg", "depth"}
    assert (
        summary["targets"]["depth"]["depth/abs_rel"]
        != summary["teachers"]["depth"]["depth/abs_rel"]
    )
    # The control trained as many steps as a student (block-wise + fine-tuning), from
    # its teacher alone.
    control = json.loads((out / "control_depth_s1" / "amalgamation_report.json").read_text())
    assert control["tasks"] == ["depth"] and control["steps"]["finetune"] == 2
    # The control is the teacher itself, at its width, even where the recipe's student
    # has a width of its own (gin/amalgamation/small_student.gin).
    student = json.loads((out / "student_s1" / "amalgamation_report.json").read_text())
    assert student["student"]["width_multiplier"] == 0.21875
    assert control["student"]["width_multiplier"] == 1 / 16
    assert control["student"]["branches"] == {"depth": "copied"}
    assert (out / "study.md").read_text().startswith("# Study: street, 2 seeds")
