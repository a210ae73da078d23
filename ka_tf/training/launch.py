"""What every training tool does before training: flags, gin, seeds, precision, strategy, run dir.

Multi-worker runs (``--strategy=multi_worker``): every worker runs the same command
with its own ``TF_CONFIG``. Only the chief writes into ``--model_dir``; the other
workers write into a temporary directory that :func:`run_directory` removes at the
end, as the TensorFlow multi-worker guide recommends (they must still run every
save, because the work between saves is collective).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from ka_tf import config, distribute, path_flags
from ka_tf.io_utils import ensure_writable_dir

# The DEFINE_* calls below run on behalf of a tool; disclaiming makes absl count their
# flags as the calling tool's own, so the tool's --help lists them.
flags.disclaim_key_flags()


# What a non-chief worker copies from --model_dir (when it can see it) to resume.
_RESUMABLE = ("checkpoints", "amalgamation_state.json")


def define_training_flags(default_model_dir: str | None = None) -> None:
    """Defines the gin flags, ``--model_dir``, ``--strategy``, ``--precision``,
    ``--deterministic`` and ``--seed``."""
    config.define_gin_flags()
    distribute.define_distribution_flags()
    path_flags.define_path(
        "model_dir",
        default_model_dir,
        "Run directory: checkpoints, TensorBoard logs, config.gin, the trained model and "
        "reports. Rerunning with the same --model_dir resumes an interrupted run. With "
        "--strategy=multi_worker it must be one directory every worker can read at this "
        "path (checked at start); only the chief writes here.",
    )
    flags.DEFINE_boolean(
        "deterministic",
        False,
        "Reproducible runs: seeds Python, NumPy and TensorFlow with --seed "
        "(keras.utils.set_random_seed) and turns on TensorFlow op determinism "
        "(tf.config.experimental.enable_op_determinism) before anything is built, so two "
        "runs with the same flags and data give bit-identical weights, and a killed run "
        "resumed from its checkpoints ends with the weights of an uninterrupted one. Some "
        "GPU kernels are slower (or raise, if they have no deterministic version).",
    )
    flags.DEFINE_integer(
        "seed",
        0,
        "Seed of Python, NumPy and TensorFlow random numbers (weight initialisation). "
        "Applied with --deterministic, or whenever it is set explicitly.",
    )


def make_deterministic(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow and turns on TensorFlow op determinism.

    Args:
        seed: The seed for ``keras.utils.set_random_seed``.
    """
    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()
    logging.info("Deterministic run: seed %d, op determinism on.", seed)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (always, except non-chief workers)."""
    return bool(strategy.extended.should_checkpoint)


def set_up_run(flag_values: flags.FlagValues) -> tf.distribute.Strategy:
    """Validates flags, parses gin, seeds, sets the precision policy, returns the strategy.

    ``--strategy``/``--precision`` override gin's ``get_strategy.name`` and
    ``set_precision_policy.name``. The strategy is created first (a
    ``MultiWorkerMirroredStrategy`` must configure collective ops before TensorFlow
    starts its runtime), then ``--deterministic`` seeds everything. The chief probes
    that the run directory is writable; the gin config is written there by the
    training function once its inputs are loaded (:func:`ka_tf.config.write_config`),
    so a run that fails on bad input leaves a previous run's ``config.gin`` as it was.
    """
    distribute.validate_choice("strategy", flag_values.strategy, distribute.STRATEGIES)
    distribute.validate_choice("precision", flag_values.precision, distribute.PRECISIONS)
    if not flag_values.model_dir:
        from ka_tf.errors import ConfigError

        raise ConfigError("--model_dir is required: the directory to write the run into.")
    config.parse_gin_config(
        flag_values.gin_file, flag_values.gin_bindings, flag_values.gin_search_paths
    )
    strategy = (
        distribute.get_strategy(flag_values.strategy)
        if flag_values.strategy
        else distribute.get_strategy()
    )
    if flag_values.deterministic:
        make_deterministic(flag_values.seed)
    elif flag_values["seed"].present:
        keras.utils.set_random_seed(int(flag_values.seed))
    if is_chief(strategy):
        ensure_writable_dir(flag_values.model_dir)
    if flag_values.precision:
        distribute.set_precision_policy(flag_values.precision)
    else:
        distribute.set_precision_policy()
    logging.info("Run directory: %s", flag_values.model_dir)
    return strategy


@contextlib.contextmanager
def run_directory(model_dir: str, strategy: tf.distribute.Strategy) -> Iterator[str]:
    """Yields the directory this process writes into; removes it after if temporary.

    The chief (every single-worker run) writes into ``model_dir``. A non-chief
    worker gets a fresh temporary directory, seeded with a copy of the chief's
    checkpoints and progress when ``model_dir`` is visible to it (a shared file
    system), so that it resumes at the same step as the chief; it is removed when
    the block exits, whether training succeeded or not. After a successful block,
    the workers wait for each other, so none exits while the chief still writes.

    Args:
        model_dir: ``--model_dir``.
        strategy: The run's strategy.
    """
    check_shared_model_dir(model_dir, strategy)
    if is_chief(strategy):
        yield model_dir
        distribute.sync_workers(strategy)
        return
    scratch = tempfile.mkdtemp(prefix="ka_tf_worker_")
    for name in _RESUMABLE:
        source = os.path.join(model_dir, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(scratch, name), dirs_exist_ok=True)
        elif os.path.isfile(source):
            shutil.copy2(source, os.path.join(scratch, name))
    logging.info("Non-chief worker: writing into %s (removed at the end).", scratch)
    try:
        yield scratch
        distribute.sync_workers(strategy)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


_PROBE = ".ka_tf_shared_probe"


def check_shared_model_dir(model_dir: str, strategy: tf.distribute.Strategy) -> None:
    """Checks that every worker of a multi-worker run sees the same ``--model_dir``.

    The chief writes a random token into ``model_dir``; every worker reads it back, and
    the workers compare what they read with the chief's token through two collectives.
    A worker on another machine whose ``--model_dir`` is a local directory (or another
    path) reads nothing, and the run stops on every worker with one line, rather than
    resuming the chief and that worker from different checkpoints. No-op without
    several workers.

    Raises:
        ConfigError: Some worker does not see the chief's ``model_dir``.
    """
    if distribute.num_workers(strategy) < 2:
        return
    chief = is_chief(strategy)
    probe = os.path.join(model_dir, _PROBE)
    token = int.from_bytes(os.urandom(3), "big") + 1  # exact in int32 collectives
    if chief:
        os.makedirs(model_dir, exist_ok=True)
        from ka_tf.io_utils import atomic_write_text

        atomic_write_text(probe, str(token))
    distribute.sync_workers(strategy)  # the probe is written before anyone reads it

    def contribution(value: int):
        def replica_value():
            first = tf.distribute.get_replica_context().replica_id_in_sync_group == 0
            return tf.where(first, tf.constant(value, tf.int32), 0)

        return strategy.reduce("SUM", strategy.run(replica_value), axis=None)

    chief_token = int(contribution(token if chief else 0))
    try:
        with open(probe, encoding="utf-8") as handle:
            seen = int(handle.read().strip() or 0)
    except (OSError, ValueError):
        seen = 0
    mismatched = int(
        strategy.reduce(
            "SUM",
            strategy.run(lambda: tf.constant(int(seen != chief_token), tf.int32)),
            axis=None,
        )
    )
    distribute.sync_workers(strategy)  # everyone has read it: the chief may remove it
    if chief:
        with contextlib.suppress(OSError):
            os.remove(probe)
    if mismatched:
        who = "this worker does not" if seen != chief_token else "another worker does not"
        from ka_tf.errors import ConfigError

        raise ConfigError(
            f"--model_dir={model_dir} is not shared between the workers: {who} see the "
            f"chief's files there. With --strategy=multi_worker, put --model_dir on a file "
            f"system every worker can read (NFS, a mounted bucket) and pass the same path "
            f"on every worker."
        )


def weights_digest(model: keras.Model) -> str:
    """SHA-256 over a model's weights (paths, shapes, dtypes and bytes), for comparing runs."""
    digest = hashlib.sha256()
    for variable in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable.value))
        digest.update(f"{variable.path}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def print_replica_digest(model_path: str, strategy: tf.distribute.Strategy, label: str) -> None:
    """Under a multi-worker strategy, prints ``<label> weights sha256: ... (chief: ...)``
    of the model this worker saved at ``model_path``, so the replicas can be compared
    (a non-chief's files are removed at the end). No-op under other strategies."""
    if not distribute.is_multi_worker(strategy):
        return
    import ka_tf.registry_all  # noqa: F401  (registers ka_tf's model classes)

    digest = weights_digest(keras.saving.load_model(model_path))
    logging.info("%s weights sha256: %s", label, digest)
    print(f"{label} weights sha256: {digest} (chief: {is_chief(strategy)})", flush=True)
