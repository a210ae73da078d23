"""The amalgamation report a person reads: tables, parameter totals, joint teachers."""

from ka_tf.amalgamation.report import console_summary, params_summary, render_markdown


def _report(teachers):
    return {
        "tasks": ["semseg", "depth", "normals"],
        "teachers": teachers,
        "branch_points": {"semseg": 1, "depth": 2, "normals": 1},
        "block_losses": {
            "semseg": [0.1, 0.2, 0.3, 0.4, 0.5],
            "depth": [0.5, 0.4, 0.3, 0.2, 0.1],
            "normals": [0.2, 0.2, 0.2, 0.2, 0.2],
        },
        "params": {"student": 600, "teachers": {"semseg": 500, "depth": 500, "normals": 300}},
        "metrics": {
            "val": {"student": {"semseg/miou": 0.5}, "teacher/semseg": {"semseg/miou": 0.4}}
        },
    }


def test_joint_teacher_is_counted_once_and_named():
    teachers = {"semseg": "s2.keras", "depth": "s2.keras", "normals": "n.keras"}
    assert params_summary(_report(teachers)["params"], teachers)["teachers_total"] == 800
    markdown = render_markdown(_report(teachers))
    assert "joint teacher of semseg, depth" in markdown
    assert "| teachers together (each file once) | 800 |" in markdown
    assert "0.75x the teachers" in console_summary(_report(teachers))


def test_separate_teachers_sum_and_chosen_block_is_bold():
    teachers = {"semseg": "s.keras", "depth": "d.keras", "normals": "n.keras"}
    report = _report(teachers)
    assert params_summary(report["params"], teachers)["teachers_total"] == 1300
    markdown = render_markdown(report)
    assert "joint teacher" not in markdown
    assert "| semseg | 0.1000 | **0.2000** |" in markdown
    assert "## Metrics on `val`" in markdown


def test_the_distribution_a_run_used_is_stated():
    report = _report({"semseg": "s.keras", "depth": "d.keras", "normals": "n.keras"})
    assert "trained under" not in render_markdown(report)  # reports from before the field
    report["distribution"] = {
        "strategy": "multi_worker",
        "replicas": 2,
        "workers": 2,
        "input_sharding": "DATA",
    }
    assert (
        "- trained under `multi_worker`: 2 replica(s) on 2 worker(s), input sharding DATA"
        in render_markdown(report)
    )
