"""Where ka_tf's shipped files live: the gin recipes (``gin/``) and the teacher zoo (``zoo/``).

In a git checkout they sit beside the package, at the repository root. An installed
wheel carries copies inside the package (``ka_tf/_shipped/gin``, ``ka_tf/_shipped/zoo``;
setup.py's ``build_py`` puts them there), so the tools find their recipes and the
zoo from any working directory. Paths inside gin files (``include 'gin/data/...'``)
are relative to this root in both layouts.
"""

from __future__ import annotations

import functools
import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
SHIPPED_DIR = os.path.join(PACKAGE_DIR, "_shipped")


@functools.cache
def shipped_root() -> str:
    """The directory holding ``gin/`` and ``zoo/``: the checkout's root, else the wheel's copy."""
    checkout = os.path.dirname(PACKAGE_DIR)
    if os.path.isfile(os.path.join(checkout, "setup.py")) and os.path.isdir(
        os.path.join(checkout, "gin")
    ):
        return checkout
    return SHIPPED_DIR


def shipped_path(relative: str) -> str:
    """``relative`` (e.g. ``gin/demo.gin``) under :func:`shipped_root`."""
    return os.path.join(shipped_root(), relative)
