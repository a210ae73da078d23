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


def test_block_loss_figure_draws_bars_to_scale_and_marks_the_choice(tmp_path):
    import numpy as np

    from ka_tf.amalgamation import report as report_lib

    losses = {"semseg": [0.4, 0.2, 0.1, 0.3, 0.05], "depth": [0.8, None, 0.6, 0.2, 0.4]}
    image = report_lib.block_loss_figure(losses, {"semseg": 2, "depth": 3})
    image = image[report_lib.FIGURE_TITLE_HEIGHT :]  # the two task rows, equal heights
    chosen = np.all(image == report_lib.CHOSEN_COLOUR, axis=-1)
    other = np.all(image == report_lib.OTHER_COLOUR, axis=-1)
    half = image.shape[0] // 2
    # One orange bar per task: semseg's (row 0) at candidate 2, depth's (row 1) at 3.
    semseg_cols = np.nonzero(chosen[:half].any(axis=0))[0]
    depth_cols = np.nonzero(chosen[half:].any(axis=0))[0]
    assert semseg_cols.size and depth_cols.size and depth_cols.min() > semseg_cols.max()
    # Bar heights follow the losses within a task: semseg 0.4 is 4× its chosen 0.1.
    column_heights = (chosen | other)[:half].sum(axis=0)
    bars = [h for h in np.split(column_heights, np.nonzero(np.diff(column_heights != 0))[0] + 1)]
    heights = [int(b.max()) for b in bars if b.max() > 0]
    assert len(heights) == 5
    assert abs(heights[0] / heights[2] - 4.0) < 0.1
    assert heights[1] > heights[2] > heights[4]
    # The unmeasured depth candidate has no bar: depth draws four.
    depth_heights = (chosen | other)[half:].sum(axis=0)
    runs = np.nonzero(np.diff((depth_heights != 0).astype(int)) == 1)[0]
    assert len(runs) == 4


def test_write_report_writes_the_block_loss_picture(tmp_path):
    from ka_tf.amalgamation import report as report_lib

    data = _report({"semseg": "a.keras", "depth": "b.keras"})
    data["block_losses"] = {"semseg": [0.4, 0.2, 0.1, 0.3, 0.05], "depth": [0.8] * 5}
    report_lib.write_report(str(tmp_path), data)
    assert (tmp_path / report_lib.BLOCK_LOSSES_PNG).is_file()
    assert "![block losses](block_losses.png)" in (tmp_path / report_lib.REPORT_MD).read_text()
