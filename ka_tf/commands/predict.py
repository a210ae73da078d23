"""Predicts on your own images with a model in any shipped form, and draws the results.

Usage:
    python tools/predict.py --model=export/student.tflite --input=photos/ --out_dir=pred

--model is a .keras file, a SavedModel directory (an export directory or its
saved_model/ folder resolves to the highest version), a .tflite file (LiteRT) or an
.onnx file (ONNX Runtime); the runtime is picked from the path. --input is one image
or a folder (searched recursively for .jpg/.jpeg/.png/.webp). Each image, of any size,
is resized to the model's input size and the outputs are resized back (class ids
nearest, the rest bilinear). A .keras model without a fixed input size (a fully
convolutional student) runs each image at its own size rounded to a multiple of 32,
unless --image_size is given; the tool says which. For each image <stem> the tool writes:

- <stem>_panel.png: input | segmentation with a legend | depth with a scale bar |
  normals (the panels of the tasks the model has);
- <stem>_<output>.npy: the raw outputs at the image's size — semseg (int32 class ids
  [H, W]), semseg_probs (float32 [H, W, C]), depth (float32 metres [H, W]), normals
  (float32 [H, W, 3]).

Images in sub-folders keep their relative path under --out_dir.
"""

from __future__ import annotations

import os

from absl import flags

from ka_tf import cli, path_flags
from ka_tf.visualize import CLASS_NAME_SETS, class_names_and_palette

path_flags.define_path(
    "model", None, "A .keras file, SavedModel directory, .tflite or .onnx file (required)."
)
path_flags.define_path("input", None, "An image file or a folder of images (required).")
path_flags.define_path("out_dir", None, "Where to write the panels and .npy outputs (required).")
flags.DEFINE_enum(
    "class_names",
    "auto",
    CLASS_NAME_SETS,
    "Class names and palette of the segmentation: cityscapes (19 classes), nyu13 (13), "
    "none (numbered classes, a default palette), or auto: inferred from the class count "
    "(19 -> cityscapes, 13 -> nyu13, else none).",
)
flags.DEFINE_list(
    "image_size",
    None,
    "H,W for .keras models without a fixed input size (multiples of 32); default: each "
    "image's own size rounded to a multiple of 32.",
)
flags.DEFINE_bool("progress", True, "Show a progress bar.")
FLAGS = flags.FLAGS


def _column(image, extra=None):
    import numpy as np

    if extra is None:
        return image
    width = max(image.shape[1], extra.shape[1])
    pad = lambda a: np.pad(  # noqa: E731
        a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=255
    )
    return np.concatenate([pad(image), pad(extra)], axis=0)


def make_panel(image, outputs: dict, class_names, palette):
    """The PNG panel of one image: input | segmentation + legend | depth + bar | normals."""
    import numpy as np

    from ka_tf import visualize

    width = image.shape[1]
    columns = [visualize.titled(image, "input")]
    if "semseg" in outputs:
        seg = visualize.colorize_labels(outputs["semseg"], palette)
        present = sorted(set(np.unique(outputs["semseg"]).tolist()))
        legend = visualize.legend(
            [class_names[i] for i in present], np.asarray(palette)[present], max(width, 120)
        )
        columns.append(_column(visualize.titled(seg, "segmentation"), legend))
    if "depth" in outputs:
        depth = outputs["depth"]
        valid = depth[np.isfinite(depth) & (depth > 0)]
        vmin = float(valid.min()) if valid.size else 0.1
        vmax = float(valid.max()) if valid.size else 1.0
        bar = visualize.depth_scale_bar(14, max(width, 120), vmin, vmax)
        columns.append(
            _column(visualize.titled(visualize.colorize_depth(depth, vmin, vmax), "depth"), bar)
        )
    if "normals" in outputs:
        columns.append(visualize.titled(visualize.colorize_normals(outputs["normals"]), "normals"))
    return visualize.make_grid([columns])


def main(argv: list[str]) -> int:
    del argv
    model_path = cli.require_flag("model")
    input_path = cli.require_flag("input")
    out_dir = cli.require_flag("out_dir")

    from tqdm import tqdm

    from ka_tf import io_utils, visualize
    from ka_tf.data import resize
    from ka_tf.data.image_folder import find_images
    from ka_tf.errors import ConfigError, DataError
    from ka_tf.export.runtimes import resize_images, resize_outputs

    if os.path.isdir(input_path):
        images, _ = find_images(input_path)
        root = input_path
        if not images:
            raise DataError(
                f"--input={input_path} holds no images (.jpg, .jpeg, .png, .webp, searched "
                f"recursively)."
            )
    elif os.path.isfile(input_path):
        images, root = [input_path], os.path.dirname(input_path)
    else:
        raise DataError(f"--input={input_path} does not exist; pass an image or a folder.")
    size = None
    if FLAGS.image_size:
        try:
            size = tuple(int(v) for v in FLAGS.image_size)
        except ValueError:
            raise ConfigError(f"--image_size={','.join(FLAGS.image_size)} must be H,W.") from None
    first_size = resize.read_image(images[0]).shape[:2]
    runner_for = _runner_for_images(model_path, size, first_size)
    runner = runner_for(first_size)
    names, palette = [], []
    if runner.num_classes is not None:
        names, palette = class_names_and_palette(FLAGS.class_names, runner.num_classes)
    io_utils.ensure_writable_dir(out_dir, "--out_dir")
    print(
        f"{runner.runtime} model {runner.path}: input {runner.image_size}, outputs "
        f"{list(runner.output_names)}"
    )
    for path in tqdm(images, desc="predict", unit="image", disable=not FLAGS.progress):
        image = resize.read_image(path)
        runner = runner_for(image.shape[:2])
        outputs = runner(resize_images(image[None], runner.image_size))
        outputs = {k: v[0] for k, v in resize_outputs(outputs, image.shape[:2]).items()}
        stem = os.path.splitext(os.path.relpath(path, root))[0]
        target = os.path.join(out_dir, stem)
        os.makedirs(os.path.dirname(target) or out_dir, exist_ok=True)
        for name, value in outputs.items():
            io_utils.atomic_write(f"{target}_{name}.npy", lambda tmp, v=value: _save_npy(tmp, v))
        visualize.save_png(f"{target}_panel.png", make_panel(image, outputs, names, palette))
    print(f"wrote {len(images)} panel(s) and outputs to {out_dir}")
    return 0


def own_size(height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` rounded to the nearest multiples of 32 (at least 32)."""
    from ka_tf.constants import SIZE_DIVISOR

    return tuple(max(SIZE_DIVISOR, round(d / SIZE_DIVISOR) * SIZE_DIVISOR) for d in (height, width))


def _runner_for_images(model_path: str, size, first_image_size):
    """A function ``(H, W) of an image → the runner to run it with``.

    A model with a fixed input size (or any model given --image_size) has one runner.
    A .keras model without one gets a runner per rounded image size (:func:`own_size`).
    """
    from ka_tf.export.runtimes import KerasRunner, load_runner

    if size is None and os.path.isfile(model_path) and model_path.lower().endswith(".keras"):
        from ka_tf.evaluation import load_model_file

        model = load_model_file(model_path)
        shape = tuple(model.input.shape) if hasattr(model, "input") else ()
        if len(shape) == 4 and (shape[1] is None or shape[2] is None):
            print(
                f"{model_path} has no fixed input size and no --image_size was given: each "
                f"image runs at its own size rounded to a multiple of 32 (the first: "
                f"{tuple(first_image_size)} -> {own_size(*first_image_size)})."
            )
            runners: dict = {}

            def runner_for(image_size):
                key = own_size(*image_size)
                if key not in runners:
                    runners[key] = KerasRunner(model, key, model_path)
                return runners[key]

            return runner_for
        runner = KerasRunner(model, None, model_path)
    else:
        runner = load_runner(model_path, size)
    return lambda image_size: runner


def _save_npy(path: str, value) -> None:
    import numpy as np

    with open(path, "wb") as handle:
        np.save(handle, value)


def run() -> None:
    """The `ka-predict` console script and `python tools/predict.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
