"""A run killed between block-wise phases resumes from the last finished block."""

import json
import shutil

import gin
import pytest
import tensorflow as tf

import ka_tf.registry_all  # noqa: F401
from ka_tf import config
from ka_tf.amalgamation.run import STATE_FILE, amalgamate
from ka_tf.models import SegNet
from tests.helpers import REPO_ROOT, summary_steps


def _save_teachers(tmp_path) -> dict[str, str]:
    """Two fresh 1/16-width SegNet teachers saved under ``tmp_path``: task → file."""
    teachers = {}
    for task in ("semseg", "depth"):
        teachers[task] = str(tmp_path / f"{task}.keras")
        SegNet(task, num_classes=19 if task == "semseg" else None, width_multiplier=1 / 16).save(
            teachers[task]
        )
    return teachers


@pytest.mark.slow  # ~2 minutes: every phase is traced twice
def test_resume_after_block_two(tmp_path, monkeypatch):
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path / "cache"))
    teachers = _save_teachers(tmp_path)
    bindings = [
        "BATCH_SIZE = 2",
        "IMAGE_SIZE = (32, 64)",
        "synth_benchmark.splits = {'teacher': 4, 'transfer': 4, 'val': 2, 'test': 2}",
        f"TEACHERS = {teachers!r}",
        "BLOCKWISE_STEPS = 1",
        "TRAIN_STEPS = 1",
        "amalgamate.steps_per_epoch = 1",
        "amalgamate.val_batches = 1",
        "amalgamate.eval_max_batches = 1",
        "amalgamate.num_panels = 1",
    ]
    run_dir = tmp_path / "run"

    def run():
        gin.clear_config()
        config.parse_gin_config(["gin/demo.gin"], bindings, search_paths=[REPO_ROOT])
        return amalgamate(str(run_dir), tf.distribute.get_strategy())

    first = run()
    # TensorBoard has the validation losses per block, the block-loss picture, and the
    # evaluation's metrics and panels, beside Keras' training curves.
    validation = summary_steps(run_dir / "logs" / "validation")
    for task in ("semseg", "depth"):
        assert validation[f"block_loss_table/{task}_projection"] == [0, 1, 2, 3, 4]
        assert validation[f"blockwise_at_stage_end/{task}_projection"] == [0, 1, 2, 3, 4]
    evaluation = summary_steps(run_dir / "logs" / "evaluation")
    split = next(iter(first["metrics"]))
    assert evaluation["block_losses"] == [0]
    assert evaluation[f"{split}/panels"] == [6]  # 5 block-wise steps + 1 fine-tuning step
    assert evaluation[f"{split}/student/semseg/miou"] == [6]
    assert evaluation[f"{split}/teacher/depth/depth/abs_rel"] == [6]
    assert f"{split}/delta_m" in evaluation
    # As if killed after block 2: later phases' progress and checkpoints never written.
    state = json.loads((run_dir / STATE_FILE).read_text())
    state["blocks_done"] = [0, 1, 2]
    (run_dir / STATE_FILE).write_text(json.dumps(state))
    for phase in ("blockwise_b3", "blockwise_b4", "finetune"):
        shutil.rmtree(run_dir / "checkpoints" / phase)
    second = run()
    assert json.loads((run_dir / STATE_FILE).read_text())["blocks_done"] == [0, 1, 2, 3, 4]
    assert (
        second["block_losses_at_stage_end"]["semseg"][:3]
        == first["block_losses_at_stage_end"]["semseg"][:3]
    )
    assert sorted((run_dir / "checkpoints" / "blockwise_b4").iterdir())
    assert (run_dir / "student.keras").exists()


@pytest.mark.slow  # ~1 minute
def test_without_stage_end_losses_the_choice_reads_the_like_for_like_table(tmp_path, monkeypatch):
    """amalgamate.stage_end_losses = False (the street recipes, for time): one validation
    pass per block instead of two, and the branch choice is made as before."""
    monkeypatch.setenv("KA_TF_CACHE", str(tmp_path / "cache"))
    teachers = _save_teachers(tmp_path)
    gin.clear_config()
    config.parse_gin_config(
        ["gin/demo.gin"],
        [
            "BATCH_SIZE = 2",
            "IMAGE_SIZE = (32, 64)",
            "synth_benchmark.splits = {'teacher': 4, 'transfer': 4, 'val': 2, 'test': 2}",
            f"TEACHERS = {teachers!r}",
            "BLOCKWISE_STEPS = 1",
            "TRAIN_STEPS = 0",
            "amalgamate.steps_per_epoch = 1",
            "amalgamate.val_batches = 1",
            "amalgamate.test_data = None",
            "amalgamate.stage_end_losses = False",
        ],
        search_paths=[REPO_ROOT],
    )
    run_dir = tmp_path / "run"
    report = amalgamate(str(run_dir), tf.distribute.get_strategy())
    validation = summary_steps(run_dir / "logs" / "validation")
    for task in ("semseg", "depth"):
        assert validation[f"block_loss_table/{task}_projection"] == [0, 1, 2, 3, 4]
        assert f"blockwise_at_stage_end/{task}_projection" not in validation
        assert len(report["block_losses"][task]) == 5
    assert report["block_losses_at_stage_end"] == {}
    assert set(report["branch_points"]) == {"semseg", "depth"}
    assert "not like for like" not in (run_dir / "amalgamation_report.md").read_text()
