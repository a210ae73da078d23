"""The teacher zoo: trained teachers shipped in ``zoo/<name>/``, each with its card.

A zoo entry is ``zoo/<name>/teacher.keras`` (the teacher, without optimizer state)
and ``zoo/<name>/card.json``::

    {"name", "task", "command", "seed", "commit", "data": {...}, "params", "sha256",
     "size_bytes", "weights_sha256", "steps", "wall_time_s",
     "metrics": {"test": {...}}, "baseline": {"predictor", "test": {...}}}

``data`` names the split the teacher learnt from and the one it is scored on, so
:func:`evaluate_entry` can re-render the test split and score the file again. The
recipe of entry ``name`` is ``gin/teachers/zoo/<name>.gin``; ``tools/zoo.py --action=rebuild``
retrains it deterministically from its card's command and publishes it again.

From gin, ``@zoo_teacher()`` is a teacher path checked against its card::

    semseg/zoo_teacher.name = 'street_semseg'
    TEACHERS = {'semseg': @semseg/zoo_teacher(), ...}
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from typing import Any

import gin

from ka_tf import resources
from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.io_utils import file_sha256

ZOO_ENV = "KA_TF_ZOO"
CARD_FILE = "card.json"
MODEL_FILE = "teacher.keras"
RECIPE_DIR = os.path.join("gin", "teachers", "zoo")
DEFAULT_SEED = 1
# Re-evaluating a zoo teacher on another CPU (AVX2 vs AVX-512 kernels) moves its
# metrics by rounding only; a figure that moves more than this is a different model.
METRIC_ATOL = 2e-3
METRIC_RTOL = 2e-3


def zoo_dir() -> str:
    """``$KA_TF_ZOO`` if set, else ka_tf's shipped zoo (``zoo/`` in a checkout)."""
    return os.environ.get(ZOO_ENV) or resources.shipped_path("zoo")


def recipe_path(name: str) -> str:
    """The gin recipe of zoo entry ``name`` (relative to the repository root)."""
    return os.path.join(RECIPE_DIR, f"{name}.gin")


def train_arguments(name: str, seed: int = DEFAULT_SEED) -> list[str]:
    """The flags of entry ``name``'s deterministic teacher training."""
    return [
        f"--gin_file={recipe_path(name)}",
        f"--model_dir=runs/zoo/{name}",
        "--deterministic",
        f"--seed={seed}",
    ]


def train_command(name: str, seed: int = DEFAULT_SEED) -> str:
    """The deterministic training command of entry ``name`` (what its card records)."""
    return " ".join(["python tools/train_teacher.py", *train_arguments(name, seed)])


def rebuild_command(name: str) -> str:
    """The one command that retrains and republishes entry ``name``."""
    return f"python tools/zoo.py --action=rebuild --name={name}"


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One zoo teacher: its directory and its card."""

    name: str
    directory: str
    card: dict[str, Any]

    @property
    def model_path(self) -> str:
        return os.path.join(self.directory, MODEL_FILE)

    @property
    def task(self) -> str:
        return self.card["task"]


def available_names(directory: str | None = None) -> list[str]:
    """Names of the entries with a card in the zoo directory, sorted."""
    root = directory or zoo_dir()
    if not os.path.isdir(root):
        return []
    return sorted(
        name for name in os.listdir(root) if os.path.isfile(os.path.join(root, name, CARD_FILE))
    )


def load_entry(name: str, directory: str | None = None) -> ZooEntry:
    """Reads entry ``name``'s card.

    Raises:
        ConfigError: no such entry (names the entries there and the rebuild command),
            or a card that is not JSON.
    """
    root = directory or zoo_dir()
    entry_dir = os.path.join(root, name)
    card_path = os.path.join(entry_dir, CARD_FILE)
    if not os.path.isfile(card_path):
        known = available_names(root)
        hint = (
            f"rebuild it with `{rebuild_command(name)}`"
            if os.path.isfile(resources.shipped_path(recipe_path(name)))
            else f"the zoo has {known or 'no entries'}"
        )
        raise ConfigError(f"zoo teacher {name!r} is missing: no {card_path}; {hint}.")
    try:
        with open(card_path) as handle:
            card = json.load(handle)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"cannot read zoo card {card_path}: {error}. Rebuild it with `{rebuild_command(name)}`."
        ) from error
    return ZooEntry(name, entry_dir, card)


def verify_entry(entry: ZooEntry) -> str:
    """Checks that the entry's model file exists and matches its card's sha256.

    Returns:
        The model path.

    Raises:
        ModelFileError: a missing file or a sha256 that differs from the card.
    """
    path = entry.model_path
    if not os.path.isfile(path):
        raise ModelFileError(
            f"zoo teacher file {path} is missing (its card is there); rebuild it with "
            f"`{rebuild_command(entry.name)}`."
        )
    actual = file_sha256(path)
    if actual != entry.card.get("sha256"):
        relative = os.path.relpath(path, resources.shipped_root())
        in_checkout = resources.shipped_root() != resources.SHIPPED_DIR
        restore = (
            f"restore it (git checkout -- {relative}) or "
            if in_checkout and not relative.startswith("..")
            else ""
        )
        raise ModelFileError(
            f"zoo teacher file {path} has sha256 {actual[:12]}…, its card says "
            f"{str(entry.card.get('sha256'))[:12]}…: the file was changed or truncated; "
            f"{restore}rebuild it with `{rebuild_command(entry.name)}`."
        )
    return path


@gin.configurable
def zoo_teacher(name: str = gin.REQUIRED, directory: str | None = None) -> str:
    """The path of zoo teacher ``name``, after checking it against its card.

    Bind it in gin as an evaluated reference (see the module docstring).
    """
    return verify_entry(load_entry(name, directory))


def _git_commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=resources.shipped_root(),
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _data_spec(config_path: str) -> dict[str, Any]:
    """What a teacher's run learnt from and was scored on, read from its config.gin."""
    from ka_tf import config as config_lib

    with gin.unlock_config():
        gin.clear_config()
    config_lib.parse_gin_config([config_path])
    benchmark = gin.get_bindings("synth_benchmark")
    train = gin.get_bindings("labelled_train/make_dataset")
    test = gin.get_bindings("test/make_dataset")
    evaluation = gin.get_bindings("evaluate_model")
    if not benchmark or "name" not in train:
        raise ConfigError(
            f"{config_path} does not train on the synthetic benchmark "
            f"(synth_benchmark and labelled_train/make_dataset bindings): only synthetic "
            f"teachers can be zoo entries, whose test split the zoo can render again."
        )
    splits = dict(benchmark.get("splits") or {})
    spec = {
        "dataset": train["name"],
        "scene": benchmark.get("scene", "street"),
        "image_size": [int(v) for v in benchmark["image_size"]],
        "seed": int(benchmark.get("seed", 0)),
        "train_split": train["split"],
        "labelled_frames": int(splits.get(train["split"], 0)),
        "test_split": test["split"],
        "test_frames": int(splits.get(test["split"], 0)),
        "batch_size": int(train.get("batch_size", 8)),
    }
    if "max_depth" in evaluation:
        spec["max_depth"] = float(evaluation["max_depth"])
    return spec


def publish(run_dir: str, name: str, directory: str | None = None, seed: int | None = None):
    """Copies a finished teacher run into the zoo as entry ``name`` and writes its card.

    The teacher is saved without its optimizer state. Nothing in the zoo changes
    unless the run is complete (``teacher.keras`` and ``teacher_report.json``).

    Args:
        run_dir: A ``tools/train_teacher.py`` run directory.
        name: The entry's name (its recipe is ``gin/teachers/zoo/<name>.gin``).
        directory: The zoo directory (default :func:`zoo_dir`).
        seed: The run's ``--seed`` (recorded with the command).

    Returns:
        The card written.
    """
    import keras

    from ka_tf.evaluation import load_model_file
    from ka_tf.io_utils import atomic_save_keras, atomic_write_json
    from ka_tf.training.launch import weights_digest

    report_path = os.path.join(run_dir, "teacher_report.json")
    model_path = os.path.join(run_dir, MODEL_FILE)
    for path in (report_path, model_path):
        if not os.path.isfile(path):
            raise ConfigError(
                f"--run_dir={run_dir} is not a finished teacher run: {path} is missing. "
                f"Train it first: `{train_command(name)}`."
            )
    with open(report_path) as handle:
        report = json.load(handle)
    if "metrics" not in report:
        raise ConfigError(
            f"{report_path} has no test metrics: bind train_teacher.test_data in the recipe."
        )
    data = _data_spec(os.path.join(run_dir, "config.gin"))
    teacher = load_model_file(model_path)  # compile=False: no optimizer state
    entry_dir = os.path.join(directory or zoo_dir(), name)
    os.makedirs(entry_dir, exist_ok=True)
    target = os.path.join(entry_dir, MODEL_FILE)
    atomic_save_keras(teacher, target)
    seed = DEFAULT_SEED if seed is None else seed
    card = {
        "name": name,
        "task": report["task"],
        "command": train_command(name, seed),
        "seed": seed,
        "commit": _git_commit(),
        "data": data,
        "params": int(report["params"]),
        "sha256": file_sha256(target),
        "size_bytes": os.path.getsize(target),
        "weights_sha256": weights_digest(teacher),
        "steps": int(gin.get_bindings("train_teacher").get("steps", 0)),
        "precision": report.get("precision", "unrecorded"),
        "wall_time_s": round(float(report.get("wall_time_s", 0.0)), 1),
        "versions": {"tensorflow": _tf_version(), "keras": keras.__version__},
        "metrics": {"test": report["metrics"]["test"]},
    }
    # The card's figures are the published file scored as `verify --evaluate` and
    # tests/test_zoo.py score it (float32), not the training run's own evaluation
    # under its precision policy (kept as metrics_at_training): under bfloat16 a
    # squared-error metric moves by ~1% (indoor depth sq_rel 0.3501 vs 0.3532).
    card["metrics_at_training"] = {"precision": card["precision"], **card["metrics"]}
    card["metrics"] = {"test": evaluate_entry(ZooEntry(name, entry_dir, card))}
    if "baseline" in report:
        card["baseline"] = {
            "predictor": report["baseline"]["predictor"],
            "test": report["baseline"]["metrics"]["test"],
        }
    atomic_write_json(os.path.join(entry_dir, CARD_FILE), card)
    return card


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


def entry_test_split(entry: ZooEntry, max_frames: int | None = None):
    """The entry's labelled test split (rendered into the cache if absent), batched."""
    from ka_tf.data.pipeline import make_dataset
    from ka_tf.data.synth_benchmark import synth_benchmark

    data = entry.card["data"]
    data_dir = synth_benchmark(
        scene=data["scene"],
        image_size=tuple(data["image_size"]),
        splits={data["test_split"]: data["test_frames"]},
        seed=data["seed"],
    )
    dataset = make_dataset(
        data["dataset"], data_dir, data["test_split"], data["batch_size"], training=False
    )
    if max_frames is not None:
        dataset = dataset.unbatch().take(max_frames).batch(data["batch_size"])
    return dataset


def evaluate_entry(entry: ZooEntry, progress: bool = False) -> dict[str, float]:
    """Scores the entry's (verified) model file on its test split, as its card was."""
    from ka_tf.evaluation import evaluate_model, load_model_file

    teacher = load_model_file(verify_entry(entry))
    kwargs = {}
    if "max_depth" in entry.card["data"]:
        kwargs["max_depth"] = entry.card["data"]["max_depth"]
    return evaluate_model(
        teacher, entry_test_split(entry), tasks=[entry.task], progress=progress, **kwargs
    )


def metric_mismatches(expected: dict[str, float], measured: dict[str, float]) -> list[str]:
    """``metric: card X, measured Y`` for every figure outside the tolerance."""
    mismatches = []
    for key, value in expected.items():
        got = measured.get(key)
        if got is None or abs(got - value) > METRIC_ATOL + METRIC_RTOL * abs(value):
            mismatches.append(f"{key}: card {value:.4f}, measured {got}")
    return mismatches
