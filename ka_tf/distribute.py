"""Distribution strategy and precision policy, chosen by name.

After TF Model Garden's ``distribute_utils.get_distribution_strategy``: one
function maps a string to a ``tf.distribute.Strategy``, another sets the Keras
mixed-precision policy. Both are gin-configurable and exposed as
``--strategy`` / ``--precision`` flags by every training tool.

Measured on the CI machine (2-core CPU): ``mixed_float16`` is ~100x slower than
float32 on CPU, so ``"auto"`` never picks it without a GPU.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import gin
import keras
import tensorflow as tf
from absl import flags, logging

from ka_tf.errors import ConfigError

# The DEFINE_* calls below run on behalf of a tool; disclaiming makes absl count their
# flags as the calling tool's own, so the tool's --help lists them.
flags.disclaim_key_flags()

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def _gpus() -> list[str]:
    return [device.name for device in tf.config.list_logical_devices("GPU")]


def _one_device(devices: list[str] | None) -> tf.distribute.Strategy:
    """One device: TF's default strategy unless a device is named.

    The default strategy leaves placement to TensorFlow (the first GPU if any, else
    the CPU). ``OneDeviceStrategy`` pins every op to its device explicitly, and on
    this project's CPU that made the same training step 2x slower at the same CPU
    use (teacher step 330 vs 150 ms; BUILD.md, "Performance fixes, measured"), so it is used only
    for an explicitly named device.
    """
    if devices:
        return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.get_strategy()


def _mirrored(devices: list[str] | None) -> tf.distribute.Strategy:
    if devices is None:
        devices = _gpus() or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices)


def _multi_worker(devices: list[str] | None) -> tf.distribute.Strategy:
    del devices  # Each worker uses all of its local devices.
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable, e.g. "
            'TF_CONFIG=\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}}\' (see BUILD.md).'
        )
    try:
        spec = json.loads(raw)
        spec["cluster"]["worker"]
        spec["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"TF_CONFIG is not valid for --strategy=multi_worker ({error!r}); expected JSON "
            f'with "cluster": {{"worker": [...]}} and "task": {{"type", "index"}}. '
            f"Received: TF_CONFIG={raw}"
        ) from error
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    _patch_keras_for_multi_worker()
    return strategy


def _patch_keras_for_multi_worker() -> None:
    """Lets Keras 3 ``fit``/``evaluate`` run under ``MultiWorkerMirroredStrategy``.

    Two bugs of Keras 3.15's TensorFlow trainer with several workers
    (keras-team/keras#20329, #20585), fixed here by replacing two of its private
    functions, once, only when a multi-worker strategy is made:

    - Before building, it ``strategy.reduce("MEAN", batch)``s one distributed batch
      only to learn its shapes and dtypes: with several workers that is a collective
      over the whole structure, which fails for dict batches ("Attempt to convert a
      value ({'image': PerReplica...}) ... to a Tensor") and would average uint8
      images. The replacement reads the first local replica's values: same shapes and
      dtypes, no communication.
    - After each step it reduces the logged scalars with ``strategy.reduce("MEAN", v,
      axis=0)``, which fails on scalars ("Invalid reduction dimension 0 for input
      with 0 dimensions"). The replacement averages over replicas (``axis=None``),
      what the single-worker path computes, so every worker logs the same values
      (and the non-finite guard stops all workers at the same step).
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    cls = tf_trainer.TensorFlowTrainer
    if getattr(cls, "_ka_tf_multi_worker_patch", False):
        return

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda x: self.distribute_strategy.experimental_local_results(x)[0],
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    cls._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    cls._ka_tf_multi_worker_patch = True


def _auto(devices: list[str] | None) -> tf.distribute.Strategy:
    if os.environ.get("TF_CONFIG"):
        return _multi_worker(devices)
    if len(_gpus()) > 1:
        return _mirrored(devices)
    return _one_device(devices)


_STRATEGY_BUILDERS: dict[str, Callable[[list[str] | None], tf.distribute.Strategy]] = {
    "auto": _auto,
    "one_device": _one_device,
    "mirrored": _mirrored,
    "multi_worker": _multi_worker,
}


@gin.configurable
def get_strategy(name: str = "auto", devices: list[str] | None = None) -> tf.distribute.Strategy:
    """Returns the ``tf.distribute.Strategy`` called ``name``.

    Args:
        name: ``"auto"`` (multi-worker if ``TF_CONFIG`` is set, mirrored over several
            GPUs if there are more than one, else one device), ``"one_device"``
            (TF's default strategy, which places ops itself; ``OneDeviceStrategy``
            on ``devices[0]`` when ``devices`` is given), ``"mirrored"`` (all GPUs,
            or all logical CPUs without a GPU) or
            ``"multi_worker"`` (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``).
        devices: Explicit device names for ``one_device``/``mirrored``.

    Example:
        >>> strategy = get_strategy("one_device")
        >>> with strategy.scope():
        ...     model = build_model()
    """
    if name not in _STRATEGY_BUILDERS:
        raise ConfigError(
            f"unknown strategy. Received: strategy={name!r}. Expected one of {STRATEGIES}."
        )
    strategy = _STRATEGY_BUILDERS[name](devices)
    logging.info(
        "Distribution strategy %s (%s) with %d replica(s).",
        name,
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
    )
    return strategy


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` (one process per worker)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def sync_workers(strategy: tf.distribute.Strategy) -> None:
    """Waits until every worker of a multi-worker run gets here (no-op otherwise).

    Called when a tool is done, so that no worker exits while the chief is still
    writing (an early exit shows up on the others as an unhealthy task).
    """
    if is_multi_worker(strategy):
        strategy.reduce("SUM", strategy.run(lambda: tf.ones([])), axis=None)


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags_text = handle.read()
    except OSError:
        return False
    return " avx512_bf16" in flags_text or " amx_bf16" in flags_text


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process.

    Set by ``TF_ENABLE_ONEDNN_OPTS`` when TensorFlow is first imported; ka_tf
    defaults it to on (see ``ka_tf/__init__.py``).
    """
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def resolve_precision(name: str = "auto") -> str:
    """Maps a precision name (``"auto"`` included) to a Keras dtype policy name."""
    if name not in PRECISIONS:
        raise ConfigError(
            f"unknown precision. Received: precision={name!r}. Expected one of {PRECISIONS}."
        )
    if name != "auto":
        return name
    if _gpus():
        return "mixed_float16"
    if cpu_has_fast_bfloat16():
        return "mixed_bfloat16"
    return "float32"


@gin.configurable
def set_precision_policy(name: str = "auto") -> str:
    """Sets the global Keras dtype policy and returns its name.

    Args:
        name: ``"auto"`` (``mixed_float16`` on a GPU, ``mixed_bfloat16`` on a CPU with
            native bf16, else ``float32``), ``"float32"``, ``"mixed_float16"`` or
            ``"mixed_bfloat16"``.
    """
    policy = resolve_precision(name)
    if policy == "mixed_float16" and not _gpus():
        logging.warning(
            "precision=mixed_float16 on a CPU is ~100x slower than float32 here; "
            "use mixed_bfloat16 or float32 on CPUs."
        )
    keras.mixed_precision.set_global_policy(policy)
    logging.info("Precision policy: %s (asked for %s).", policy, name)
    return policy


def define_distribution_flags() -> None:
    """Defines ``--strategy`` and ``--precision`` (validated by :func:`get_strategy`)."""
    flags.DEFINE_string(
        "strategy",
        None,
        f"Distribution strategy, one of {STRATEGIES}. Overrides gin's get_strategy.name.",
    )
    flags.DEFINE_string(
        "precision",
        None,
        f"Precision policy, one of {PRECISIONS}. Overrides gin's set_precision_policy.name.",
    )


def validate_choice(flag: str, value: str | None, choices: tuple[str, ...]) -> None:
    """Raises ConfigError unless ``value`` is None or one of ``choices``."""
    if value is not None and value not in choices:
        raise ConfigError(
            f"unknown --{flag}. Received: --{flag}={value}. Expected one of {choices}."
        )
