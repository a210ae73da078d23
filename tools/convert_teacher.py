"""Converts a PyTorch SegNet teacher checkpoint into a Keras ``.keras`` teacher.

    python tools/convert_teacher.py --checkpoint=segnet_nyu13.pth \\
        --arch=segnet_vgg16_bn --task=semseg --num_classes=13 \\
        --output=teachers/nyu_semseg.keras --verify

The checkpoint must use the layout of the public PyTorch SegNet teachers
(``down{1..5}.layers.{i}.{0,1}.*``, ``up{5..1}.layers.{i}.{0,1}.*``; see
``ka_tf/convert/torch_segnet.py``). Every key is consumed and every shape checked;
a mismatch is a one-line error naming the key and both shapes. The converted
model normalises 0..255 images itself with --image_mean/--image_std, which must be
the statistics the PyTorch teacher was trained with. With --verify both models run
on random images and the maximum absolute difference is reported; a difference
above 1e-4 of the output's scale is an error and nothing is written. Needs torch:
``pip install -e .[convert]``.
"""

from __future__ import annotations

import os
import sys
import tempfile

from absl import flags

from ka_tf import cli, path_flags
from ka_tf.constants import SIZE_DIVISOR, TASKS
from ka_tf.convert import ARCHS, convert_state_dict, load_checkpoint, torch_parity
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.models import arch as arch_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY_TOLERANCE = 1e-4  # relative to the largest absolute PyTorch output

FLAGS = flags.FLAGS
path_flags.define_path("checkpoint", None, "PyTorch checkpoint (.pth/.pt) written by torch.save.")
flags.DEFINE_string(
    "arch",
    "segnet_vgg16_bn",
    f"SegNet variant of the checkpoint, one of {', '.join(ARCHS)} (_bn: with BatchNorm).",
)
flags.DEFINE_enum("task", None, list(TASKS), "Task the teacher predicts.")
flags.DEFINE_integer(
    "num_classes",
    None,
    "Classes of a semseg teacher; must equal the checkpoint's head. Omitted: read from it.",
)
flags.DEFINE_list(
    "channels",
    [str(c) for c in arch_lib.DEFAULT_CHANNELS],
    "Widths of the five encoder blocks, comma-separated.",
)
flags.DEFINE_float("width_multiplier", 1.0, "Scales --channels (for slimmed teachers).")
flags.DEFINE_enum(
    "depth_activation",
    "identity",
    list(arch_lib.DEPTH_ACTIVATIONS),
    "Depth head transform of the Keras model; identity reproduces the PyTorch raw output.",
)
flags.DEFINE_list(
    "image_mean",
    [str(v) for v in arch_lib.IMAGENET_MEAN],
    "Per-channel RGB mean in 0..255 units the teacher's inputs were normalised with.",
)
flags.DEFINE_list(
    "image_std",
    [str(v) for v in arch_lib.IMAGENET_STD],
    "Per-channel RGB std in 0..255 units the teacher's inputs were normalised with.",
)
path_flags.define_path("output", None, "Where to write the Keras teacher; must end in .keras.")
flags.DEFINE_boolean(
    "verify",
    False,
    "Run the PyTorch and the Keras model on random images and report the max abs difference "
    "(needs benchmarks/torch_segnet.py from this repository).",
)
flags.DEFINE_list("verify_size", ["64", "64"], "H,W of the --verify images (multiples of 32).")
flags.DEFINE_boolean(
    "trust_checkpoint",
    False,
    "Unpickle arbitrary objects in the checkpoint (torch.load weights_only=False). Only for "
    "files from a source you trust.",
)


def _numbers(flag: str, values: list[str], kind: type, count: int | None = None) -> list:
    try:
        numbers = [kind(v) for v in values]
    except ValueError as error:
        raise ConfigError(
            f"--{flag}={','.join(values)} is not a comma-separated list of {kind.__name__}s."
        ) from error
    if count is not None and len(numbers) != count:
        raise ConfigError(f"--{flag} needs {count} values. Received: {','.join(values)}.")
    return numbers


def _check_flags() -> None:
    for name in ("checkpoint", "task", "output"):
        if getattr(FLAGS, name) is None:
            raise ConfigError(f"--{name} is required. Run with --help to see the flags.")
    if not FLAGS.output.endswith(".keras"):
        raise ConfigError(f"--output={FLAGS.output} must end in .keras.")


def _save_atomically(model, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".keras", dir=directory
    )
    os.close(fd)
    try:
        model.save(tmp_path, overwrite=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def _verify(model, state_dict: dict, size: list[int]) -> tuple[float, float]:
    import numpy as np
    import torch

    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    from benchmarks.torch_segnet import TorchSegNet

    reference = TorchSegNet(
        model.task,
        num_classes=model.num_classes,
        arch=FLAGS.arch,
        channels=model.channels,
        width_multiplier=model.width_multiplier,
        depth_activation=model.depth_activation,
    )
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()})
    images = np.random.default_rng(0).uniform(0, 255, size=(2, *size, 3)).astype("float32")
    return torch_parity(model, reference, images)


def main(argv: list[str]) -> int:
    del argv
    _check_flags()
    channels = _numbers("channels", FLAGS.channels, int, 5)
    image_mean = _numbers("image_mean", FLAGS.image_mean, float, 3)
    image_std = _numbers("image_std", FLAGS.image_std, float, 3)
    size = _numbers("verify_size", FLAGS.verify_size, int, 2)
    if any(s <= 0 or s % SIZE_DIVISOR for s in size):
        raise ConfigError(
            f"--verify_size={','.join(FLAGS.verify_size)} must be positive multiples of "
            f"{SIZE_DIVISOR}."
        )

    state_dict = load_checkpoint(FLAGS.checkpoint, trusted=FLAGS.trust_checkpoint)
    model = convert_state_dict(
        state_dict,
        FLAGS.arch,
        FLAGS.task,
        num_classes=FLAGS.num_classes,
        channels=channels,
        width_multiplier=FLAGS.width_multiplier,
        depth_activation=FLAGS.depth_activation,
        image_mean=image_mean,
        image_std=image_std,
        source=f"--checkpoint={FLAGS.checkpoint}",
    )
    print(
        f"converted {FLAGS.checkpoint} ({len(state_dict)} tensors) -> {FLAGS.arch} "
        f"{FLAGS.task} teacher, widths {list(model.widths)}"
        + (f", {model.num_classes} classes" if model.num_classes else "")
    )
    print(f"parameters: {model.count_params():,}")
    if FLAGS.verify:
        diff, scale = _verify(model, state_dict, size)
        print(
            f"parity on 2 random {size[0]}x{size[1]} images: max abs diff {diff:.3g} "
            f"(output scale {scale:.3g}, relative {diff / max(scale, 1e-12):.3g})"
        )
        if diff > PARITY_TOLERANCE * max(scale, 1e-12):
            raise ModelFileError(
                f"parity check failed for --checkpoint={FLAGS.checkpoint}: max abs diff "
                f"{diff:.3g} exceeds {PARITY_TOLERANCE} x output scale {scale:.3g}; "
                f"{FLAGS.output} was not written."
            )
    _save_atomically(model, FLAGS.output)
    print(f"wrote {FLAGS.output}")
    return 0


if __name__ == "__main__":
    cli.run(main)
