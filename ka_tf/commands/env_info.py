"""Prints what ka_tf sees on this machine: versions, devices, strategy and precision.

Usage:
    python tools/env_info.py [--strategy=auto] [--precision=auto] [--gin_file=...]

Run it first on a new machine (or GPU node) to check that TensorFlow sees the
devices you expect and which precision policy ``auto`` picks there.
"""

from __future__ import annotations

import platform

from absl import flags

from ka_tf import cli, config, distribute

config.define_gin_flags()
distribute.define_distribution_flags()
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    del argv
    distribute.validate_choice("strategy", FLAGS.strategy, distribute.STRATEGIES)
    distribute.validate_choice("precision", FLAGS.precision, distribute.PRECISIONS)
    import keras
    import tensorflow as tf

    import ka_tf
    import ka_tf.optim

    config.parse_gin_config(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_paths)
    strategy = distribute.get_strategy(FLAGS.strategy or "auto")
    policy = distribute.resolve_precision(FLAGS.precision or "auto")
    rows = [
        ("python", platform.python_version()),
        ("ka_tf", ka_tf.__version__),
        ("tensorflow", tf.__version__),
        ("keras", keras.__version__),
        ("devices", ", ".join(d.name for d in tf.config.list_logical_devices())),
        ("cpu bf16 instructions", str(distribute.cpu_has_fast_bfloat16())),
        ("oneDNN CPU kernels", "on" if distribute.onednn_enabled() else "off"),
        ("strategy", f"{type(strategy).__name__} ({strategy.num_replicas_in_sync} replica(s))"),
        ("precision policy", policy),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def run() -> None:
    """The `ka-env-info` console script and `python tools/env_info.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
