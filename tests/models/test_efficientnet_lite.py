"""EfficientNet-Lite0: shapes, params, the PyTorch converter's parity and errors, TFLite.

The real ImageNet weights (``efficientnet-lite0-57934424.pth``) and photos are read
from the fetch cache ``$KA_TF_REAL_CACHE`` (default ``~/.cache/ka_tf/real``; ``make
real-teachers`` fills it); without them those tests skip. Every other test uses
random PyTorch weights with random BatchNorm statistics.
"""

import functools
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.models import EfficientNetLite0
from tests import helpers

TOLERANCE = 1e-4  # max |keras - torch| relative to max |torch|
IMAGES = np.random.default_rng(0).uniform(0, 255, size=(2, 64, 96, 3)).astype("float32")
FEATURE_CHANNELS = {"stride2": 16, "stride4": 24, "stride8": 40, "stride16": 112, "stride32": 320}
# Trainable parameters with the top: the .pth's 4,694,024 values less BatchNorm's 42,016
# running means and variances (which count_params() includes).
TRAINABLE_WITH_TOP = 4_652_008
PARAMS_WITH_TOP = 4_694_024
PTH_NAME = "efficientnet-lite0-57934424.pth"
# opencv-doc photo -> accepted ImageNet class ids (butterfly: any of the six butterflies).
PHOTOS = {
    "baboon.jpg": {372},
    "squirrel_cls.jpg": {335},
    "orange.jpg": {950},
    "butterfly.jpg": set(range(321, 327)),
}


def real_cache() -> str:
    return os.path.expanduser(os.environ.get("KA_TF_REAL_CACHE", "~/.cache/ka_tf/real"))


def trainable_count(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.fixture(scope="module")
def tel():
    pytest.importorskip("torch")
    from ka_tf.convert import torch_efficientnet_lite

    return torch_efficientnet_lite


@pytest.fixture(scope="module")
def random_state_dict(tel):
    """A full (with top) PyTorch state_dict: random weights, random BatchNorm statistics."""
    import torch

    torch.manual_seed(0)
    model = tel.EfficientNetLite0Torch(include_top=True).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.3, 3.0)
                module.num_batches_tracked.fill_(1000)
    return {key: value.clone() for key, value in model.state_dict().items()}


@pytest.fixture(scope="module")
def encoder(tel, random_state_dict):
    """The Keras encoder (no top) holding ``random_state_dict``."""
    return converted(tel, random_state_dict)


@pytest.fixture(scope="module")
def classifier(tel, random_state_dict):
    """The Keras model with the top holding ``random_state_dict``."""
    return converted(tel, random_state_dict, include_top=True)


def reference(tel, state_dict, include_top=True, padding="same"):
    model = tel.EfficientNetLite0Torch(include_top=include_top, padding=padding).eval()
    model.load_state_dict(state_dict, strict=True)
    return model


def converted(tel, state_dict, **kwargs):
    model = EfficientNetLite0(**kwargs)
    tel.convert_state_dict(state_dict, model)
    return model


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# --- (a) the Keras model ---------------------------------------------------------------


@pytest.mark.parametrize("height,width", [(224, 224), (128, 256)])
def test_feature_shapes_at_each_stride(height, width):
    outputs = EfficientNetLite0()(np.zeros((1, height, width, 3), "float32"))
    assert list(outputs) == list(FEATURE_CHANNELS)
    for key, channels in FEATURE_CHANNELS.items():
        stride = int(key.removeprefix("stride"))
        assert tuple(outputs[key].shape) == (1, height // stride, width // stride, channels)
        assert outputs[key].dtype == tf.float32


def test_top_logits_and_parameter_counts():
    model = EfficientNetLite0(include_top=True)
    outputs = model(np.zeros((2, 224, 224, 3), "float32"))
    assert list(outputs) == ["logits"] and tuple(outputs["logits"].shape) == (2, 1000)
    assert trainable_count(model) == TRAINABLE_WITH_TOP
    assert model.count_params() == PARAMS_WITH_TOP
    encoder = EfficientNetLite0()
    # Without the top: less _conv_head (320x1280), _bn1 (4x1280) and _fc (1280x1000+1000).
    assert encoder.count_params() == PARAMS_WITH_TOP - 320 * 1280 - 4 * 1280 - 1281 * 1000
    assert encoder.feature_channels == FEATURE_CHANNELS


def test_layers_are_named_after_the_torch_keys_and_builtin_kinds(tel):
    model = EfficientNetLite0(include_top=True)
    names = {layer.name for layer in model.layers}
    assert {"conv_stem", "bn0", "blocks_0_depthwise_conv", "blocks_1_expand_conv"} <= names
    assert {"blocks_15_project_conv", "blocks_15_bn2", "conv_head", "bn1", "fc"} <= names
    assert "blocks_0_expand_conv" not in names  # block 0 has expand ratio 1
    assert tel.torch_prefix("blocks_3_bn1") == "_blocks.3._bn1"
    assert tel.torch_prefix("conv_stem") == "_conv_stem"
    allowed = (
        keras.layers.InputLayer,
        keras.layers.Rescaling,
        keras.layers.Conv2D,
        keras.layers.DepthwiseConv2D,
        keras.layers.BatchNormalization,
        keras.layers.ReLU,
        keras.layers.Add,
        keras.layers.GlobalAveragePooling2D,
        keras.layers.Dense,
    )
    assert not [layer for layer in model.layers if not isinstance(layer, allowed)]
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert relus and all(layer.max_value == 6.0 for layer in relus)
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    # Residuals where stride 1 and in == out: 16 blocks less the 7 stage openers.
    assert len(adds) == 9


def test_config_roundtrip_and_save_load(tmp_path):
    model = EfficientNetLite0(image_shape=(32, 32, 3), name="encoder")
    images = IMAGES[:1, :32, :32]
    clone = helpers.run_config_roundtrip(model, images)
    assert clone.name == "encoder" and clone.image_shape == (32, 32, 3)
    helpers.run_save_load(model, images, str(tmp_path))


# --- (b) parity with random PyTorch weights ------------------------------------------------


def test_parity_with_random_torch_weights_on_every_output(
    tel, random_state_dict, encoder, classifier
):
    torch_model = reference(tel, random_state_dict)
    report = tel.torch_parity(encoder, torch_model, IMAGES)
    report.update(tel.torch_parity(classifier, torch_model, IMAGES))
    assert sorted(report) == sorted([*FEATURE_CHANNELS, "logits"])
    for key, figures in report.items():
        assert figures["scale"] > 1e-2, (key, figures)
        assert figures["max_rel_diff"] <= TOLERANCE, (key, figures)


def test_same_padding_matches_at_odd_sizes_and_symmetric_does_not(tel, random_state_dict, encoder):
    model = encoder
    # Not multiples of 32: "same" pads odd sizes evenly and even sizes one more at the end.
    odd = IMAGES[:1, :45, :77]
    same = tel.torch_parity(model, reference(tel, random_state_dict), odd)
    assert max(f["max_rel_diff"] for f in same.values()) <= TOLERANCE, same
    symmetric = reference(tel, random_state_dict, padding="symmetric")
    report = tel.torch_parity(model, symmetric, IMAGES[:1, :32, :32])
    assert report["stride2"]["max_rel_diff"] > 1e-2, report  # the test can see padding


def test_encoder_only_state_dict_converts_without_top(tel, random_state_dict):
    top = ("_conv_head.", "_bn1.", "_fc.")
    encoder_keys = {k: v for k, v in random_state_dict.items() if not k.startswith(top)}
    model = converted(tel, encoder_keys)
    report = tel.torch_parity(model, reference(tel, encoder_keys, include_top=False), IMAGES)
    assert max(f["max_rel_diff"] for f in report.values()) <= TOLERANCE, report


# --- (c) bad state_dicts: one line naming the key ----------------------------------------


BAD_STATE_DICTS = [  # (include_top, keys to drop, keys to add, fragments of the message)
    (False, ["_blocks.3._bn1.running_var"], {}, ["missing key", "_blocks.3._bn1.running_var"]),
    (True, ["_fc.bias"], {}, ["missing key", "'_fc.bias'"]),
    (
        False,
        [],
        {"_blocks.1._se_reduce.weight": np.zeros((4, 96, 1, 1), "float32")},
        ["unexpected key", "_blocks.1._se_reduce.weight"],
    ),
    (
        False,
        ["_blocks.5._depthwise_conv.weight"],
        {"_blocks.5._depthwise_conv.weight": np.zeros((240, 1, 5, 5), "float32")},
        ["'_blocks.5._depthwise_conv.weight'", "[240, 1, 5, 5]", "[240, 1, 3, 3]"],
    ),
    (False, ["_bn0.weight"], {"_bn0.weight": np.zeros((16,), "float32")}, ["'_bn0.weight'"]),
    (  # the top's keys are checked even when they are left out
        False,
        ["_fc.weight"],
        {"_fc.weight": np.zeros((10, 1280), "float32")},
        ["'_fc.weight'", "[10, 1280]"],
    ),
]


@pytest.mark.parametrize("case", range(len(BAD_STATE_DICTS)))
def test_bad_state_dict_is_one_line_naming_the_key(
    tel, random_state_dict, encoder, classifier, case
):
    include_top, drop, add, fragments = BAD_STATE_DICTS[case]
    model = classifier if include_top else encoder
    before = [w.copy() for w in model.get_weights()]
    state_dict = {k: v for k, v in random_state_dict.items() if k not in drop} | add
    with pytest.raises(ModelFileError) as error:
        tel.convert_state_dict(state_dict, model, source="x.pth")
    assert_one_line(error, "x.pth", *fragments)
    for old, new in zip(before, model.get_weights(), strict=True):  # nothing assigned
        np.testing.assert_array_equal(old, new)


def test_convert_file_writes_weights_that_load_by_name(tel, random_state_dict, encoder, tmp_path):
    import torch

    pth = str(tmp_path / "random.pth")
    torch.save(random_state_dict, pth)
    output = str(tmp_path / "encoder.weights.h5")
    record = tel.convert_efficientnet_lite0(pth, output, include_top=False)
    assert sorted(record["parity"]) == sorted(FEATURE_CHANNELS)
    assert all(f["max_rel_diff"] <= TOLERANCE for f in record["parity"].values())
    assert record["tensors"] == len(random_state_dict) and len(record["sha256"]) == 64
    fresh = EfficientNetLite0(name="encoder")
    fresh.load_weights(output)
    helpers.assert_outputs_close(fresh(IMAGES[:1]), encoder(IMAGES[:1]), atol=1e-6, rtol=1e-6)


def test_convert_file_refuses_bad_paths_and_failed_parity(
    tel, random_state_dict, tmp_path, monkeypatch
):
    import torch

    pth = str(tmp_path / "random.pth")
    torch.save(random_state_dict, pth)
    with pytest.raises(ConfigError) as error:
        tel.convert_efficientnet_lite0(pth, str(tmp_path / "out.h5"))
    assert_one_line(error, "out.h5", ".weights.h5")
    with pytest.raises(ModelFileError) as error:
        tel.convert_efficientnet_lite0(str(tmp_path / "none.pth"), str(tmp_path / "a.keras"))
    assert_one_line(error, "none.pth")
    # A reference that pads differently: the parity check must refuse and write nothing.
    symmetric = functools.partial(tel._reference_class(), padding="symmetric")
    monkeypatch.setattr(tel, "_reference_class", lambda: symmetric)
    output = tmp_path / "enc.weights.h5"
    with pytest.raises(ModelFileError) as error:
        tel.convert_efficientnet_lite0(pth, str(output))
    assert_one_line(error, "parity check failed", "was not written")
    assert not output.exists()


# --- (d) the real ImageNet weights ---------------------------------------------------------


@pytest.fixture(scope="module")
def real_pth():
    path = os.path.join(real_cache(), "models", PTH_NAME)
    if not os.path.isfile(path):
        pytest.skip(f"{path} is not cached: run `make real-teachers` to fetch it")
    return path


def _cached_photos() -> dict[str, str]:
    """Name -> path of the :data:`PHOTOS` in the fetch cache (any folder under photos/)."""
    found = {}
    for directory, _, names in sorted(os.walk(os.path.join(real_cache(), "photos"))):
        found.update({name: os.path.join(directory, name) for name in names if name in PHOTOS})
    return found


def _photo(path: str, size: int = 224) -> np.ndarray:
    """Centre crop (224/256 of the short side), bicubic resize: float32 [size, size, 3]."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    height, width = int(image.shape[0]), int(image.shape[1])
    side = round(min(height, width) * 224 / 256)
    top, left = (height - side) // 2, (width - side) // 2
    crop = tf.cast(image[top : top + side, left : left + side], tf.float32)
    return np.clip(tf.image.resize(crop, (size, size), method="bicubic").numpy(), 0, 255)


def test_real_weights_parity_params_and_photos(tel, real_pth, tmp_path):
    import torch

    state_dict = torch.load(real_pth, map_location="cpu", weights_only=True)
    stored = sum(v.numel() for k, v in state_dict.items() if not k.endswith("num_batches_tracked"))
    record = tel.convert_efficientnet_lite0(
        real_pth, str(tmp_path / "lite0.keras"), include_top=True
    )
    assert record["sha256"].startswith("57934424")  # torch hub names files by sha256
    assert record["params"] == stored == PARAMS_WITH_TOP
    assert record["trainable_params"] == TRAINABLE_WITH_TOP
    assert record["parity"]["logits"]["max_rel_diff"] <= TOLERANCE, record["parity"]
    real_encoder = converted(tel, state_dict)
    features = tel.torch_parity(real_encoder, reference(tel, state_dict), IMAGES)
    assert max(f["max_rel_diff"] for f in features.values()) <= TOLERANCE, features

    found = _cached_photos()
    if len(found) < 2:
        pytest.skip(
            f"fewer than 2 of {sorted(PHOTOS)} cached under {real_cache()}/photos: run "
            f"`make real-teachers`"
        )
    model = keras.saving.load_model(str(tmp_path / "lite0.keras"))
    images = np.stack([_photo(path) for path in found.values()])
    logits = np.asarray(model(images)["logits"])
    top1 = dict(zip(found, logits.argmax(-1).tolist(), strict=True))
    assert all(top1[name] in PHOTOS[name] for name in found), top1


# --- (e) TFLite -----------------------------------------------------------------------------


def test_tflite_builtin_ops_only_and_matches_keras(tel, random_state_dict):
    from ai_edge_litert.interpreter import Interpreter

    model = converted(tel, random_state_dict, image_shape=(128, 128, 3))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert ops <= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MUL"}, ops  # ReLU6 fused, BN folded
    runner = interpreter.get_signature_runner()
    images = np.random.default_rng(1).uniform(0, 255, (1, 128, 128, 3)).astype("float32")
    outputs = runner(**{next(iter(runner.get_input_details())): images})
    expected = model(images)
    assert sorted(outputs) == sorted(FEATURE_CHANNELS)
    for key, value in outputs.items():
        reference_value = np.asarray(expected[key])
        diff = np.max(np.abs(value - reference_value)) / np.max(np.abs(reference_value))
        assert diff <= TOLERANCE, (key, diff)


# --- the tool -------------------------------------------------------------------------------


@pytest.mark.slow  # two subprocesses that import TensorFlow and torch: ~10 s
def test_convert_encoder_tool_prints_parity_and_refuses_bad_output(random_state_dict, tmp_path):
    import torch

    pth = str(tmp_path / "random.pth")
    torch.save(random_state_dict, pth)
    output, record = tmp_path / "encoder.weights.h5", tmp_path / "record.json"
    result = helpers.run_tool(
        "tools/convert_encoder.py", f"--pth={pth}", f"--output={output}", f"--record={record}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert output.is_file()
    assert sorted(json.loads(record.read_text())["parity"]) == sorted(FEATURE_CHANNELS)
    for key in FEATURE_CHANNELS:
        assert f"  {key}" in result.stdout and "max rel diff" in result.stdout, result.stdout
    bad_output = str(tmp_path / "enc.h5")
    bad = helpers.run_tool("tools/convert_encoder.py", f"--pth={pth}", f"--output={bad_output}")
    helpers.assert_one_line_error(bad, f"--output={bad_output}", ".weights.h5")
