"""The splittable-teacher protocol: what the block-wise phase needs from a teacher.

A teacher is splittable when its decoder can run from a tap: it names the channels of
its feature at each of the five branch candidates (down5, up5, up4, up3, up2 — 1/32 to
1/2 of the image), returns those features and the decoder's side inputs from one pass
(:meth:`forward_intermediates`), and runs its decoder from candidate ``b`` on a given
feature with those side inputs (:meth:`decode_from`). ka_tf's SegNet (side inputs: the
pooling switches), a finished TargetNet student and the U-Net (side inputs: the skip
features) follow it; ``tests/teachers/splittable_contract.py`` is the shared test any
new architecture passes.

The student is a SegNet-family TargetNet, so only SegNet-family teachers can also seed
its weights (``init_from``, branches copied at assembly); another splittable teacher
teaches through its decoder, and its task's branch starts as the student's own.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

SPLITTABLE = "splittable"


@runtime_checkable
class SplittableTeacher(Protocol):
    """What a splittable teacher provides (a Keras model; ``heads[task]`` its heads)."""

    tasks: tuple[str, ...]

    def candidate_channels(self, task: str | None = None) -> tuple[int, ...]:
        """Channels of the feature at each branch candidate 0..4."""

    def forward_intermediates(self, images: Any, training: bool = False) -> dict:
        """``{"candidates": {task: [f0..f4]}, "side": [...], "outputs": {task: y}}``."""

    def decode_from(
        self, features: Any, side: Any, start: int, task: str | None = None, training: bool = False
    ) -> Any:
        """The task's output from the feature at candidate ``start`` and the side inputs."""


def seeds_student(teacher: Any) -> bool:
    """Whether ``teacher``'s weights fit the SegNet-family student (SegNet, TargetNet)."""
    from ka_tf.models import SegNet, TargetNet

    return isinstance(teacher, (SegNet, TargetNet))
