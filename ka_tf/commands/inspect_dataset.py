"""Shows what a dataset folder holds, as ka_tf reads it: run it first on a new download.

Usage:
    python tools/inspect_dataset.py --dataset=nyuv2 --data_dir=/data/nyuv2 --split=train \\
        [--out=preview.png] [--max_examples=N] [--option=label_set=nyu13]

Prints the number of examples, image sizes, the class histogram (with class names),
the depth range and percentiles, and the fraction of valid pixels per task, then
writes a preview grid (image | colourised labels | colourised depth | normals) to
``--out``. Works for every name in ``ka_tf.data.available_datasets()``; bad folders
and files are reported on one line (exit status 2) naming the path and the fix.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import flags

from ka_tf import cli, path_flags
from ka_tf.constants import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    DEPTH,
    IGNORE_LABEL,
    IMAGE,
    NORMALS,
    NYU13_PALETTE,
    SEMSEG,
)
from ka_tf.errors import ConfigError, DataError, UserInputError

flags.DEFINE_string("dataset", None, "Dataset name, one of ka_tf.data.available_datasets().")
path_flags.define_path("data_dir", None, "The dataset's root folder.")
flags.DEFINE_string("split", None, "Split to read, e.g. train, val, test (image_folder: all).")
path_flags.define_path("out", "", "Where to write the preview grid PNG (nothing written if empty).")
flags.DEFINE_integer("max_examples", 0, "Read at most this many examples (0 = all).")
flags.DEFINE_integer("preview", 4, "Number of examples (rows) in the preview grid.")
flags.DEFINE_multi_string(
    "option",
    [],
    "Loader option as key=value, repeatable; values are Python literals or plain strings, "
    "e.g. --option=label_set=nyu13 --option='size=(256, 512)'.",
)
FLAGS = flags.FLAGS

# Depth histogram: log10(metres) from 1 mm to 10 km in 0.001-decade bins (~0.23 %).
_LOG_RANGE = (-3.0, 4.0)
_LOG_BINS = 7000
_PERCENTILES = (1, 5, 50, 95, 99)


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """Parses ``key=value`` strings; values are Python literals where they parse."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option={item!r} is not key=value, e.g. --option=label_set=nyu13.")
        try:
            options[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key.strip()] = value
    return options


def class_info(dataset: str, data_dir: str, options: dict[str, Any]) -> tuple[list, np.ndarray]:
    """Class names and palette of a dataset's labels (generic names for other datasets)."""
    from ka_tf.visualize import default_palette

    if dataset == "cityscapes":
        return list(CITYSCAPES_CLASSES), np.asarray(CITYSCAPES_PALETTE, np.uint8)
    if dataset == "nyuv2":
        from ka_tf.data import label_maps, nyuv2

        label_set = options.get("label_set")
        if label_set is None:
            layout = options.get("layout") or nyuv2.detect_layout(data_dir)
            label_set = "nyu40" if layout == "mat" else "nyu13"
        names = list(label_maps.nyu_class_names(label_set))
        palette = NYU13_PALETTE if label_set == "nyu13" else default_palette(len(names))
        return names, np.asarray(palette, np.uint8)
    names = [f"class {i}" for i in range(IGNORE_LABEL)]
    return names, default_palette(IGNORE_LABEL)


class Summary:
    """Accumulates counts over a dataset without keeping its pixels."""

    def __init__(self) -> None:
        self.count = 0
        self.sizes: dict[tuple[int, int], int] = {}
        self.keys: set[str] = set()
        self.label_counts = np.zeros(256, np.int64)
        self.label_pixels = 0
        self.depth_valid = 0
        self.depth_pixels = 0
        self.depth_min = np.inf
        self.depth_max = -np.inf
        self.depth_hist = np.zeros(_LOG_BINS, np.int64)
        self.normal_valid = 0
        self.normal_pixels = 0

    def add(self, example: dict[str, np.ndarray]) -> None:
        """Adds one example (numpy dict) to the counts."""
        self.count += 1
        self.keys.update(example)
        hw = tuple(example[IMAGE].shape[:2])
        self.sizes[hw] = self.sizes.get(hw, 0) + 1
        if SEMSEG in example:
            labels = example[SEMSEG].ravel()
            self.label_counts += np.bincount(labels, minlength=256)[:256]
            self.label_pixels += labels.size
        if DEPTH in example:
            depth = example[DEPTH]
            valid = depth[np.isfinite(depth) & (depth > 0)]
            self.depth_valid += valid.size
            self.depth_pixels += depth.size
            if valid.size:
                self.depth_min = min(self.depth_min, float(valid.min()))
                self.depth_max = max(self.depth_max, float(valid.max()))
                self.depth_hist += np.histogram(np.log10(valid), _LOG_BINS, _LOG_RANGE)[0]
        if NORMALS in example:
            norms = np.linalg.norm(example[NORMALS], axis=-1)
            self.normal_valid += int((norms > 0.5).sum())
            self.normal_pixels += norms.size

    def depth_percentiles(self) -> dict[int, float]:
        """Depth percentiles (metres) from the log histogram, clipped to the exact range."""
        cumulative = np.cumsum(self.depth_hist)
        edges = np.linspace(*_LOG_RANGE, _LOG_BINS + 1)
        centres = 10 ** ((edges[:-1] + edges[1:]) / 2)
        result = {}
        for q in _PERCENTILES:
            index = int(np.searchsorted(cumulative, q / 100 * cumulative[-1]))
            value = float(centres[min(index, _LOG_BINS - 1)])
            result[q] = float(np.clip(value, self.depth_min, self.depth_max))
        return result

    def report(self, class_names: Sequence[str]) -> str:
        """The printed summary."""
        sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in sorted(self.sizes.items()))
        lines = [f"examples     {self.count}", f"image sizes  {sizes}"]
        lines.append(f"keys         {', '.join(sorted(self.keys))}")
        if self.label_pixels:
            ignore = self.label_counts[IGNORE_LABEL]
            labelled = self.label_pixels - ignore
            lines.append(
                f"semseg       {labelled / self.label_pixels:.1%} of pixels labelled, "
                f"{ignore / self.label_pixels:.1%} ignore ({IGNORE_LABEL})"
            )
            lines.append(f"  {'id':>3}  {'class':<16} {'pixels':>12}  share")
            generic = bool(class_names) and class_names[0].startswith("class ")
            for class_id in range(IGNORE_LABEL):
                pixels = int(self.label_counts[class_id])
                named = class_id < len(class_names) and not generic
                if not named and pixels == 0:
                    continue
                name = class_names[class_id] if class_id < len(class_names) else "(unnamed)"
                share = pixels / labelled if labelled else 0.0
                lines.append(f"  {class_id:>3}  {name:<16} {pixels:>12}  {share:6.1%}")
        if self.depth_pixels:
            line = f"depth        {self.depth_valid / self.depth_pixels:.1%} of pixels valid"
            if self.depth_valid:
                percentiles = " ".join(f"p{q} {v:.3f}" for q, v in self.depth_percentiles().items())
                line += f"; range {self.depth_min:.3f} .. {self.depth_max:.3f} m; {percentiles}"
            lines.append(line)
        if self.normal_pixels:
            lines.append(
                f"normals      {self.normal_valid / self.normal_pixels:.1%} of pixels valid"
            )
        return "\n".join(lines)


def preview_grid(
    examples: Sequence[dict[str, np.ndarray]], palette: np.ndarray, class_names: Sequence[str]
) -> np.ndarray:
    """Rows of image | colourised labels | colourised depth | normals, with a legend."""
    from ka_tf import visualize
    from ka_tf.tasks import get_task, ordered_tasks

    depths = [e[DEPTH][e[DEPTH] > 0] for e in examples if DEPTH in e]
    valid = np.concatenate(depths) if depths else np.zeros(0)
    vmin, vmax = (float(valid.min()), float(valid.max())) if valid.size else (0.1, 10.0)
    rows = []
    for index, example in enumerate(examples):
        cells = [(example[IMAGE], "image")]
        for task in ordered_tasks(example):
            shared = (vmin, vmax) if task == DEPTH else (None, None)
            title = "labels" if task == SEMSEG else task
            cells.append((get_task(task).render(example[task], palette, shared), title))
        rows.append([visualize.titled(c, t) if index == 0 else c for c, t in cells])
    grid = visualize.make_grid(rows)
    extras = []
    if any(SEMSEG in e for e in examples):
        present = sorted(
            set(np.unique(np.concatenate([e[SEMSEG].ravel() for e in examples])).tolist())
            - {IGNORE_LABEL}
        )
        names = [class_names[i] if i < len(class_names) else f"class {i}" for i in present]
        if names:
            extras.append(visualize.legend(names, palette[present], grid.shape[1]))
    if valid.size:
        extras.append(visualize.depth_scale_bar(12, min(grid.shape[1], 256), vmin, vmax))
    for extra in extras:
        padded = np.full((extra.shape[0], grid.shape[1], 3), 255, np.uint8)
        padded[:, : extra.shape[1]] = extra[:, : grid.shape[1]]
        grid = np.concatenate([grid, padded], axis=0)
    return grid


def _reraise_user_error(error: Exception) -> None:
    """Turns a ka_tf error raised inside tf.data back into a one-line user error."""
    match = re.search(r"\b(DataError|ConfigError|UserInputError): (.*)", str(error))
    if match:
        kind = {"DataError": DataError, "ConfigError": ConfigError}.get(match.group(1))
        raise (kind or UserInputError)(match.group(2).strip()) from None
    raise error


def inspect(
    dataset: str,
    data_dir: str,
    split: str,
    options: dict[str, Any],
    max_examples: int = 0,
    preview: int = 4,
    progress: bool = True,
) -> tuple[str, np.ndarray]:
    """Reads a dataset and returns (printed report, preview grid)."""
    import tensorflow as tf
    from tqdm import tqdm

    import ka_tf.data

    ds = ka_tf.data.load(dataset, data_dir=data_dir, split=split, **options)
    if max_examples > 0:
        ds = ds.take(max_examples)
    class_names, palette = class_info(dataset, data_dir, options)
    summary = Summary()
    shown: list[dict[str, np.ndarray]] = []
    try:
        bar = tqdm(ds, desc=f"{dataset}/{split}", unit="ex", disable=not progress, file=sys.stderr)
        for example in bar:
            example = {k: v.numpy() for k, v in example.items()}
            summary.add(example)
            if len(shown) < preview:
                shown.append(example)
    except tf.errors.OpError as error:
        _reraise_user_error(error)
    if not summary.count:
        raise DataError(f"dataset {dataset!r} split {split!r} in {data_dir} has no examples.")
    header = f"dataset      {dataset}\ndata_dir     {data_dir}\nsplit        {split}\n"
    return header + summary.report(class_names), preview_grid(shown, palette, class_names)


def main(argv: list[str]) -> int:
    del argv
    for name in ("dataset", "data_dir", "split"):
        if not getattr(FLAGS, name):
            raise ConfigError(
                f"--{name} is required, e.g. --dataset=nyuv2 --data_dir=/data/nyuv2 --split=train."
            )
    if FLAGS.max_examples < 0 or FLAGS.preview < 1:
        raise ConfigError(
            f"--max_examples must be >= 0 and --preview >= 1. Received: "
            f"--max_examples={FLAGS.max_examples}, --preview={FLAGS.preview}."
        )
    from ka_tf.visualize import save_png

    text, grid = inspect(
        FLAGS.dataset,
        FLAGS.data_dir,
        FLAGS.split,
        parse_options(FLAGS.option),
        FLAGS.max_examples,
        FLAGS.preview,
    )
    print(text)
    if FLAGS.out:
        save_png(FLAGS.out, grid)
        print(f"preview      {FLAGS.out} ({grid.shape[1]}x{grid.shape[0]} px)")
    return 0


def run() -> None:
    """The `ka-inspect-dataset` console script and `python tools/inspect_dataset.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
