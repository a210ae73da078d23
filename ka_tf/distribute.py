"""Distribution strategy and precision policy, chosen by name.

After TF Model Garden's ``distribute_utils.get_distribution_strategy``: one
function maps a string to a ``tf.distribute.Strategy``, another sets the Keras
mixed-precision policy. Both are gin-configurable and exposed as
``--strategy`` / ``--precision`` flags by every training tool.

Measured on the CI machine (2-core CPU): ``mixed_float16`` is ~100x slower than
float32 on CPU, so ``"auto"`` never picks it without a GPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import re
import socket
import time
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
COLLECTIVES = ("AUTO", "NCCL", "RING")


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


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """This process's place in a multi-worker cluster, read from ``TF_CONFIG``."""

    workers: tuple[str, ...]
    index: int

    @property
    def leader(self) -> str:
        """The coordination service's leader task (the chief, worker 0)."""
        return "/job:worker/replica:0/task:0"


_TF_CONFIG_EXAMPLE = (
    'TF_CONFIG=\'{"cluster": {"worker": ["host0:2222", "host1:2222"]}, '
    '"task": {"type": "worker", "index": 0}}\''
)


def read_tf_config(raw: str | None = None) -> ClusterSpec:
    """Parses and checks ``TF_CONFIG`` (the environment variable unless ``raw`` is given).

    Raises:
        ConfigError: Unset, not JSON, no ``cluster.worker`` list of ``host:port``
            addresses, a task type other than ``worker``, or an index outside the cluster.
    """
    raw = os.environ.get("TF_CONFIG") if raw is None else raw
    if not raw:
        raise ConfigError(
            "--strategy=multi_worker needs the TF_CONFIG environment variable, e.g. "
            f"{_TF_CONFIG_EXAMPLE} (see BUILD.md, Multi-worker training)."
        )
    try:
        spec = json.loads(raw)
    except ValueError as error:
        raise ConfigError(
            f"TF_CONFIG is not JSON ({error}). Received: TF_CONFIG={raw}. Expected e.g. "
            f"{_TF_CONFIG_EXAMPLE}."
        ) from error
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    workers = cluster.get("worker") if isinstance(cluster, dict) else None
    if (
        not isinstance(workers, list)
        or not workers
        or not all(isinstance(w, str) and re.fullmatch(r"[^:\s]+:\d+", w) for w in workers)
        or not isinstance(task, dict)
    ):
        raise ConfigError(
            'TF_CONFIG needs "cluster": {"worker": ["host:port", ...]} (one address per '
            f'worker, the same list on every worker) and "task": {{"type", "index"}}. '
            f"Received: TF_CONFIG={raw}. Expected e.g. {_TF_CONFIG_EXAMPLE}."
        )
    extra_jobs = sorted(set(cluster) - {"worker"})
    if extra_jobs or task.get("type") != "worker":
        raise ConfigError(
            f"TF_CONFIG: ka_tf's multi-worker runs have workers only (worker 0 is the "
            f"chief); received jobs {sorted(cluster)} and task type {task.get('type')!r}. "
            f'List every machine under "worker" and use "type": "worker".'
        )
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(workers):
        raise ConfigError(
            f"TF_CONFIG names task index {index!r}, outside the cluster of {len(workers)} "
            f"worker(s). Expected an integer 0..{len(workers) - 1}: each worker its own index."
        )
    return ClusterSpec(tuple(workers), index)


def _configure_coordination(cluster: ClusterSpec, worker_timeout_s: float) -> None:
    """Starts TensorFlow's coordination service with ka_tf's timeouts.

    ``MultiWorkerMirroredStrategy`` configures the service itself, without a
    registration timeout (a worker that never comes up leaves the others waiting
    forever) unless it is configured first, which is what this does. The heartbeat
    timeout is TensorFlow's (10 s): a worker that dies makes every other worker's next
    collective fail within seconds instead of hanging.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None:
        return
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=cluster.leader,
        cluster_register_timeout_in_ms=int(worker_timeout_s * 1000),
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=len(cluster.workers))
        ],
    )


def _unreachable_message(cluster: ClusterSpec, worker_timeout_s: float, cause: str) -> str:
    others = [w for i, w in enumerate(cluster.workers) if i != cluster.index]
    return (
        f"--strategy=multi_worker: worker {cluster.index} could not reach the cluster "
        f"{list(cluster.workers)} within get_strategy.worker_timeout_s={worker_timeout_s:g} s "
        f"({cause}). Start every worker (the others: {others}) with the same TF_CONFIG "
        f"cluster, each with its own index, and check that the addresses are reachable."
    )


def _wait_for_peers(cluster: ClusterSpec, worker_timeout_s: float) -> None:
    """Waits until every other worker's address accepts a connection (the leader only).

    Raises:
        ConfigError: Some worker's address is still closed after ``worker_timeout_s``.
    """
    deadline = time.monotonic() + worker_timeout_s
    waiting = [w for i, w in enumerate(cluster.workers) if i != cluster.index]
    while waiting:
        host, port = waiting[0].rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                waiting.pop(0)
                continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ConfigError(
                _unreachable_message(cluster, worker_timeout_s, f"{waiting[0]} did not answer")
            )
        time.sleep(0.2)


def _multi_worker(
    devices: list[str] | None, worker_timeout_s: float, collective: str
) -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, or one line within the timeout.

    Joining the cluster blocks in TensorFlow's C++ runtime (holding Python's lock, so
    no Python timer can interrupt it). A worker that is not the leader registers with
    the leader (worker 0) under the coordination service's registration timeout and
    gets ``DeadlineExceededError`` when it expires. The leader itself would wait for
    missing workers without a limit (TF 2.21, deaf to SIGTERM meanwhile), so before
    joining it waits, in Python and with the same timeout, until every other worker's
    address accepts connections (each worker opens its port as it starts to join).
    """
    del devices  # Each worker uses all of its local devices.
    cluster = read_tf_config()
    if cluster.index == 0:
        _wait_for_peers(cluster, worker_timeout_s)
    _configure_coordination(cluster, worker_timeout_s)
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=getattr(tf.distribute.experimental.CommunicationImplementation, collective)
    )
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as error:
        raise ConfigError(
            _unreachable_message(cluster, worker_timeout_s, type(error).__name__)
        ) from error
    global _CLUSTER
    _CLUSTER = cluster
    return strategy


def patch_keras_trainer() -> None:
    """Lets Keras 3 ``fit``/``evaluate`` run under ``MirroredStrategy`` and
    ``MultiWorkerMirroredStrategy``; :func:`get_strategy` calls it for both.

    Three bugs of Keras 3.15's TensorFlow trainer (the first two are
    keras-team/keras#20329, #20585), fixed by replacing three of its private
    functions, once; each replacement defers to the original wherever the bug cannot
    occur, so the one-device path is Keras' own:

    - Multi-worker: before building, it ``strategy.reduce("MEAN", batch)``s one
      distributed batch only to learn its shapes and dtypes: with several workers
      that is a collective over the whole structure, which fails for dict batches
      ("Attempt to convert a value ({'image': PerReplica...}) ... to a Tensor") and
      would average uint8 images. The replacement reads the first local replica's
      values: same shapes and dtypes, no communication.
    - Multi-worker: after each step it reduces the logged scalars with
      ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars ("Invalid
      reduction dimension 0 for input with 0 dimensions"). The replacement averages
      over replicas (``axis=None``), what the single-worker path computes, so every
      worker logs the same values (and the non-finite guard stops all workers at the
      same step).
    - Mirrored and multi-worker: with ``steps_per_execution`` > 1 it runs the steps
      in a ``tf.while_loop`` whose body pulls the next batch through
      ``get_next_as_optional`` inside a ``tf.cond``; with a distributed iterator that
      graph fails at run time ("You must feed a value for placeholder tensor
      'while/body/.../Placeholder_1' with dtype int32"; found by the strategy matrix,
      ``tests/training/test_strategy_matrix.py``). The replacement unrolls the
      ``steps_per_execution`` steps in one ``tf.function`` without the loop: the
      first step on ``get_next()``, each further one under a ``tf.cond`` on
      ``get_next_as_optional().has_value()``, so a finite (evaluation) input that ends
      inside an execution stops there, as Keras' loop does. Same steps on the same
      batches: 2 workers with 2 steps per execution give the weights and evaluation
      loss of one device with 1 (``tests/training/test_multi_worker.py``).
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    cls = tf_trainer.TensorFlowTrainer
    if getattr(cls, "_ka_tf_patch", False):
        return
    multi_worker = tf_trainer._collective_all_reduce_multi_worker
    original_build = cls._maybe_symbolic_build

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None or not multi_worker(self._distribute_strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
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
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    original_make_function = cls._make_function

    def _make_function(self, step_function):
        if self.steps_per_execution == 1 or strategy_kind(self.distribute_strategy) == "one_device":
            return original_make_function(self, step_function)

        def one_step_on_data(data):
            outputs = self.distribute_strategy.run(step_function, args=(data,))
            return tf_trainer.reduce_per_replica(outputs, self.distribute_strategy, "auto")

        def multi_step_on_iterator(iterator):
            outputs = one_step_on_data(iterator.get_next())
            for _ in range(self.steps_per_execution - 1):
                # Every worker sees the same has_value (a distributed iterator agrees
                # on it across workers), so all take the same branch and run the same
                # collectives.
                following = iterator.get_next_as_optional()
                outputs = tf.cond(
                    following.has_value(),
                    lambda following=following: one_step_on_data(following.get_value()),
                    lambda outputs=outputs: outputs,
                )
            return outputs

        if not self.run_eagerly:
            multi_step_on_iterator = tf.function(multi_step_on_iterator, reduce_retracing=True)

        def function(iterator):
            if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
                return multi_step_on_iterator(iterator)
            for _, data in zip(range(self.steps_per_execution), iterator, strict=False):
                outputs = one_step_on_data(data)
            return outputs

        return function

    cls._maybe_symbolic_build = _maybe_symbolic_build
    cls._make_function = _make_function
    tf_trainer.reduce_per_replica = reduce_per_replica
    cls._ka_tf_patch = True


def _auto(
    devices: list[str] | None, join: Callable[[list[str] | None], tf.distribute.Strategy]
) -> tf.distribute.Strategy:
    if os.environ.get("TF_CONFIG"):
        return join(devices)
    if len(_gpus()) > 1:
        return _mirrored(devices)
    return _one_device(devices)


def split_cpu(count: int) -> None:
    """Splits the host CPU into ``count`` logical devices (before TensorFlow starts).

    Lets ``mirrored`` run ``count`` replicas on a machine without GPUs: the same
    program as on ``count`` GPUs, for testing correctness (no speed-up on a CPU).

    Raises:
        ConfigError: ``count`` < 1, or TensorFlow's runtime has already started.
    """
    if count < 1:
        raise ConfigError(f"get_strategy.cpu_devices must be >= 1. Received: {count}.")
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as error:
        if len(tf.config.list_logical_devices("CPU")) == count:
            return
        raise ConfigError(
            f"get_strategy.cpu_devices={count}: TensorFlow has already started with "
            f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s); the split must "
            f"happen before anything else runs ({error})."
        ) from error


@gin.configurable
def get_strategy(
    name: str = "auto",
    devices: list[str] | None = None,
    cpu_devices: int = 0,
    worker_timeout_s: float = 300.0,
    collective: str = "AUTO",
) -> tf.distribute.Strategy:
    """Returns the ``tf.distribute.Strategy`` called ``name``.

    Args:
        name: ``"auto"`` (multi-worker if ``TF_CONFIG`` is set, mirrored over several
            GPUs if there are more than one, else one device), ``"one_device"``
            (TF's default strategy, which places ops itself; ``OneDeviceStrategy``
            on ``devices[0]`` when ``devices`` is given), ``"mirrored"`` (all GPUs,
            or all logical CPUs without a GPU) or
            ``"multi_worker"`` (``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``).
        devices: Explicit device names for ``one_device``/``mirrored``.
        cpu_devices: If > 0, first split the CPU into this many logical devices
            (:func:`split_cpu`), e.g. 2 with ``mirrored`` for two replicas on a CPU.
        worker_timeout_s: ``multi_worker``: how long a worker waits for every other
            worker of ``TF_CONFIG`` to come up before it stops with an error.
        collective: ``multi_worker``: the all-reduce implementation, ``AUTO`` (NCCL
            on GPUs, ring on CPUs), ``NCCL`` or ``RING``.

    Example:
        >>> strategy = get_strategy("one_device")
        >>> with strategy.scope():
        ...     model = build_model()
    """
    if name not in STRATEGIES:
        raise ConfigError(
            f"unknown strategy. Received: strategy={name!r}. Expected one of {STRATEGIES}."
        )
    if worker_timeout_s <= 0:
        raise ConfigError(
            f"get_strategy.worker_timeout_s must be > 0. Received: {worker_timeout_s}."
        )
    if collective not in COLLECTIVES:
        raise ConfigError(
            f"unknown all-reduce. Received: get_strategy.collective={collective!r}. "
            f"Expected one of {COLLECTIVES}."
        )
    if cpu_devices:
        split_cpu(cpu_devices)
    join = functools.partial(
        _multi_worker, worker_timeout_s=worker_timeout_s, collective=collective
    )
    builders: dict[str, Callable[[list[str] | None], tf.distribute.Strategy]] = {
        "auto": functools.partial(_auto, join=join),
        "one_device": _one_device,
        "mirrored": _mirrored,
        "multi_worker": join,
    }
    strategy = builders[name](devices)
    if strategy_kind(strategy) != "one_device":
        patch_keras_trainer()
    global _STRATEGY_NAME
    _STRATEGY_NAME = strategy_kind(strategy)
    logging.info(
        "Distribution strategy %s (%s) with %d replica(s).",
        name,
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
    )
    return strategy


# What a failure line says about the run: set by get_strategy and run_step.
_STRATEGY_NAME: str | None = None
_CLUSTER: ClusterSpec | None = None
_PHASE = "start-up"


@contextlib.contextmanager
def running(phase: str):
    """Names the phase a distributed failure is reported in (see :func:`failure_line`)."""
    global _PHASE
    previous, _PHASE = _PHASE, phase
    yield
    _PHASE = previous  # not on an error: the failure line names the phase it left


def failure_context() -> str | None:
    """``"strategy multi_worker, worker 1 of 2, phase finetune"`` for the running
    distributed run (a strategy other than one device), else None."""
    if _STRATEGY_NAME in (None, "one_device"):
        return None
    worker = f", worker {_CLUSTER.index} of {len(_CLUSTER.workers)}" if _CLUSTER else ""
    return f"strategy {_STRATEGY_NAME}{worker}, phase {_PHASE}"


def failure_line(error: BaseException) -> str:
    """The one-line description of ``error`` in a distributed run, with the fix.

    A peer that died or became unreachable shows up as a collective that failed
    (``UnavailableError``, ``AbortedError``, ``CancelledError``,
    ``DeadlineExceededError``, ``InternalError``): the advice is to rerun every worker
    with the same command, which resumes from the chief's last checkpoint.
    """
    context = failure_context() or f"phase {_PHASE}"
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    # A graph error's message holds the Python stack where the failing op was made
    # ("Detected at node ... defined at (most recent call last): File ..."): keep the
    # cause, which the full traceback at --verbosity=1 also shows.
    lines = [line.strip() for line in message.splitlines()]
    noise = ("File ", "Detected at node", "Graph execution error", "[[{{node", "Op:__inference")
    kept = [line for line in lines if line and not line.startswith(noise)]
    cause = " ".join(" ".join(kept or lines).split()).rstrip(".")
    cause = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", cause)  # the op's internal name
    if len(cause) > 300:
        cause = cause[:297] + "..."
    lost_peer = (
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
        tf.errors.DeadlineExceededError,
        tf.errors.InternalError,
    )
    if _CLUSTER is not None and isinstance(error, lost_peer):
        advice = (
            " If a worker died or lost its connection, start every worker again with the "
            "same command and --model_dir: the run resumes from the last checkpoint."
        )
    else:
        advice = " (--verbosity=1 prints the traceback)"
    return f"{context}: {type(error).__name__}: {cause}.{advice}"


def strategy_kind(strategy: tf.distribute.Strategy) -> str:
    """``"multi_worker"``, ``"mirrored"`` or ``"one_device"``: what ``strategy`` is."""
    if is_multi_worker(strategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    return "one_device"


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` (one process per worker)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Processes in the run: the cluster's workers under a multi-worker strategy, else 1."""
    if not is_multi_worker(strategy):
        return 1
    return int(strategy.cluster_resolver.cluster_spec().num_tasks("worker"))


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
