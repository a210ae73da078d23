"""PyTorch -> Keras SegNet converter: parity, checkpoint forms, bad input, the tool."""

import os
import sys

import keras
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import torch_segnet  # noqa: E402
from benchmarks.torch_segnet import TorchSegNet  # noqa: E402
from ka_tf import convert  # noqa: E402
from ka_tf.errors import ConfigError, ModelFileError  # noqa: E402
from ka_tf.models import MaxPoolWithSwitches, MaxUnpool, SegNet  # noqa: E402
from ka_tf.models import arch as arch_lib  # noqa: E402
from ka_tf.models.unpooling import first_max_switches, portable_unpooling  # noqa: E402
from tests import helpers  # noqa: E402

WIDTH = 1 / 16  # widths 4, 8, 16, 32, 32
WIDTHS = [4, 8, 16, 32, 32]
IMAGES = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 64, 3)).astype("float32")
RELATIVE_TOLERANCE = 1e-4


def random_teacher(arch, task, num_classes=5, seed=0, **kwargs):
    """A PyTorch SegNet with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = TorchSegNet(
        task, num_classes=num_classes, arch=arch, width_multiplier=WIDTH, **kwargs
    ).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.3)
                module.running_var.uniform_(0.3, 3.0)
                module.num_batches_tracked.fill_(1000)
    return model


def save(obj, path):
    torch.save(obj, str(path))
    return str(path)


def assert_parity(keras_model, torch_model, images=IMAGES):
    diff, scale = convert.torch_parity(keras_model, torch_model, images)
    assert scale > 1e-3, f"degenerate output scale {scale}"
    assert diff <= RELATIVE_TOLERANCE * scale, (diff, scale)
    return diff, scale


# --- parity -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arch,task",
    [
        ("segnet_vgg16_bn", "semseg"),
        ("segnet_vgg16_bn", "depth"),
        ("segnet_vgg11", "semseg"),
        ("segnet_vgg11", "depth"),
        ("segnet_vgg13_bn", "normals"),
    ],
)
def test_converted_teacher_matches_pytorch(tmp_path, arch, task):
    reference = random_teacher(arch, task)
    path = save(reference.state_dict(), tmp_path / "teacher.pth")
    num_classes = 5 if task == "semseg" else None
    model = convert.convert_checkpoint(
        path, arch, task, num_classes=num_classes, width_multiplier=WIDTH
    )
    assert isinstance(model, SegNet)
    assert list(model.widths) == WIDTHS
    assert model.batch_norm == arch.endswith("_bn")
    assert model.depth_activation == "identity"
    expected_shape = {"semseg": (2, 32, 64, 5), "depth": (2, 32, 64), "normals": (2, 32, 64, 3)}
    assert tuple(model(IMAGES)[task].shape) == expected_shape[task]
    assert_parity(model, reference)
    # Every float tensor of the checkpoint became exactly one Keras weight.
    stored = sum(
        v.numel() for k, v in reference.state_dict().items() if "num_batches_tracked" not in k
    )
    assert model.count_params() == stored


def test_custom_normalisation_and_depth_activation():
    reference = random_teacher("segnet_vgg11_bn", "depth", depth_activation="softplus")
    mean, std = (100.0, 110.0, 120.0), (30.0, 40.0, 50.0)
    model = convert.convert_state_dict(
        reference.state_dict(),
        "segnet_vgg11_bn",
        "depth",
        width_multiplier=WIDTH,
        depth_activation="softplus",
        image_mean=mean,
        image_std=std,
    )
    assert model.image_mean == list(mean) and model.image_std == list(std)
    assert_parity(model, reference)
    assert float(np.min(model(IMAGES)["depth"])) > 0


def test_num_classes_read_from_checkpoint_when_omitted():
    reference = random_teacher("segnet_vgg11", "semseg", num_classes=7)
    model = convert.convert_state_dict(
        reference.state_dict(), "segnet_vgg11", "semseg", width_multiplier=WIDTH
    )
    assert model.num_classes == 7
    assert_parity(model, reference)


def test_explicit_channels_equal_width_multiplier():
    reference = random_teacher("segnet_vgg11", "semseg")
    model = convert.convert_state_dict(
        reference.state_dict(), "segnet_vgg11", "semseg", num_classes=5, channels=WIDTHS
    )
    assert list(model.widths) == WIDTHS
    assert_parity(model, reference)


# --- checkpoint forms ---------------------------------------------------------------


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "model_state_dict"])
def test_wrapped_checkpoint_with_module_prefix(tmp_path, wrapper):
    reference = random_teacher("segnet_vgg11_bn", "semseg", seed=3)
    prefixed = {f"module.{k}": v for k, v in reference.state_dict().items()}
    payload = {"epoch": 7, "best_miou": 0.5, wrapper: prefixed}
    path = save(payload, tmp_path / "wrapped.pth")
    state = convert.load_checkpoint(path)
    assert set(state) == set(reference.state_dict())
    assert all(isinstance(v, np.ndarray) for v in state.values())
    model = convert.convert_checkpoint(
        path, "segnet_vgg11_bn", "semseg", num_classes=5, width_multiplier=WIDTH
    )
    assert_parity(model, reference)


def test_pickled_module_needs_trust(tmp_path):
    reference = random_teacher("segnet_vgg11", "depth", seed=4)
    path = save({"model": reference}, tmp_path / "module.pth")
    with pytest.raises(ModelFileError, match="--trust_checkpoint"):
        convert.load_checkpoint(path)
    model = convert.convert_checkpoint(
        path, "segnet_vgg11", "depth", trusted=True, width_multiplier=WIDTH
    )
    assert_parity(model, reference)


def test_checkpoint_without_num_batches_tracked():
    reference = random_teacher("segnet_vgg11_bn", "semseg")
    state = {k: v for k, v in reference.state_dict().items() if "num_batches_tracked" not in k}
    model = convert.convert_state_dict(
        state, "segnet_vgg11_bn", "semseg", num_classes=5, width_multiplier=WIDTH
    )
    assert_parity(model, reference)


def test_guess_arch_from_keys():
    for arch in convert.ARCHS:
        state = TorchSegNet("depth", arch=arch, width_multiplier=WIDTH).state_dict()
        assert convert.guess_arch(state) == arch
    assert convert.guess_arch({"features.0.weight": np.zeros(1)}) is None


# --- bad input: Python API ----------------------------------------------------------


def _state(arch="segnet_vgg16_bn", task="semseg"):
    return dict(random_teacher(arch, task).state_dict())


def test_renamed_key_names_both_keys():
    state = _state()
    state["down3.layers.1.0.wieght"] = state.pop("down3.layers.1.0.weight")
    with pytest.raises(ModelFileError) as info:
        convert.convert_state_dict(
            state, "segnet_vgg16_bn", "semseg", num_classes=5, width_multiplier=WIDTH
        )
    message = str(info.value)
    assert "unexpected keys ['down3.layers.1.0.wieght']" in message
    assert "missing keys ['down3.layers.1.0.weight']" in message


def test_extra_key_is_not_ignored():
    state = _state()
    state["aux_head.weight"] = torch.zeros(3)
    with pytest.raises(ModelFileError, match=r"unexpected keys \['aux_head.weight'\]"):
        convert.convert_state_dict(
            state, "segnet_vgg16_bn", "semseg", num_classes=5, width_multiplier=WIDTH
        )


def test_wrong_shape_names_key_and_both_shapes():
    state = _state()
    state["up4.layers.0.1.running_var"] = torch.ones(17)
    with pytest.raises(
        ModelFileError, match=r"'up4.layers.0.1.running_var' has shape \[17\].*expects \[32\]"
    ):
        convert.convert_state_dict(
            state, "segnet_vgg16_bn", "semseg", num_classes=5, width_multiplier=WIDTH
        )


def test_wrong_channels_suggests_the_checkpoint_widths():
    with pytest.raises(ModelFileError) as info:
        convert.convert_state_dict(_state(), "segnet_vgg16_bn", "semseg", num_classes=5)
    message = str(info.value)
    assert "'down1.layers.0.0.weight' has shape [4, 3, 3, 3]" in message
    assert "expects [64, 3, 3, 3]" in message
    assert "--channels=4,8,16,32,32" in message


def test_unknown_arch():
    with pytest.raises(ConfigError, match=r"arch='segnet_vgg99'.*segnet_vgg16_bn"):
        convert.convert_state_dict(_state(), "segnet_vgg99", "semseg", num_classes=5)
    with pytest.raises(ConfigError, match=r"arch='vgg16_bn'"):
        convert.parse_arch("vgg16_bn")


def test_wrong_arch_variant_names_the_right_one():
    with pytest.raises(ModelFileError, match=r"pass --arch=segnet_vgg16_bn"):
        convert.convert_state_dict(
            _state(), "segnet_vgg16", "semseg", num_classes=5, width_multiplier=WIDTH
        )
    with pytest.raises(ModelFileError, match=r"keys match arch=segnet_vgg16_bn"):
        convert.convert_state_dict(
            _state(), "segnet_vgg11_bn", "semseg", num_classes=5, width_multiplier=WIDTH
        )


def test_num_classes_mismatch():
    with pytest.raises(
        ModelFileError,
        match=r"--num_classes=19 disagrees.*'up1.layers.1.0.weight' has shape \[5, 4, 3, 3\]",
    ):
        convert.convert_state_dict(
            _state(), "segnet_vgg16_bn", "semseg", num_classes=19, width_multiplier=WIDTH
        )


def test_task_mismatch():
    with pytest.raises(
        ModelFileError, match=r"--task=depth needs a 1-channel head.*\[5, 4, 3, 3\]"
    ):
        convert.convert_state_dict(_state(), "segnet_vgg16_bn", "depth", width_multiplier=WIDTH)


@pytest.mark.parametrize(
    "payload,fragment",
    [
        ([1, 2, 3], "holds a list, not a state_dict"),
        ({"epoch": 3, "lr": 0.1}, "holds a dict with keys ['epoch', 'lr'], not a state_dict"),
        ({"state_dict": {"a": 1}}, "not a state_dict"),
        ({}, "holds a dict with keys [], not a state_dict"),
    ],
)
def test_non_state_dict_file(tmp_path, payload, fragment):
    path = save(payload, tmp_path / "odd.pth")
    with pytest.raises(ModelFileError) as info:
        convert.load_checkpoint(path)
    assert fragment in str(info.value)
    assert path in str(info.value)


def test_text_and_missing_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(ModelFileError, match=r"notes.txt is not a readable PyTorch checkpoint"):
        convert.load_checkpoint(str(text))
    with pytest.raises(ModelFileError, match=r"nope.pth does not exist"):
        convert.load_checkpoint(str(tmp_path / "nope.pth"))


def test_missing_torch_names_the_extra(tmp_path, monkeypatch):
    path = save(_state(), tmp_path / "teacher.pth")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ModelFileError, match=r"pip install 'ka_tf\[convert\]'"):
        convert.load_checkpoint(path)


# --- the PyTorch reference model ----------------------------------------------------


def test_reference_layout_and_tables():
    assert torch_segnet.VGG_CONVS == arch_lib.VGG_CONVS
    assert torch_segnet.ARCHS == convert.ARCHS
    assert torch_segnet.DEPTH_ACTIVATIONS == arch_lib.DEPTH_ACTIVATIONS
    for multiplier in (1.0, 0.25, 1 / 16, 0.1):
        assert torch_segnet.scaled_channels(
            arch_lib.DEFAULT_CHANNELS, multiplier
        ) == arch_lib.scaled_channels(arch_lib.DEFAULT_CHANNELS, multiplier)
    bn = TorchSegNet("semseg", 5, "segnet_vgg16_bn", width_multiplier=WIDTH).state_dict()
    assert tuple(bn["down1.layers.0.0.weight"].shape) == (4, 3, 3, 3)
    assert tuple(bn["down5.layers.2.1.running_var"].shape) == (32,)
    assert tuple(bn["up5.layers.2.0.weight"].shape) == (32, 32, 3, 3)  # up5: 512 -> 512
    assert tuple(bn["up1.layers.1.0.weight"].shape) == (5, 4, 3, 3)  # the head
    assert "up1.layers.1.1.weight" not in bn  # outermost conv: no BatchNorm
    plain = TorchSegNet("semseg", 5, "segnet_vgg16", width_multiplier=WIDTH).state_dict()
    assert all(".0." in key for key in plain)  # conv at .0, parameter-free ReLU at .1
    assert len(plain) == 2 * (2 * 13)  # 13 encoder + 12 decoder convs + head, weight & bias


# --- tie rule -----------------------------------------------------------------------


def test_pytorch_and_keras_unpooling_agree_on_ties():
    rng = np.random.default_rng(5)
    # Values in {0, 1, 2}: most 2x2 windows hold a tied maximum; some are all equal.
    features = rng.integers(0, 3, size=(2, 3, 8, 12)).astype("float32")
    features[0, 0, :2, :2] = 1.0
    pooled_t, indices = torch.nn.MaxPool2d(2, 2, return_indices=True)(torch.from_numpy(features))
    # Unpool distinct values so that the chosen position, not just the value, is compared.
    values = pooled_t + torch.arange(1, pooled_t.numel() + 1, dtype=torch.float32).reshape(
        pooled_t.shape
    )
    unpooled_t = torch.nn.MaxUnpool2d(2, 2)(values, indices, output_size=features.shape)

    nhwc = np.transpose(features, (0, 2, 3, 1))
    pooled_k, switches = MaxPoolWithSwitches()(nhwc)
    unpooled_k = MaxUnpool()([np.transpose(values.numpy(), (0, 2, 3, 1)), switches])

    windows = features.reshape(2, 3, 4, 2, 6, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 4, 6, 4)
    ties = (windows == windows.max(-1, keepdims=True)).sum(-1) > 1
    assert ties.mean() > 0.3, "the input should have many tied windows"
    np.testing.assert_array_equal(
        np.asarray(pooled_k), np.transpose(pooled_t.numpy(), (0, 2, 3, 1))
    )
    np.testing.assert_array_equal(
        np.asarray(unpooled_k), np.transpose(unpooled_t.numpy(), (0, 2, 3, 1))
    )
    # The exported (portable) form unpools the same way, and its first-maximum mask
    # is exactly PyTorch's indices, one per window.
    with portable_unpooling():
        portable = MaxUnpool()([np.transpose(values.numpy(), (0, 2, 3, 1)), switches])
    np.testing.assert_array_equal(np.asarray(portable), np.asarray(unpooled_k))
    mask = np.zeros(features.size, "float32").reshape(2, 3, -1)
    np.put_along_axis(mask, indices.numpy().reshape(2, 3, -1), 1.0, axis=-1)
    np.testing.assert_array_equal(
        np.asarray(first_max_switches(nhwc, pooled_k)),
        np.transpose(mask.reshape(features.shape), (0, 2, 3, 1)),
    )


# --- the tool -----------------------------------------------------------------------


def test_tool_converts_verifies_and_saves_a_reloadable_teacher(tmp_path):
    reference = random_teacher("segnet_vgg16_bn", "depth", seed=9)
    path = save({"state_dict": reference.state_dict(), "epoch": 1}, tmp_path / "t.pth")
    output = tmp_path / "out" / "teacher.keras"
    result = helpers.run_tool(
        "tools/convert_teacher.py",
        f"--checkpoint={path}",
        "--arch=segnet_vgg16_bn",
        "--task=depth",
        "--channels=4,8,16,32,32",
        "--verify",
        "--verify_size=32,64",
        f"--output={output}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = reference.state_dict().items()
    params = sum(v.numel() for k, v in stats if "num_batches_tracked" not in k)
    assert f"parameters: {params:,}" in result.stdout
    parity = [line for line in result.stdout.splitlines() if line.startswith("parity")]
    assert parity and "max abs diff" in parity[0], result.stdout
    assert os.path.isfile(output)
    assert not [f for f in os.listdir(output.parent) if f != "teacher.keras"]  # no temp left
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(output).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    import ka_tf.models  # noqa: F401  (registers the layers for load_model)

    restored = keras.saving.load_model(str(output))
    assert isinstance(restored, SegNet)
    assert restored.depth_activation == "identity"
    assert_parity(restored, reference)


def test_tool_wrong_shape_is_one_line_error(tmp_path):
    path = save(random_teacher("segnet_vgg16_bn", "semseg").state_dict(), tmp_path / "t.pth")
    output = tmp_path / "teacher.keras"
    result = helpers.run_tool(
        "tools/convert_teacher.py",
        f"--checkpoint={path}",
        "--arch=segnet_vgg16_bn",
        "--task=semseg",
        "--num_classes=5",
        f"--output={output}",
    )
    helpers.assert_one_line_error(
        result, "'down1.layers.0.0.weight'", "[4, 3, 3, 3]", "[64, 3, 3, 3]", "--channels="
    )
    assert not output.exists()


@pytest.mark.slow  # ~11 s of tool runs; CI runs it (make test-slow)
def test_tool_num_classes_mismatch_and_non_state_dict(tmp_path):
    path = save(random_teacher("segnet_vgg11", "semseg").state_dict(), tmp_path / "t.pth")
    result = helpers.run_tool(
        "tools/convert_teacher.py",
        f"--checkpoint={path}",
        "--arch=segnet_vgg11",
        "--task=semseg",
        "--num_classes=13",
        "--width_multiplier=0.0625",
        f"--output={tmp_path / 'a.keras'}",
    )
    helpers.assert_one_line_error(result, "--num_classes=13", "[5, 4, 3, 3]", "--num_classes=5")
    listing = save(["not", "weights"], tmp_path / "list.pth")
    result = helpers.run_tool(
        "tools/convert_teacher.py",
        f"--checkpoint={listing}",
        "--task=semseg",
        f"--output={tmp_path / 'b.keras'}",
    )
    helpers.assert_one_line_error(result, "list.pth", "not a state_dict")
