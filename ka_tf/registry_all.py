"""Imports every ka_tf module that registers gin configurables.

Tools import only what they use; tests and the gin-file checker import this to
make every configurable known before parsing an arbitrary gin file.
"""

import importlib

CONFIGURABLE_MODULES = (
    "ka_tf.distribute",
    "ka_tf.optim",
    "ka_tf.data.registry",
    "ka_tf.data.pipeline",
    "ka_tf.data.synth.config",
    "ka_tf.data.synth_benchmark",
    "ka_tf.losses",
    "ka_tf.training.teacher",
    "ka_tf.amalgamation.branching",
    "ka_tf.amalgamation.run",
    "ka_tf.amalgamation.lite_student_builder",
    "ka_tf.real.assets",
    "ka_tf.tasks.registry",
    "ka_tf.teachers.foreign",
    "ka_tf.evaluation",
    "ka_tf.zoo",
)

for _module in CONFIGURABLE_MODULES:
    importlib.import_module(_module)
