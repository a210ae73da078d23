"""TargetNet: the multi-task student — a shared SegNet trunk that branches per task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from ka_tf.errors import ConfigError
from ka_tf.models import arch as arch_lib
from ka_tf.models.channel_coding import ChannelCoding
from ka_tf.models.segnet import image_normalizer
from ka_tf.models.segnet_blocks import build_decoder_blocks, build_encoder_blocks, switches_for
from ka_tf.models.task_head import DenseTaskHead, declare_task_kinds, user_task_kinds


def check_branch_points(tasks: Sequence[str], branch_points: Mapping[str, int]) -> dict[str, int]:
    """Validates one branch candidate (0..4) per task and returns them as ints."""
    valid = tuple(range(len(arch_lib.BRANCH_CANDIDATES)))
    if sorted(branch_points) != sorted(tasks):
        raise ConfigError(
            f"branch_points must name every task once. Received: "
            f"branch_points={dict(branch_points)}, tasks={list(tasks)}."
        )
    for task, point in branch_points.items():
        if point not in valid:
            raise ConfigError(
                f"branch point out of range for {task!r}. Received: branch_point={point}. "
                f"Expected one of {valid} ({', '.join(arch_lib.BRANCH_CANDIDATES)})."
            )
    return {task: int(branch_points[task]) for task in tasks}


@keras.saving.register_keras_serializable(package="ka_tf")
class TargetNet(keras.Model):
    """The amalgamated student: one SegNet encoder-decoder shared by all tasks up to a
    per-task branch-out block, then one branch per task.

    The trunk is the encoder plus the decoder blocks up to the deepest branch point.
    Task ``t`` leaves the trunk at branch candidate ``b_t`` (0 = after down5, 1 = after
    up5, …, 4 = after up2): a channel-coding gate, then its own copies of the remaining
    decoder blocks and its head. A deeper branch point shares more and makes a smaller
    student. Unpooling uses the student's own switches. Input: float32 images
    [B, H, W, 3] in 0..255; output: a dict keyed by task.

    Args:
        tasks: Task names, e.g. ``("semseg", "depth")``.
        num_classes: Classes of the ``semseg`` head.
        branch_points: Branch candidate per task.
        arch, batch_norm, channels, width_multiplier, depth_activation, image_mean,
            image_std, synchronized_bn, image_shape: As for
            :class:`~ka_tf.models.segnet.SegNet`.
        gate_scale: See :class:`~ka_tf.models.channel_coding.ChannelCoding`.
        task_kinds: Task → kind of the tasks its user named (``{"person": "binary"}``),
            declared before building, and recorded in the config so that a saved
            student loads where they were never registered.

    Example:
        >>> student = TargetNet(("semseg", "depth"), num_classes=19,
        ...                     branch_points={"semseg": 3, "depth": 1}, width_multiplier=0.125)
    """

    def __init__(
        self,
        tasks: Sequence[str],
        num_classes: int | None = None,
        branch_points: Mapping[str, int] | None = None,
        arch: str = "vgg16",
        batch_norm: bool = True,
        channels: Sequence[int] = arch_lib.DEFAULT_CHANNELS,
        width_multiplier: float = 1.0,
        depth_activation: str = "exp",
        image_mean: Sequence[float] = arch_lib.IMAGENET_MEAN,
        image_std: Sequence[float] = arch_lib.IMAGENET_STD,
        synchronized_bn: bool = False,
        gate_scale: float = 2.0,
        image_shape: Sequence[int | None] = (None, None, 3),
        task_kinds: Mapping[str, str] | None = None,
        **kwargs,
    ):
        # === Layers ===
        declare_task_kinds(task_kinds)
        tasks = tuple(tasks)
        if not tasks or len(set(tasks)) != len(tasks):
            raise ConfigError(
                f"tasks must be distinct and non-empty. Received: tasks={list(tasks)}."
            )
        if branch_points is None:
            branch_points = {task: len(arch_lib.BRANCH_CANDIDATES) - 1 for task in tasks}
        points = check_branch_points(tasks, branch_points)
        convs = arch_lib.check_arch(arch)
        widths = arch_lib.scaled_channels(channels, width_multiplier)
        cand_channels = arch_lib.candidate_channels(widths)
        normalizer = image_normalizer(image_mean, image_std)
        encoder_blocks = build_encoder_blocks(widths, convs, batch_norm, synchronized_bn)
        trunk_blocks = build_decoder_blocks(widths, convs, batch_norm, synchronized_bn)[
            : max(points.values())
        ]
        coders, branches, heads = {}, {}, {}
        for task in tasks:
            coders[task] = ChannelCoding(
                cand_channels[points[task]], gate_scale=gate_scale, name=f"{task}_coding"
            )
            branches[task] = build_decoder_blocks(
                widths, convs, batch_norm, synchronized_bn, prefix=f"{task}_", start=points[task]
            )
            heads[task] = DenseTaskHead(
                task,
                arch_lib.output_channels(task, num_classes),
                depth_activation,
                name=f"{task}_head",
            )

        # === Functional Model ===
        inputs = keras.Input(shape=tuple(image_shape), name="images")
        x = normalizer(inputs)
        switches = []
        for block in encoder_blocks:
            x, block_switches = block(x)
            switches.append(block_switches)
        candidates = [x]
        for k, block in enumerate(trunk_blocks):
            candidates.append(block([candidates[-1], switches_for(k, switches)]))
        outputs = {}
        for task in tasks:
            y = coders[task](candidates[points[task]])
            for offset, block in enumerate(branches[task]):
                y = block([y, switches_for(points[task] + offset, switches)])
            outputs[task] = heads[task](y)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.tasks = tasks
        self.num_classes = None if num_classes is None else int(num_classes)
        self.branch_points = points
        self.arch = arch
        self.batch_norm = bool(batch_norm)
        self.channels = [int(c) for c in channels]
        self.width_multiplier = float(width_multiplier)
        self.depth_activation = depth_activation
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.synchronized_bn = bool(synchronized_bn)
        self.gate_scale = float(gate_scale)
        self.image_shape = tuple(image_shape)
        self.widths = widths
        self.normalizer = normalizer
        self.encoder_blocks = encoder_blocks
        self.trunk_blocks = trunk_blocks
        self.coders = coders
        self.branches = branches
        self.heads = heads

    # --- splitting (a finished student can be a joint teacher) ------------------------

    def candidate_channels(self, task: str | None = None) -> tuple[int, ...]:
        """Channels of the feature at each branch candidate 0..4 (the same for every task)."""
        del task
        return arch_lib.candidate_channels(self.widths)

    def encode(self, images, training: bool = False):
        """Encoder pass: returns ``(feature at candidate 0, switches [s1..s5])``."""
        x = self.normalizer(images)
        switches = []
        for block in self.encoder_blocks:
            x, block_switches = block(x, training=training)
            switches.append(block_switches)
        return x, switches

    def trunk_features(self, images, depth: int, training: bool = False):
        """Features at candidates 0..``depth`` along the trunk, and the switches.

        ``depth`` may exceed the trunk only if unused; it is capped at the trunk length.
        """
        x, switches = self.encode(images, training=training)
        features = [x]
        for k in range(min(depth, len(self.trunk_blocks))):
            features.append(
                self.trunk_blocks[k]([features[-1], switches_for(k, switches)], training=training)
            )
        return features, switches

    def decoder_step(self, task: str, k: int):
        """The decoder block that maps candidate ``k`` to ``k + 1`` on ``task``'s path."""
        point = self.branch_points[task]
        return self.trunk_blocks[k] if k < point else self.branches[task][k - point]

    def decode_from(
        self, features, switches, start: int, task: str | None = None, training: bool = False
    ):
        """Runs ``task``'s path from branch candidate ``start`` to its output.

        The feature at a task's own branch point is taken before its coding gate.
        """
        task = task or self.tasks[0]
        if task not in self.tasks:
            raise ValueError(f"this student predicts {self.tasks}, not {task!r}.")
        x = features
        for k in range(start, len(arch_lib.BRANCH_CANDIDATES)):
            if k == self.branch_points[task]:
                x = self.coders[task](x)
            x = self.decoder_step(task, k)([x, switches_for(k, switches)], training=training)
        return self.heads[task](x)

    def forward_intermediates(self, images, training: bool = False) -> dict:
        """Like :meth:`SegNet.forward_intermediates`, with one candidate list per task."""
        x, switches = self.encode(images, training=training)
        candidates = {task: [x] for task in self.tasks}
        outputs = {}
        trunk = [x]
        for k in range(len(self.trunk_blocks)):
            trunk.append(
                self.trunk_blocks[k]([trunk[-1], switches_for(k, switches)], training=training)
            )
        for task in self.tasks:
            point = self.branch_points[task]
            path = list(trunk[: point + 1])
            y = self.coders[task](path[-1])
            for k in range(point, len(arch_lib.BRANCH_CANDIDATES)):
                y = self.decoder_step(task, k)([y, switches_for(k, switches)], training=training)
                if k + 1 < len(arch_lib.BRANCH_CANDIDATES):
                    path.append(y)
            candidates[task] = path
            outputs[task] = self.heads[task](y)
        return {"candidates": candidates, "side": switches, "outputs": outputs}

    def get_config(self):
        return {
            "tasks": list(self.tasks),
            "num_classes": self.num_classes,
            "branch_points": dict(self.branch_points),
            "arch": self.arch,
            "batch_norm": self.batch_norm,
            "channels": self.channels,
            "width_multiplier": self.width_multiplier,
            "depth_activation": self.depth_activation,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "synchronized_bn": self.synchronized_bn,
            "gate_scale": self.gate_scale,
            "image_shape": list(self.image_shape),
            "task_kinds": user_task_kinds(self.tasks),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
