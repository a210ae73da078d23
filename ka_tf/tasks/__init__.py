"""Dense tasks as a registry: one module per task, one :class:`Task` object each.

Example (a notebook):
    >>> import ka_tf.tasks
    >>> ka_tf.tasks.task_names()
    ('semseg', 'depth', 'normals')
    >>> sorted(ka_tf.tasks.get_task("depth").losses())
    ['berhu', 'l1', 'log_l1', 'silog']
"""

from ka_tf.tasks import depth, normals, semseg
from ka_tf.tasks.base import Task
from ka_tf.tasks.registry import (
    declare_task,
    declare_tasks,
    get_task,
    ordered_tasks,
    register_task,
    task_kinds,
    task_names,
    unregister_task,
)

# The built-in tasks, in the order reports list them.
for _task in (semseg.SEMANTIC_SEGMENTATION, depth.DEPTH_TASK, normals.SURFACE_NORMALS):
    register_task(_task)

__all__ = [
    "Task",
    "declare_task",
    "declare_tasks",
    "get_task",
    "ordered_tasks",
    "register_task",
    "task_kinds",
    "task_names",
    "unregister_task",
]
