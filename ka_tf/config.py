"""Gin configuration for the tools: the shared flags, parsing, and the saved config.

Every tool defines the same three flags (``--gin_file``, ``--gin_bindings``,
``--gin_search_paths``) through :func:`define_gin_flags` and parses them once with
:func:`parse_gin_config`, which refuses unknown configurables
(``skip_unknown=False``) and reports a bad file or binding as a
:class:`~ka_tf.errors.ConfigError` naming it.
"""

from __future__ import annotations

import os
import re
import tokenize
from collections.abc import Sequence

import gin
from absl import flags, logging

from ka_tf import path_flags
from ka_tf.errors import ConfigError

# The DEFINE_* calls below run on behalf of a tool; disclaiming makes absl count their
# flags as the calling tool's own, so the tool's --help lists them.
flags.disclaim_key_flags()

OPERATIVE_CONFIG_NAME = "operative_config.gin"
CONFIG_NAME = "config.gin"


def define_gin_flags() -> None:
    """Defines ``--gin_file``, ``--gin_bindings`` and ``--gin_search_paths``."""
    path_flags.define_multi_path(
        "gin_file",
        [],
        "Gin config file(s) to parse, in order; later files override earlier ones. "
        "Relative paths are looked up in the working directory, then in "
        "--gin_search_paths.",
    )
    flags.DEFINE_multi_string(
        "gin_bindings",
        [],
        "Individual gin bindings applied after the files, e.g. "
        "--gin_bindings='TRAIN_STEPS = 100'. Repeat the flag for several.",
    )
    flags.DEFINE_list(
        "gin_search_paths",
        ["."],
        "Comma-separated directories in which gin files and their `include`s are looked up.",
    )


def resolve_gin_file(path: str, search_paths: Sequence[str]) -> str:
    """Returns an existing path for ``path``: as given, in each search path, then shipped.

    The last place is ka_tf's own recipes (:func:`ka_tf.resources.shipped_root`: the
    checkout's root, or the installed package's copy), so ``--gin_file=gin/demo.gin``
    works from any working directory.

    Raises:
        ConfigError: if no candidate exists, naming every place searched.
    """
    from ka_tf import resources

    candidates = [path] + [os.path.join(root, path) for root in search_paths]
    candidates.append(resources.shipped_path(path))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise ConfigError(
        f"gin file not found: --gin_file={path} (looked in the working directory "
        f"{os.getcwd()}, in --gin_search_paths={list(search_paths)} and among ka_tf's "
        f"shipped recipes in {resources.shipped_root()}). Pass an existing file, e.g. "
        f"--gin_file=gin/demo.gin."
    )


def parse_gin_config(
    gin_files: Sequence[str],
    gin_bindings: Sequence[str] = (),
    search_paths: Sequence[str] = (".",),
) -> str:
    """Parses gin files and bindings strictly and returns ``gin.config_str()``.

    Imports :mod:`ka_tf.registry_all` first, so every ka_tf configurable is known.

    Args:
        gin_files: Gin files in parse order.
        gin_bindings: Extra bindings, applied after the files.
        search_paths: Directories for relative gin files and ``include``; ka_tf's
            shipped recipes are searched last.

    Returns:
        The parsed configuration as gin text (also logged).

    Raises:
        ConfigError: on a missing file, a syntax error or an unknown configurable.
    """
    # Every configurable must exist before parsing: gin locks the config afterwards, and a
    # module imported later (a dataset loader, say) could not register its configurables.
    import ka_tf.registry_all  # noqa: F401
    from ka_tf import resources

    for root in [*search_paths, resources.shipped_root()]:
        gin.add_config_file_search_path(root)
    files = [resolve_gin_file(path, search_paths) for path in gin_files]
    try:
        gin.parse_config_files_and_bindings(files, list(gin_bindings), skip_unknown=False)
    except (ValueError, SyntaxError, KeyError, OSError, tokenize.TokenError) as error:
        source = f"gin files {files}" if files else "gin"
        if gin_bindings:
            source += f" / --gin_bindings {list(gin_bindings)}"
        message = " ".join(str(error).split())
        required = re.search(r"(\w+)/macro\.value set to `?%gin\.REQUIRED", message)
        if required:
            name = required.group(1)
            raise ConfigError(
                f"{name} is required by {source} but not set. Bind it, e.g. "
                f"--gin_bindings=\"{name} = '/path/to/data'\"."
            ) from error
        raise ConfigError(
            f"invalid gin configuration in {source}: {message}. Check the spelling against "
            f"the gin files in gin/ and the configurables in ka_tf."
        ) from error
    from ka_tf.tasks import declare_tasks

    declare_tasks()  # the tasks the recipe names (declare_tasks.binary = [...])
    config = gin.config_str()
    logging.info("Gin configuration:\n%s", config)
    return config


def image_folder_bindings(folder: str) -> list[str]:
    """Bindings that make a recipe amalgamate on a folder of unlabelled photos
    (``tools/train.py --images``, :func:`ka_tf.amalgamate`'s ``images``): the folder is
    the transfer set and, through :func:`~ka_tf.data.image_folder.load_image_folder`'s
    hold-out, the validation images that choose the branch points; every photo is
    resized and cropped to ``IMAGE_SIZE``; no test data (there are no labels). The
    hold-out (folder, counts, fraction, rule) goes into the report as ``data``."""
    from ka_tf.data.image_folder import DEFAULT_HOLDOUT_FRACTION, describe_holdout

    options = "'size': %IMAGE_SIZE, 'resize_mode': 'resize_crop'"
    record = describe_holdout(folder, DEFAULT_HOLDOUT_FRACTION)
    return [
        f"amalgamate.data_record = {record!r}",
        "DATASET = 'image_folder'",
        f"DATA_DIR = {folder!r}",
        "transfer/make_dataset.split = 'all'",
        f"transfer/make_dataset.load_options = {{{options}, 'holdout': 'train'}}",
        "val_images/make_dataset.split = 'all'",
        f"val_images/make_dataset.load_options = {{{options}, 'holdout': 'val'}}",
        "amalgamate.val_data = @val_images/make_dataset",
        "amalgamate.test_data = None",
    ]


def write_config(model_dir: str, operative: bool = False) -> str:
    """Writes the gin config (or, with ``operative``, the operative config) to ``model_dir``.

    Returns:
        The path written.
    """
    from ka_tf.io_utils import atomic_write_text

    text = gin.operative_config_str() if operative else gin.config_str()
    path = os.path.join(model_dir, OPERATIVE_CONFIG_NAME if operative else CONFIG_NAME)
    atomic_write_text(path, text)
    return path
