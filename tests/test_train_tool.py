"""tools/train.py end to end: the report a user reads, and one-line errors for bad input."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from ka_tf.models import SegNet
from tests.helpers import assert_one_line_error, run_tool


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    paths = {}
    for task in ("semseg", "depth"):
        paths[task] = str(root / f"{task}.keras")
        SegNet(task, num_classes=19 if task == "semseg" else None, width_multiplier=1 / 16).save(
            paths[task]
        )
    return paths


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return str(root)


def _train(model_dir, teachers, *bindings, data_dir=None, cache=None, env=None):
    args = [
        "tools/train.py",
        "--gin_file=gin/demo.gin",
        f"--model_dir={model_dir}",
        f"--gin_bindings=TEACHERS = {teachers!r}",
        "--gin_bindings=IMAGE_SIZE = (32, 64)",
        "--gin_bindings=BATCH_SIZE = 2",
    ]
    if data_dir:  # an image folder: images only, no metrics
        args += [
            "--gin_bindings=DATASET = 'image_folder'",
            f"--gin_bindings=DATA_DIR = '{data_dir}'",
            "--gin_bindings=transfer/make_dataset.split = 'all'",
            "--gin_bindings=amalgamate.val_data = None",
            "--gin_bindings=amalgamate.test_data = None",
        ]
    args += [f"--gin_bindings={b}" for b in bindings]
    env = {**({"KA_TF_CACHE": cache} if cache else {}), **(env or {})}
    return run_tool(*args, timeout=600, env=env or None)


def test_teacher_that_is_not_splittable(tmp_path, teachers):
    inputs = keras.Input((None, None, 3))
    plain = keras.Model(inputs, {"semseg": keras.layers.Conv2D(19, 1)(inputs)})
    path = str(tmp_path / "plain.keras")
    plain.save(path)
    result = _train(tmp_path / "run", {**teachers, "semseg": path})
    assert_one_line_error(result, path, "not a splittable ka_tf SegNet/TargetNet")


def test_missing_teacher_file(tmp_path, teachers):
    result = _train(tmp_path / "run", {**teachers, "depth": "/no/such/teacher.keras"})
    assert_one_line_error(result, "/no/such/teacher.keras")


def test_branch_point_out_of_range(tmp_path, teachers, image_folder):
    result = _train(
        tmp_path / "run",
        teachers,
        "BLOCKWISE_STEPS = 0",
        "amalgamate.branch_points = {'semseg': 7, 'depth': 1}",
        data_dir=image_folder,
    )
    assert_one_line_error(result, "branch_point=7", "Expected one of (0, 1, 2, 3, 4)")


def test_image_folder_without_images(tmp_path, teachers):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    result = _train(tmp_path / "run", teachers, data_dir=str(empty))
    assert_one_line_error(result, str(empty))


def test_model_dir_that_is_a_file(tmp_path, teachers):
    target = tmp_path / "file"
    target.write_text("x")
    assert_one_line_error(_train(target, teachers), "--model_dir=", "is a file")


@pytest.mark.slow
def test_demo_recipe_end_to_end_writes_the_report(tmp_path, teachers):
    """Block-wise (1 step a block), branch choice, fine-tune, evaluation, report, panels.

    Evaluated on val (``eval_split``), as when comparing settings without the test split.
    """
    result = _train(
        tmp_path / "run",
        teachers,
        "BLOCKWISE_STEPS = 1",
        "TRAIN_STEPS = 2",
        "amalgamate.steps_per_epoch = 1",
        "amalgamate.val_batches = 1",
        "amalgamate.eval_max_batches = 2",
        "amalgamate.num_panels = 2",
        "amalgamate.test_data = @val/make_dataset",
        "amalgamate.eval_split = 'val'",
        "synth_benchmark.splits = {'teacher': 4, 'transfer': 8, 'val': 4, 'test': 4}",
        cache=str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    report = json.loads((run / "amalgamation_report.json").read_text())
    assert report["tasks"] == ["semseg", "depth"]
    assert set(report["branch_points"]) == {"semseg", "depth"}
    assert all(1 <= b <= 4 for b in report["branch_points"].values())  # decoder only
    assert all(len(v) == 5 and all(np.isfinite(v)) for v in report["block_losses"].values())
    # The choice reads the like-for-like table (final trunk, each block's own gate). The
    # last stage's weights are the final ones, so its two figures agree; block 0's gate
    # was trained before four more stages moved the encoder, so its figures differ.
    from ka_tf.amalgamation.branching import choose_branch_points

    final, stage_end = report["block_losses"], report["block_losses_at_stage_end"]
    assert choose_branch_points(final, tolerance=0.1, min_index=1) == report["branch_points"]
    for task in ("semseg", "depth"):
        assert final[task][4] == pytest.approx(stage_end[task][4], rel=1e-5)
        assert final[task][0] != stage_end[task][0]
    assert report["params"]["student"] < sum(report["params"]["teachers"].values())
    assert set(report["metrics"]) == {"val"}
    assert set(report["metrics"]["val"]) == {"student", "teacher/semseg", "teacher/depth"}
    assert "semseg/miou" in report["metrics"]["val"]["student"]
    assert "depth/rmse" in report["metrics"]["val"]["student"]
    for name in ("student.keras", "amalgamation_report.md", "config.gin", "operative_config.gin"):
        assert os.path.exists(run / name), name
    assert sorted(os.listdir(run / "panels")) == ["val_00.png", "val_01.png"]
    assert os.listdir(run / "logs")
    restored = keras.saving.load_model(str(run / "student.keras"))
    assert restored.branch_points == report["branch_points"]


def test_images_flag_binds_a_transfer_set_and_a_disjoint_held_out_val(tmp_path):
    import gin

    from ka_tf import config
    from ka_tf.config import image_folder_bindings
    from ka_tf.data.pipeline import make_dataset

    rng = np.random.default_rng(0)
    for i in range(20):  # photos of mixed sizes, in a subfolder too
        size = (48, 80) if i % 2 else (64, 64)
        (tmp_path / "photos" / "trip").mkdir(parents=True, exist_ok=True)
        folder = tmp_path / "photos" / ("trip" if i % 3 == 0 else "")
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    gin.clear_config()
    try:
        config.parse_gin_config(
            ["gin/demo.gin"],
            ["IMAGE_SIZE = (32, 64)", *image_folder_bindings(str(tmp_path / "photos"))],
        )
        with gin.config_scope("val_images"):
            val = make_dataset(batch_size=1)
        with gin.config_scope("transfer"):
            transfer = make_dataset(batch_size=1, repeat=False, augment=False)
        assert gin.query_parameter("amalgamate.test_data") is None
    finally:
        gin.clear_config()
    val_images = [batch["image"].numpy()[0] for batch in val]
    transfer_images = [batch["image"].numpy()[0] for batch in transfer]
    assert len(val_images) == 2 and len(transfer_images) == 18  # 10% held out
    assert all(image.shape == (32, 64, 3) for image in val_images + transfer_images)
    for held in val_images:
        assert not any(np.array_equal(held, other) for other in transfer_images)


def test_images_flag_with_one_photo_is_a_one_line_error(tmp_path, teachers):
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(tmp_path / "photos" / "only.png")
    result = run_tool(
        "tools/train.py",
        "--gin_file=gin/demo.gin",
        f"--model_dir={tmp_path / 'run'}",
        f"--images={tmp_path / 'photos'}",
        f"--gin_bindings=TEACHERS = {teachers!r}",
        timeout=300,
    )
    assert_one_line_error(
        result, str(tmp_path / "photos"), "a validation hold-out needs at least 2"
    )


@pytest.mark.slow  # ~1.5 min on 2 cores
def test_images_flag_amalgamates_on_a_photo_folder_and_chooses_branches(
    tmp_path, teachers, image_folder
):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 72, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    result = run_tool(
        "tools/train.py",
        "--gin_file=gin/demo.gin",
        f"--model_dir={tmp_path / 'run'}",
        f"--images={photos}",
        f"--gin_bindings=TEACHERS = {teachers!r}",
        "--gin_bindings=IMAGE_SIZE = (32, 64)",
        "--gin_bindings=BATCH_SIZE = 2",
        "--gin_bindings=BLOCKWISE_STEPS = 1",
        "--gin_bindings=TRAIN_STEPS = 1",
        "--gin_bindings=amalgamate.steps_per_epoch = 1",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "amalgamation_report.json").read_text())
    # The held-out photo measured every block, so the branch points were chosen.
    assert all(len(v) == 5 and all(np.isfinite(v)) for v in report["block_losses"].values())
    assert set(report["branch_points"]) == {"semseg", "depth"}
    assert report["metrics"] == {}
    assert report["data"]["count"] == 6 and report["data"]["held_out_for_val"] == 1
    assert "6 unlabelled photos" in (tmp_path / "run" / "amalgamation_report.md").read_text()
    assert (tmp_path / "run" / "student.keras").exists()


def test_foreign_teacher_of_an_unknown_kind_is_a_one_line_error(tmp_path, teachers):
    model = tmp_path / "scene.pt"
    model.write_bytes(b"not a model")
    result = _train(
        tmp_path / "run",
        {},
        f"semseg/teacher_spec.path = '{model}'",
        "semseg/teacher_spec.outputs = {'semseg': 'logits'}",
        f"TEACHERS = {{'semseg': @semseg/teacher_spec(), 'depth': '{teachers['depth']}'}}",
    )
    assert_one_line_error(result, str(model), "of no known kind (.pt)")
    assert not (tmp_path / "run" / "config.gin").exists()


@pytest.mark.slow
def test_cached_targets_are_computed_once_and_reused_by_the_next_run(
    tmp_path, teachers, image_folder
):
    """amalgamate.cache_targets: the first run computes the targets, a second run with
    the same teachers and images reads them, and both fine-tune from them."""
    bindings = (
        "BLOCKWISE_STEPS = 0",
        "amalgamate.branch_points = {'semseg': 1, 'depth': 1}",
        "TRAIN_STEPS = 2",
        "amalgamate.steps_per_epoch = 1",
        "amalgamate.cache_targets = True",
        "transfer/augment_element.scale_range = (1.0, 1.0)",  # cached targets: no zoom
    )
    # The second run also weights the scene-parsing classes by the cached targets'
    # frequencies (the same classes form, so it still reads the first run's cache).
    balance = (
        "finetune/distillation_losses.loss_options = {'semseg.hard_ce': {'class_balance': 1.0}}"
    )
    records, reports = [], []
    for name, extra in (("first", ()), ("second", (balance,))):
        result = _train(
            tmp_path / name,
            teachers,
            *bindings,
            *extra,
            data_dir=image_folder,
            env={"KA_TF_TARGET_CACHE": str(tmp_path / "targets")},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        reports.append(json.loads((tmp_path / name / "amalgamation_report.json").read_text()))
        records.append(reports[-1]["target_cache"])
        assert (tmp_path / name / "student.keras").exists()
    assert records[0]["computed"] == ["semseg", "depth"] and records[1]["computed"] == []
    assert "class_weights" not in reports[0]
    weights = np.array(reports[1]["class_weights"]["semseg"])
    assert weights.shape == (19,) and weights.max() > 0
    assert "semseg: class weights (balance 1)" in result.stdout
    assert records[0]["folders"] == records[1]["folders"]
    assert records[0]["images"] == 4 and records[0]["forms"] == {
        "semseg": "classes",
        "depth": "map",
    }


def test_class_balance_without_cached_targets_is_a_one_line_error(tmp_path, teachers, image_folder):
    result = _train(
        tmp_path / "run",
        teachers,
        "finetune/distillation_losses.loss_options = {'semseg.hard_ce': {'class_balance': 0.5}}",
        data_dir=image_folder,
    )
    assert_one_line_error(result, "class_balance", "amalgamate.cache_targets = True")
    assert not (tmp_path / "run" / "config.gin").exists()


@pytest.mark.slow
def test_zooming_cached_targets_is_a_one_line_error(tmp_path, teachers, image_folder):
    result = _train(
        tmp_path / "run",
        teachers,
        "BLOCKWISE_STEPS = 0",
        "amalgamate.branch_points = {'semseg': 1, 'depth': 1}",
        "TRAIN_STEPS = 2",
        "amalgamate.cache_targets = True",
        data_dir=image_folder,
        env={"KA_TF_TARGET_CACHE": str(tmp_path / "targets")},
    )
    assert_one_line_error(
        result, "augment_element.scale_range=(1.0, 1.5)", "scale_range = (1.0, 1.0)"
    )
