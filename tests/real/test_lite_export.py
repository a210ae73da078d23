"""The light student ships to a phone: TFLite builtin ops only, float and full int8,
calibrated on real photos, its masks kept."""

import os

import numpy as np
import pytest
from PIL import Image

from ka_tf.errors import ConfigError
from ka_tf.export import export_model
from ka_tf.export.runtimes import TFLiteRunner
from ka_tf.real import assets
from ka_tf.tasks import declare_task

H, W = 128, 160


@pytest.fixture(scope="module")
def photos():
    try:
        root = os.path.join(assets.real_asset("photos"), "test", "vtest")
        weights = assets.asset_path("efficientnet_lite0_keras")
    except ConfigError as error:  # a missing cache names its make step
        pytest.skip(f"real-teachers cache missing ({error})")
    names = sorted(os.listdir(root))[:6]
    images = [
        np.asarray(Image.open(os.path.join(root, n)).convert("RGB").resize((W, H)), np.float32)
        for n in names
    ]
    return np.stack(images), weights


@pytest.mark.slow
def test_the_lite_student_exports_to_builtin_tflite_float_and_int8(photos, tmp_path):
    from ka_tf.models import LiteStudent

    images, weights = photos
    declare_task("person", "binary")
    student = LiteStudent(("person", "depth"), decoder_channels=16)
    student.encoder.load_weights(weights)
    report = export_model(
        student,
        str(tmp_path / "export"),
        formats=["tflite"],
        tflite_quantizations=["none", "int8"],
        image_size=(H, W),
        representative_images=list(images[:4]),
        parity_images=images[4:],
    )
    reference = student(images[4:])
    for name in ("student.tflite", "student_int8.tflite"):
        runner = TFLiteRunner(str(tmp_path / "export" / name))
        ops = runner.builtin_ops()
        assert {"CONV_2D", "DEPTHWISE_CONV_2D", "RESIZE_BILINEAR"} <= ops, ops
        forbidden = [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
        assert not forbidden and not ops & {"VAR_HANDLE", "READ_VARIABLE"}, ops
        outputs = runner(images[4:])
        error = np.abs(outputs["person_probs"] - np.asarray(reference["person"])).mean()
        assert error < (1e-4 if name == "student.tflite" else 0.05), (name, error)
    assert (
        "QUANTIZE" in TFLiteRunner(str(tmp_path / "export" / "student_int8.tflite")).builtin_ops()
    )
    assert set(report["artifacts"]) >= {"student.tflite", "student_int8.tflite"}
