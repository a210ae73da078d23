"""Foreign teachers: any dense model file, output-only or with readable taps.

A user's own model — a ``.keras`` file of any architecture, a SavedModel, a TFLite or
ONNX file — teaches through its outputs: :class:`ForeignTeacher` preprocesses ka_tf's
images as the model expects (:class:`~ka_tf.teachers.preprocessing.Preprocessing`),
runs it (inside the graph, or through ``tf.numpy_function`` with the
:class:`~ka_tf.teachers.output_cache.OutputCache` for TFLite/ONNX), resizes each
declared output to the image and turns it into the task's head form
(:meth:`ka_tf.tasks.Task.teacher_target`). It is called like a ka_tf model:
``teacher(images) → {task: output}``, so evaluation, panels and fine-tuning take it
as they take a SegNet.

With ``taps`` declared — one inner feature of the model per branch candidate (extra
outputs of an ONNX graph or a SavedModel, preserved TFLite tensors) — the teacher is
*tap-only*: its decoder cannot run from them, but the block-wise phase trains the
student's feature at each candidate to match the tap through its gate's learned 1×1
adaptor (resized to the tap's size), and the branch choice reads those losses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gin
import tensorflow as tf

from ka_tf.errors import ConfigError, ModelFileError
from ka_tf.tasks import get_task
from ka_tf.teachers.model_files import ModelFile, open_model_file
from ka_tf.teachers.output_cache import OutputCache, default_cache_root
from ka_tf.teachers.preprocessing import Preprocessing

OUTPUT_ONLY = "output_only"
TAP_ONLY = "tap_only"


@dataclasses.dataclass(frozen=True)
class TaskOutput:
    """Which output of a foreign model holds a task, and in what form.

    Attributes:
        task: The task name (a registered :class:`~ka_tf.tasks.Task`).
        form: One of the task's :attr:`~ka_tf.tasks.Task.teacher_forms`.
        output: The model output's name, or its index in the model's outputs; None
            for a model with one output.
    """

    task: str
    form: str
    output: str | int | None = None

    @classmethod
    def parse(cls, task: str, value: str | Mapping[str, Any]) -> TaskOutput:
        """From ``teacher_spec``'s ``outputs`` value: ``"form"`` or
        ``{"form": ..., "output": name or index}``."""
        definition = get_task(task)
        if isinstance(value, str):
            value = {"form": value}
        unknown = sorted(set(value) - {"form", "output"})
        if unknown:
            raise ConfigError(
                f"teacher_spec.outputs[{task!r}] has unknown keys {unknown}; expected 'form' "
                f"and optionally 'output' (a name or index)."
            )
        form = value.get("form")
        if form not in definition.teacher_forms:
            raise ConfigError(
                f"teacher_spec.outputs[{task!r}] has form {form!r}; a {task} teacher's output "
                f"may hold one of {list(definition.teacher_forms)}."
            )
        return cls(task, form, value.get("output"))


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """A teacher file with the conventions ka_tf cannot read from it (see :func:`teacher_spec`)."""

    path: str
    outputs: tuple[TaskOutput, ...]
    preprocessing: Preprocessing
    cache_dir: str | None = None
    taps: tuple[str | int, ...] = ()  # one model output per branch candidate, or none

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(o.task for o in self.outputs)

    @property
    def tier(self) -> str:
        return TAP_ONLY if self.taps else OUTPUT_ONLY

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record, for reports."""
        return {
            "path": self.path,
            "tier": self.tier,
            "outputs": {o.task: {"form": o.form, "output": o.output} for o in self.outputs},
            "taps": list(self.taps),
            "preprocessing": self.preprocessing.to_dict(),
        }


@gin.configurable
def teacher_spec(
    path: str = gin.REQUIRED,
    outputs: Mapping[str, str | Mapping[str, Any]] = gin.REQUIRED,
    input_size: tuple[int, int] | None = None,
    scale: float | str = 1.0,
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
    std: tuple[float, float, float] = (1.0, 1.0, 1.0),
    channel_order: str = "rgb",
    layout: str = "nhwc",
    cache_dir: str | None = None,
    taps: Mapping[str | int, str | int] | None = None,
) -> TeacherSpec:
    """Declares a teacher that is not a ka_tf model (an output-only teacher).

    Example (gin)::

        person/teacher_spec.path = 'selfie.tflite'
        person/teacher_spec.outputs = {'person': 'probability'}
        person/teacher_spec.input_size = (256, 256)
        person/teacher_spec.scale = 0.00392156862745098  # 1/255
        amalgamate.teachers = {'person': @person/teacher_spec(), 'depth': 'depth.keras'}

    Args:
        path: A ``.keras`` file, SavedModel directory, ``.tflite`` or ``.onnx`` file.
        outputs: ``{task: form}`` or ``{task: {"form": form, "output": name or index}}``;
            the forms a task accepts are its ``teacher_forms`` (semseg ``logits`` /
            ``probabilities``; depth ``metres`` / ``inverse``; normals ``unit``; a
            binary mask ``probability`` / ``logit`` / ``min_max``).
        input_size, scale, mean, std, channel_order, layout: The model's input
            convention (:class:`~ka_tf.teachers.preprocessing.Preprocessing`).
        cache_dir: Root of the output cache for TFLite/ONNX models (default
            :func:`~ka_tf.teachers.output_cache.default_cache_root`).
        taps: ``{candidate: output}`` for all five branch candidates (``'down5'``,
            ``'up5'``, ``'up4'``, ``'up3'``, ``'up2'``, or 0..4): the model output (name
            or index) holding an inner feature at that depth, best at 1/32 ... 1/2 of
            the input. Makes the teacher tap-only (the block-wise phase matches them).

    Raises:
        ConfigError: an unknown task, form, or an invalid input convention.
    """
    if not isinstance(outputs, Mapping) or not outputs:
        raise ConfigError(
            f"teacher_spec.outputs for {path} must name the tasks it teaches, e.g. "
            f"{{'semseg': 'logits'}}. Received: {outputs!r}."
        )
    return TeacherSpec(
        path=str(path),
        outputs=tuple(TaskOutput.parse(task, value) for task, value in outputs.items()),
        preprocessing=Preprocessing.create(input_size, scale, mean, std, channel_order, layout),
        cache_dir=cache_dir,
        taps=_parse_taps(taps),
    )


def _parse_taps(taps: Mapping[str | int, str | int] | None) -> tuple[str | int, ...]:
    """The tap outputs in candidate order, from ``{candidate name or index: output}``."""
    from ka_tf.models.arch import BRANCH_CANDIDATES

    if not taps:
        return ()
    by_index: dict[int, str | int] = {}
    for key, output in taps.items():
        index = BRANCH_CANDIDATES.index(key) if key in BRANCH_CANDIDATES else key
        if not isinstance(index, int) or not 0 <= index < len(BRANCH_CANDIDATES):
            raise ConfigError(
                f"teacher_spec.taps key {key!r} is no branch candidate; expected one of "
                f"{list(BRANCH_CANDIDATES)} or 0..{len(BRANCH_CANDIDATES) - 1}."
            )
        by_index[index] = output
    missing = [BRANCH_CANDIDATES[i] for i in range(len(BRANCH_CANDIDATES)) if i not in by_index]
    if missing:
        raise ConfigError(
            f"teacher_spec.taps names no tap for {missing}: a tap-only teacher needs one "
            f"inner feature per branch candidate {list(BRANCH_CANDIDATES)} (1/32 ... 1/2 of "
            f"the input), so the block-wise phase can measure every one."
        )
    return tuple(by_index[i] for i in range(len(BRANCH_CANDIDATES)))


class ForeignTeacher:
    """A foreign model called like a ka_tf model: ``teacher(images) → {task: output}``.

    Args:
        model: The loaded model file.
        spec: Its declared conventions.

    Attributes:
        tasks: The tasks it teaches.
        tier: ``"output_only"``, or ``"tap_only"`` with taps declared.
        num_classes: The semseg output's class count (None without semseg).
        cache: The output cache (TFLite/ONNX models), else None.
        name: For messages and reports (the file name).
    """

    def __init__(self, model: ModelFile, spec: TeacherSpec) -> None:
        self.model = model
        self.spec = spec
        self.tasks = spec.tasks
        self.tier = spec.tier
        self.name = model.path.rstrip("/").rsplit("/", 1)[-1]
        self.trainable = False
        self._output_names = {o.task: self._output_name(o) for o in spec.outputs}
        self._tap_names = [self._resolve(tap, f"tap {i}") for i, tap in enumerate(spec.taps)]
        self._tap_channels = tuple(self._tap_channels_of(name) for name in self._tap_names)
        self._check_input()
        self.num_classes = None
        for o in spec.outputs:
            channels = self._channels(o)
            definition = get_task(o.task)
            if definition.has_classes:
                if channels is None or channels < 2:
                    raise ModelFileError(
                        f"the {o.task} output {self._output_names[o.task]!r} of {model.path} "
                        f"has {channels} channels; expected one per class (>= 2)."
                    )
                self.num_classes = channels
            elif channels != definition.head_channels(None):
                raise ModelFileError(
                    f"the {o.task} output {self._output_names[o.task]!r} of {model.path} has "
                    f"{channels} channels; a {o.task} teacher's output has "
                    f"{definition.head_channels(None)}. Name the right one with "
                    f"teacher_spec.outputs = {{{o.task!r}: {{'form': ..., 'output': ...}}}}."
                )
        self.cache = None
        if not model.in_graph:
            used = self._used()
            self.cache = OutputCache(
                spec.cache_dir or default_cache_root(),
                {
                    "model_sha256": model.fingerprint(),
                    "kind": model.kind,
                    "outputs": used,
                    "preprocessing": spec.preprocessing.to_dict(),
                },
                {name: model.output_shapes[name][1:] for name in used},
            )

    def _output_name(self, output: TaskOutput) -> str:
        names = list(self.model.output_shapes)
        if output.output is None:
            if len(names) != 1:
                raise ConfigError(
                    f"{self.model.path} has outputs {names}: choose the {output.task} one with "
                    f"teacher_spec.outputs = {{{output.task!r}: {{'form': {output.form!r}, "
                    f"'output': <name or index>}}}}."
                )
            return names[0]
        return self._resolve(output.output, output.task)

    def _resolve(self, selector: str | int, what: str) -> str:
        """The output name a selector (name or index) picks, for ``what``."""
        names = list(self.model.output_shapes)
        if isinstance(selector, int):
            if not 0 <= selector < len(names):
                raise ConfigError(
                    f"{self.model.path} has {len(names)} outputs; output index {selector} "
                    f"for {what} is out of range."
                )
            return names[selector]
        if selector not in names:
            raise ConfigError(
                f"{self.model.path} has no output {selector!r} (for {what}); its "
                f"outputs are {names}."
            )
        return selector

    def _tap_channels_of(self, name: str) -> int:
        shape = self.model.output_shapes[name]
        channels = shape[1] if self.spec.preprocessing.layout == "nchw" else shape[-1]
        if len(shape) != 4 or channels is None:
            raise ModelFileError(
                f"tap {name!r} of {self.model.path} has shape {shape}; a tap is a feature map "
                f"[B, H, W, C] or [B, C, H, W] (teacher_spec.layout) with known channels."
            )
        return int(channels)

    def _used(self) -> list[str]:
        return sorted({*self._output_names.values(), *self._tap_names})

    def candidate_channels(self, task: str | None = None) -> tuple[int, ...]:
        """Channels of the tap at each branch candidate (tap-only teachers)."""
        del task
        if not self._tap_names:
            raise ConfigError(f"{self.model.path} is output-only: it declares no taps.")
        return self._tap_channels

    def _check_input(self) -> None:
        shape = self.model.input_shape
        channels_axis = 1 if self.spec.preprocessing.layout == "nchw" else -1
        if len(shape) != 4 or shape[channels_axis] not in (3, None):
            raise ModelFileError(
                f"{self.model.path} takes input of shape {shape}; with layout "
                f"{self.spec.preprocessing.layout!r} that is not an RGB image batch. Set "
                f"teacher_spec.layout to the model's ('nhwc' or 'nchw')."
            )
        spatial = shape[2:4] if channels_axis == 1 else shape[1:3]
        size = self.spec.preprocessing.input_size
        if None not in spatial and (size is None or tuple(size) != tuple(spatial)):
            raise ConfigError(
                f"{self.model.path} takes {spatial[0]}x{spatial[1]} images; bind "
                f"teacher_spec.input_size = {tuple(spatial)} (received {size})."
            )

    def _channels(self, output: TaskOutput) -> int | None:
        shape = self.model.output_shapes[self._output_names[output.task]]
        if len(shape) == 3:  # [B, H, W]: one channel
            return 1
        if len(shape) != 4:
            raise ModelFileError(
                f"the {output.task} output of {self.model.path} has shape {shape}; expected a "
                f"dense map [B, H, W, C] or [B, C, H, W] (teacher_spec.layout)."
            )
        return shape[1] if self.spec.preprocessing.layout == "nchw" else shape[3]

    def count_params(self) -> int:
        return self.model.count_params()

    def _run(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        used = self._used()
        if self.model.in_graph:
            outputs = self.model.run_graph(inputs)
            return {name: tf.cast(outputs[name], tf.float32) for name in used}

        def run(batch):
            result = self.cache.lookup(batch, self.model.run_numpy)
            return [result[name] for name in used]

        values = tf.numpy_function(run, [inputs], [tf.float32] * len(used), stateful=True)
        if not isinstance(values, (list, tuple)):  # eager mode unwraps a single output
            values = [values]
        return {
            name: tf.ensure_shape(value, [None, *self.model.output_shapes[name][1:]])
            for name, value in zip(used, values, strict=True)
        }

    def __call__(self, images: Any, training: bool = False) -> dict[str, tf.Tensor]:
        """Each task's output, in its head form, at the images' size.

        Args:
            images: Float RGB ``[B, H, W, 3]`` in 0..255 (ka_tf's image convention).
            training: Ignored (a teacher is frozen).
        """
        del training
        return self.forward_taps(images)["outputs"]

    def forward_taps(self, images: Any) -> dict[str, Any]:
        """``{"outputs": {task: output}, "taps": [tap at candidate 0..4]}`` from one run
        (taps channels-last float32 at the model's own resolution; ``[]`` without taps)."""
        images = tf.cast(images, tf.float32)
        size = tf.shape(images)[1:3]
        raw = self._run(self.spec.preprocessing.apply(images))
        nchw = self.spec.preprocessing.layout == "nchw"
        outputs = {}
        for o in self.spec.outputs:
            value = raw[self._output_names[o.task]]
            if value.shape.rank == 3:
                value = value[..., None]
            elif nchw:
                value = tf.transpose(value, [0, 2, 3, 1])
            value = tf.image.resize(value, size, method="bilinear")
            outputs[o.task] = get_task(o.task).teacher_target(value, o.form)
        taps = [
            tf.transpose(raw[name], [0, 2, 3, 1]) if nchw else raw[name] for name in self._tap_names
        ]
        return {"outputs": outputs, "taps": taps}


def load_foreign(spec: TeacherSpec) -> ForeignTeacher:
    """Loads the file a :class:`TeacherSpec` names as an output-only teacher."""
    return ForeignTeacher(open_model_file(spec.path), spec)
