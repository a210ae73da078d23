"""ka_tf: knowledge amalgamation for dense prediction in TensorFlow/Keras.

Trains one lightweight multi-task student from several frozen single-task
teachers on unlabelled images ("Student Becoming the Master", CVPR 2019).

The Python API (``ka_tf.amalgamate``, ``load_model``, ``predict``, ``load_teacher``,
``teacher_spec``, ``register_task``) loads on first use, so ``import ka_tf`` stays light;
once TensorFlow or Keras is imported, ka_tf's Keras classes are registered and
``keras.saving.load_model`` reads ka_tf files (:mod:`ka_tf._keras_registration`).
"""

import importlib as _importlib
import os as _os

# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with AVX-512
# class features. On an AVX2 CPU they make the demo's SegNet training step ~30%
# faster and inference ~25% (BUILD.md, "Performance fixes, measured"), so ka_tf asks
# for them unless the user set the variable. It takes effect only when ka_tf is
# imported before TensorFlow (every tool does); ``distribute.onednn_enabled`` reports it.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_API = {
    "amalgamate": "ka_tf.api",
    "load_model": "ka_tf.api",
    "predict": "ka_tf.api",
    "load_teacher": "ka_tf.teachers",
    "teacher_spec": "ka_tf.teachers",
    "register_task": "ka_tf.tasks",
}


def __getattr__(name: str):
    if name in _API:
        value = getattr(_importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ka_tf' has no attribute {name!r}")


def __dir__() -> list:
    return sorted([*globals(), *_API])


from ka_tf import _keras_registration  # noqa: E402

_keras_registration.install()
