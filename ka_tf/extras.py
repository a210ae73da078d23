"""Optional dependencies: which pip extra provides what, and one line when one is missing.

``pip install ka_tf`` installs what training and evaluation need. The rest comes in
extras (setup.py's ``extras_require``): ``synth`` renders the synthetic benchmark
(pybullet), ``export`` writes and runs TFLite and ONNX files (tf2onnx, onnx,
onnxruntime, ai-edge-litert), ``convert`` reads PyTorch teachers (torch), ``real``
decodes the street video of ``make real-teachers`` into frames (OpenCV), ``dev``
runs the tests. A command that needs a missing one stops with a
:class:`MissingExtraError` naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ka_tf.errors import UserInputError

# Importable module → the extra that installs it.
EXTRA_OF_MODULE = {
    "pybullet": "synth",
    "pybullet_data": "synth",
    "tf2onnx": "export",
    "onnx": "export",
    "onnxruntime": "export",
    "ai_edge_litert": "export",
    "torch": "convert",
    "cv2": "real",
}


class MissingExtraError(UserInputError):
    """A feature needs an optional dependency that is not installed."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra`` into an installed or checked-out ka_tf."""
    return f"pip install 'ka_tf[{extra}]' (in a checkout: pip install -e '.[{extra}]')"


def _error(module: str, purpose: str) -> MissingExtraError:
    extra = EXTRA_OF_MODULE[module]
    return MissingExtraError(
        f"{purpose} needs {module}, which comes with ka_tf's '{extra}' extra and is not "
        f"installed: run `{install_hint(extra)}`."
    )


def require(module: str, purpose: str) -> ModuleType:
    """Imports ``module`` (a key of :data:`EXTRA_OF_MODULE`), or raises one line naming the extra.

    Args:
        module: The module to import, e.g. ``"pybullet"``.
        purpose: What needs it, for the message (e.g. ``"rendering synthetic frames"``).

    Raises:
        MissingExtraError: if the module cannot be found.
    """
    check(module, purpose)
    return importlib.import_module(module)


def check(module: str, purpose: str) -> None:
    """Like :func:`require` without importing (for tools run in a subprocess)."""
    if importlib.util.find_spec(module) is None:
        raise _error(module, purpose)
