r"""The teacher zoo (zoo/<name>/teacher.keras + card.json): list, verify, publish, rebuild.

Usage:
    python tools/zoo.py                                  # the zoo table (list)
    python tools/zoo.py --action=verify --evaluate       # sha256 + re-score on test
    python tools/zoo.py --action=rebuild --name=street_semseg
    python tools/zoo.py --action=publish --run_dir=runs/zoo/street_semseg \
        --name=street_semseg

list      one row per entry: task, params, size, training time, its test metrics
          next to its constant baseline's.
verify    checks each file against its card's sha256; with --evaluate also
          re-renders the test split and scores the file, which must reproduce the
          card's figures (exit 1 if not).
publish   copies a finished tools/train_teacher.py run into zoo/<name>/ (the
          teacher without optimizer state) and writes its card.
rebuild   retrains entry <name> from its recipe gin/teachers/zoo/<name>.gin with
          --deterministic (the card's command), then publishes it.
"""

from __future__ import annotations

import os
import subprocess
import sys

from absl import flags

from ka_tf import cli, path_flags

flags.DEFINE_enum(
    "action", "list", ["list", "verify", "publish", "rebuild"], "What to do (see --help)."
)
flags.DEFINE_multi_string(
    "name", [], "Zoo entry name(s), e.g. street_semseg (default for list/verify: all)."
)
path_flags.define_path("run_dir", None, "publish: the finished teacher run to publish.")
flags.DEFINE_integer("seed", 1, "publish/rebuild: the training run's --seed.")
flags.DEFINE_boolean("evaluate", False, "verify: also re-score each teacher on its test split.")
path_flags.define_path(
    "zoo_dir", None, "The zoo directory (default: $KA_TF_ZOO, else zoo/ in the repository)."
)
FLAGS = flags.FLAGS


def _names(zoo) -> list[str]:
    names = FLAGS.name or zoo.available_names(FLAGS.zoo_dir)
    if not names:
        from ka_tf.errors import ConfigError

        raise ConfigError(
            f"the zoo at {FLAGS.zoo_dir or zoo.zoo_dir()} has no entries; build one with "
            f"`python tools/zoo.py --action=rebuild --name=street_semseg`."
        )
    return names


def _list(zoo) -> int:
    from ka_tf.metrics.names import headline_metrics

    print(f"zoo: {FLAGS.zoo_dir or zoo.zoo_dir()}")
    header = f"{'entry':<16} {'task':<8} {'params':>9} {'MB':>5} {'train':>7}  test (baseline)"
    print(header)
    print("-" * len(header))
    for name in _names(zoo):
        entry = zoo.load_entry(name, FLAGS.zoo_dir)
        card = entry.card
        baseline = card.get("baseline", {}).get("test", {})
        figures = ", ".join(
            f"{key.split('/')[1]} {card['metrics']['test'][key]:.3f}"
            + (f" ({baseline[key]:.3f})" if key in baseline else "")
            for key in headline_metrics().get(entry.task, ())
            if key in card["metrics"]["test"]
        )
        print(
            f"{name:<16} {entry.task:<8} {card['params']:>9,} "
            f"{card['size_bytes'] / 1e6:>5.1f} {card['wall_time_s'] / 60:>5.1f}m  {figures}"
        )
    return 0


def _verify(zoo) -> int:
    failed = 0
    for name in _names(zoo):
        entry = zoo.load_entry(name, FLAGS.zoo_dir)
        zoo.verify_entry(entry)
        line = f"{name}: sha256 ok"
        if FLAGS.evaluate:
            mismatches = zoo.metric_mismatches(
                entry.card["metrics"]["test"], zoo.evaluate_entry(entry, progress=True)
            )
            if mismatches:
                failed += 1
                line += "; test metrics differ from the card: " + "; ".join(mismatches)
            else:
                line += f"; test metrics reproduce the card ({len(entry.card['metrics']['test'])})"
        print(line, flush=True)
    return 1 if failed else 0


def _publish(zoo, name: str, run_dir: str) -> int:
    card = zoo.publish(run_dir, name, FLAGS.zoo_dir, seed=FLAGS.seed)
    print(
        f"published {name}: {card['params']:,} parameters, {card['size_bytes'] / 1e6:.1f} MB, "
        f"sha256 {card['sha256'][:12]}…"
    )
    return 0


def main(argv: list[str]) -> int:
    del argv
    from ka_tf import zoo

    if FLAGS.action == "list":
        return _list(zoo)
    if FLAGS.action == "verify":
        return _verify(zoo)
    name = cli.require_flag("name")[0]
    if FLAGS.action == "publish":
        return _publish(zoo, name, cli.require_flag("run_dir"))
    from ka_tf import resources

    recipe = resources.shipped_path(zoo.recipe_path(name))
    if not os.path.isfile(recipe):
        cli.fail(
            f"--name={name} has no recipe {zoo.recipe_path(name)}; pick one of "
            f"{sorted(f[:-4] for f in os.listdir(os.path.dirname(recipe)))}."
        )
    run_dir = os.path.join("runs", "zoo", name)
    print(zoo.train_command(name, FLAGS.seed), flush=True)
    # The card records the checkout's `python tools/train_teacher.py ...`; the same
    # command runs as a module, so it works from an installed package too.
    arguments = zoo.train_arguments(name, FLAGS.seed)
    command = [sys.executable, "-m", "ka_tf.commands.train_teacher", *arguments]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        cli.fail(f"training {name} failed (exit {result.returncode}); the zoo is unchanged.")
    return _publish(zoo, name, os.path.abspath(run_dir))


def run() -> None:
    """The `ka-zoo` console script and `python tools/zoo.py`."""
    cli.run(main)


if __name__ == "__main__":
    run()
