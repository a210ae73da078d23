"""The real case: the two real teachers (MediaPipe's TFLite person segmentation and
U²-Net-p's ONNX saliency) amalgamated into the light student on a few real photos.

Needs the real-teachers cache (`make real-teachers`, which `make test` runs first).
"""

import json
import os
import shutil

import gin
import pytest

import ka_tf.registry_all  # noqa: F401
from ka_tf import config
from ka_tf.errors import ConfigError
from ka_tf.real import assets
from tests.helpers import REPO_ROOT

RECIPE = "gin/real/person_saliency.gin"


@pytest.fixture(scope="module")
def real_cache():
    try:
        for name in ("selfie_segmentation", "u2netp", "efficientnet_lite0_keras"):
            assets.asset_path(name)
        return assets.real_asset("photos")
    except ConfigError as error:  # a missing cache names its make step
        pytest.skip(f"real-teachers cache missing ({error})")


@pytest.fixture(scope="module")
def few_photos(real_cache, tmp_path_factory):
    """Eight training frames and four held-out ones of the street video."""
    root = tmp_path_factory.mktemp("photos")
    for split, count in (("train", 8), ("test", 4)):
        source = os.path.join(real_cache, split, "vtest")
        os.makedirs(root / split)
        for name in sorted(os.listdir(source))[:count]:
            shutil.copy(os.path.join(source, name), root / split / name)
    return str(root)


def _amalgamate(model_dir: str, photos: str, steps: int, teacher_cache: str) -> dict:
    import keras
    import tensorflow as tf

    from ka_tf.amalgamation.run import amalgamate

    gin.clear_config()
    config.parse_gin_config(
        [RECIPE],
        [
            f"DATA_DIR = {photos!r}",
            "IMAGE_SIZE = (128, 160)",
            "BATCH_SIZE = 4",
            f"TRAIN_STEPS = {steps}",
            "amalgamate.steps_per_epoch = 10",
            "amalgamate.num_panels = 2",
            "LEARNING_RATE = 2e-3",
            "build_optimizer.warmup_steps = 0",
            f"person/teacher_spec.cache_dir = {teacher_cache!r}",
            f"salient/teacher_spec.cache_dir = {teacher_cache!r}",
        ],
        search_paths=[REPO_ROOT],
    )
    keras.utils.set_random_seed(0)
    return amalgamate(model_dir, tf.distribute.get_strategy())


def test_the_recipe_parses_and_names_its_real_files(real_cache):
    gin.clear_config()
    config.parse_gin_config([RECIPE], [], search_paths=[REPO_ROOT])
    assert gin.query_parameter("amalgamate.student_family") == "efficientnet_lite"
    assert assets.real_asset("selfie_segmentation").endswith("selfie_segmentation.tflite")
    assert os.path.isdir(os.path.join(real_cache, "train"))
    assert os.path.isdir(os.path.join(real_cache, "test"))


@pytest.mark.slow
def test_a_tiny_real_amalgamation_moves_the_students_masks_toward_the_teachers(
    few_photos, tmp_path
):
    cache = str(tmp_path / "teacher_outputs")
    before = _amalgamate(str(tmp_path / "untrained"), few_photos, 0, cache)
    after = _amalgamate(str(tmp_path / "trained"), few_photos, 40, cache)
    start = before["agreement"]["test"]["student"]
    end = after["agreement"]["test"]["student"]
    # 40 steps on 8 photos: the soft masks close most of their distance to the
    # teachers' (the 0.5-thresholded IoU needs the full recipe: see README).
    for task in ("person", "salient"):
        assert end[f"{task}/mae"] < 0.7 * start[f"{task}/mae"], (task, start, end)
    # The report, the student and a panel (photo | teacher | student) are written.
    run = tmp_path / "trained"
    report = json.loads((run / "amalgamation_report.json").read_text())
    assert report["student"]["family"] == "efficientnet_lite"
    assert report["student"]["encoder_weights"] == "imagenet"
    assert report["teacher_tiers"] == {"person": "output_only", "salient": "output_only"}
    assert (run / "student.keras").exists() and (run / "panels" / "test_00.png").exists()
    # Both teachers' outputs were cached: the second run read them, computed none.
    assert len(os.listdir(cache)) == 2
