"""Registers ka_tf's Keras classes as soon as Keras is imported, after ``import ka_tf``.

``keras.saving.load_model("teacher.keras")`` finds a custom class only once the module
that defines it has run. A notebook that imports ka_tf and then loads a ka_tf file
should not need to know which submodule that is, and ``import ka_tf`` itself must stay
light (the renderer's worker processes import ka_tf without TensorFlow). So importing
ka_tf installs :class:`_RegisterAfterImport`: the first of ``tensorflow`` or ``keras``
to be imported loads as usual (TensorFlow's import loads Keras too), and then
:mod:`ka_tf.models`, whose import registers every ka_tf layer and model, is imported.
When either is already imported, :func:`install` imports :mod:`ka_tf.models` at once.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

MODELS = "ka_tf.models"
TRIGGERS = ("tensorflow", "keras")


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds the first trigger module through the other finders; runs ka_tf.models after."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in TRIGGERS:
            return None
        sys.meta_path.remove(self)  # once: from here on the other finders work alone
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run_module(module)
            importlib.import_module(MODELS)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Registers ka_tf's Keras classes now if TensorFlow or Keras is loaded, else right
    after the first of them is."""
    if any(name in sys.modules for name in TRIGGERS):
        importlib.import_module(MODELS)
        return
    if not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
