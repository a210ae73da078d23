"""The name → :class:`~ka_tf.tasks.base.Task` table: one entry per dense task.

Built-in tasks (``semseg``, ``depth``, ``normals``) are registered when
:mod:`ka_tf.tasks` is imported; a user's task is one more :func:`register_task`
call. Everything that depends on a task — its head, distillation losses, flip and
resize rules, label padding, metrics and exported outputs — asks the registry, so
the order of registration is also the order tasks appear in reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import gin

from ka_tf.errors import ConfigError

if TYPE_CHECKING:
    from ka_tf.tasks.base import Task

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Makes ``task`` known under ``task.name`` (re-registering a name replaces it).

    Returns:
        ``task``, so that a module can write ``MY_TASK = register_task(MyTask())``.

    Raises:
        ConfigError: if the name is empty or clashes with the ``image`` key.
    """
    from ka_tf.constants import IMAGE

    if not task.name or task.name == IMAGE:
        raise ConfigError(
            f"a task needs a name other than {IMAGE!r}. Received: name={task.name!r}."
        )
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task ``name``.

    Raises:
        ConfigError: naming the known tasks when ``name`` is not one of them.
    """
    _ensure_builtins()
    if name not in _TASKS:
        raise ConfigError(f"unknown task. Received: task={name!r}. Expected one of {task_names()}.")
    return _TASKS[name]


def task_kinds() -> dict[str, type]:
    """Kinds of task a user names, ``kind → Task class`` taking the name: one class,
    many tasks (``binary``: a ``person`` mask and a ``salient`` one)."""
    from ka_tf.tasks.binary import BinarySegmentation

    return {"binary": BinarySegmentation}


def declare_task(name: str, kind: str) -> Task:
    """The task ``name``, registered as a new task of ``kind`` if it is not known.

    A saved model records the kind of each task its user named, so that loading it
    declares them (:class:`~ka_tf.models.task_head.DenseTaskHead`).

    Raises:
        ConfigError: an unknown kind, or ``name`` already registered as another kind.
    """
    kinds = task_kinds()
    if kind not in kinds:
        raise ConfigError(
            f"unknown task kind for task {name!r}. Received: kind={kind!r}. "
            f"Expected one of {sorted(kinds)}."
        )
    _ensure_builtins()
    if name in _TASKS:
        if _TASKS[name].kind != kind:
            raise ConfigError(
                f"task {name!r} is already registered as kind {_TASKS[name].kind!r}, not "
                f"{kind!r}; choose another name."
            )
        return _TASKS[name]
    return register_task(kinds[kind](name))


@gin.configurable
def declare_tasks(binary: Iterable[str] = ()) -> tuple[str, ...]:
    """Declares the tasks a gin recipe names (run after parsing every gin config), e.g.
    ``declare_tasks.binary = ['person', 'salient']``; returns their names."""
    return tuple(declare_task(name, "binary").name for name in binary)


def task_names() -> tuple[str, ...]:
    """Every registered task name, in registration order (built-ins first)."""
    _ensure_builtins()
    return tuple(_TASKS)


def ordered_tasks(names: Iterable[str]) -> tuple[str, ...]:
    """The registered tasks among ``names``, in registration order (others dropped)."""
    wanted = set(names)
    return tuple(name for name in task_names() if name in wanted)


def _ensure_builtins() -> None:
    import ka_tf.tasks  # noqa: F401  (registers semseg, depth, normals)


def unregister_task(name: str) -> None:
    """Forgets task ``name`` (a notebook or test that registered its own task).

    Raises:
        ConfigError: for a built-in task or a name that is not registered.
    """
    from ka_tf.constants import TASKS

    if name in TASKS:
        raise ConfigError(f"{name!r} is a built-in task; it cannot be unregistered.")
    if name not in _TASKS:
        raise ConfigError(f"no task {name!r} is registered. Registered: {task_names()}.")
    del _TASKS[name]
