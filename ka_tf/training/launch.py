"""What every training tool does before training: flags, gin, precision, strategy, run dir."""

from __future__ import annotations

import tensorflow as tf
from absl import flags, logging

from ka_tf import config, distribute
from ka_tf.io_utils import ensure_writable_dir


def define_training_flags(default_model_dir: str | None = None) -> None:
    """Defines the gin flags, ``--model_dir``, ``--strategy`` and ``--precision``."""
    config.define_gin_flags()
    distribute.define_distribution_flags()
    flags.DEFINE_string(
        "model_dir",
        default_model_dir,
        "Run directory: checkpoints, TensorBoard logs, config.gin, the trained model and "
        "reports. Rerunning with the same --model_dir resumes an interrupted run.",
    )


def set_up_run(flag_values: flags.FlagValues) -> tf.distribute.Strategy:
    """Validates flags, parses gin, sets the precision policy, returns the strategy.

    ``--strategy``/``--precision`` override gin's ``get_strategy.name`` and
    ``set_precision_policy.name``. The gin config is written to the run directory.
    """
    distribute.validate_choice("strategy", flag_values.strategy, distribute.STRATEGIES)
    distribute.validate_choice("precision", flag_values.precision, distribute.PRECISIONS)
    if not flag_values.model_dir:
        from ka_tf.errors import ConfigError

        raise ConfigError("--model_dir is required: the directory to write the run into.")
    config.parse_gin_config(
        flag_values.gin_file, flag_values.gin_bindings, flag_values.gin_search_paths
    )
    ensure_writable_dir(flag_values.model_dir)
    config.write_config(flag_values.model_dir)
    if flag_values.precision:
        distribute.set_precision_policy(flag_values.precision)
    else:
        distribute.set_precision_policy()
    strategy = (
        distribute.get_strategy(flag_values.strategy)
        if flag_values.strategy
        else distribute.get_strategy()
    )
    logging.info("Run directory: %s", flag_values.model_dir)
    return strategy
