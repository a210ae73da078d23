"""The study over seeds: is the student the master, by how much, and is it more than training?

``tools/study.py`` runs one recipe's amalgamation K times on the same teachers (seeds
1..K), and a *control* per task: the teacher itself trained for the same number of
steps on its own flip-averaged outputs (self-distillation at equal compute). This
module scores what those runs wrote:

- :func:`collect_statistics`: per-image sufficient statistics of a model on the test
  split (:mod:`ka_tf.metrics.per_image`);
- :func:`bootstrap_delta_m`: Δm (overall and per task) with a 95% interval from a
  bootstrap over test images *and* seeds (each sample draws images with replacement,
  the same images for teacher and student, and one seed's student);
- :func:`summarize` → ``study.json``; :func:`markdown` → ``study.md``.

Δm per task is the mean relative change of that task's metrics, so depth's eight
metrics do not drown scene parsing's three; the overall Δm is the mean over every
metric (:func:`ka_tf.metrics.relative_change`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ka_tf.errors import ConfigError, DataError
from ka_tf.metrics import relative_change
from ka_tf.metrics.names import headline_metrics, higher_is_better, metric_names, task_of
from ka_tf.metrics.per_image import image_statistics, pooled_metrics

Statistics = dict[str, np.ndarray]  # task → [images, D] rows


def collect_statistics(
    model,
    dataset,
    tasks: Sequence[str],
    max_depth: float | None = None,
    progress: bool = True,
) -> Statistics:
    """Per-image statistics of ``model`` on a labelled, batched dataset.

    Args:
        model: A ka_tf dense model (teacher or student).
        dataset: Batched dicts with ``image`` and the labels of ``tasks``.
        tasks: The tasks to score.
        max_depth: Depth clamp, as the evaluation's ``evaluate_model.max_depth``.
        progress: Show a progress bar.
    """
    from tqdm import tqdm

    from ka_tf.evaluation import _predictor

    predictor = _predictor(model)
    rows: dict[str, list[np.ndarray]] = {task: [] for task in tasks}
    for batch in tqdm(dataset, desc=f"statistics {model.name}", disable=not progress):
        predictions = predictor(batch["image"])
        for task in tasks:
            classes = predictor.num_classes if task == "semseg" else None
            rows[task].append(
                image_statistics(
                    task,
                    predictions[task],
                    batch[task].numpy(),
                    num_classes=classes,
                    max_depth=max_depth,
                )
            )
    return {task: np.concatenate(parts) for task, parts in rows.items()}


def metrics_of(statistics: Statistics, images: np.ndarray | None = None) -> dict[str, float]:
    """The pooled metrics of every task over ``images`` (indices; None: all)."""
    result: dict[str, float] = {}
    for task, rows in statistics.items():
        chosen = rows if images is None else rows[images]
        result.update(pooled_metrics(task, chosen.sum(axis=0)))
    return result


def task_delta_m(change: Mapping[str, float]) -> dict[str, float]:
    """Per task, the mean relative change of its metrics (from :func:`relative_change`)."""
    per_task: dict[str, list[float]] = {}
    for name, value in change.items():
        if name in metric_names():
            per_task.setdefault(task_of(name), []).append(value)
    return {task: float(np.mean(values)) for task, values in per_task.items()}


def _interval(values: Sequence[float]) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def bootstrap_delta_m(
    teacher: Statistics,
    students: Sequence[Statistics],
    samples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Δm of the students against the teachers with 95% bootstrap intervals.

    Args:
        teacher: The teachers' statistics, one task each (merged).
        students: One statistics dict per seed, same tasks and images.
        samples: Bootstrap samples.
        seed: The bootstrap's random seed.

    Returns:
        ``{"delta_m": {"mean", "ci95"}, "delta_m_per_task": {task: {"mean", "ci95"}},
        "excluded": [metric, ...]}``: ``mean`` is the mean over seeds on the whole test
        split; ``excluded`` lists the metrics a teacher scores 0 on (no relative change).
    """
    if not students:
        raise ConfigError("the study needs at least one student. Received none.")
    counts = {rows.shape[0] for rows in teacher.values()}
    counts |= {rows.shape[0] for student in students for rows in student.values()}
    if len(counts) != 1:
        raise DataError(f"teacher and students were scored on different images: {counts}.")
    images = counts.pop()
    teacher_all = metrics_of(teacher)
    # A relative change is undefined where the teacher scores 0 (δ1 of an untrained
    # teacher): such metrics are listed under "excluded", as in the amalgamation report.
    excluded = sorted(k for k, v in teacher_all.items() if v == 0 or not np.isfinite(v))

    def change_of(student_metrics, teacher_metrics):
        kept = {k: v for k, v in teacher_metrics.items() if k not in excluded and v != 0}
        return relative_change(student_metrics, kept)

    point = [change_of(metrics_of(student), teacher_all) for student in students]
    rng = np.random.default_rng(seed)
    overall, per_task = [], {task: [] for task in teacher}
    for _ in range(samples):
        chosen = rng.integers(0, images, images)
        student = students[int(rng.integers(0, len(students)))]
        change = change_of(metrics_of(student, chosen), metrics_of(teacher, chosen))
        overall.append(change["delta_m"])
        for task, value in task_delta_m(change).items():
            per_task[task].append(value)
    return {
        "delta_m": {
            "mean": float(np.mean([c["delta_m"] for c in point])),
            "ci95": _interval(overall),
        },
        "delta_m_per_task": {
            task: {
                "mean": float(np.mean([task_delta_m(c)[task] for c in point])),
                "ci95": _interval(values),
            }
            for task, values in per_task.items()
            if values
        },
        "excluded": excluded,
    }


def _better(metric: str, value: float, reference: float) -> bool:
    return value < reference if higher_is_better(metric) is False else value > reference


def summarize(
    recipe: str,
    seeds: Sequence[int],
    params_ratio: float,
    teachers: Mapping[str, Mapping[str, float]],
    students: Sequence[Mapping[str, float]],
    control: Mapping[str, Sequence[Mapping[str, float]]],
    delta: Mapping[str, Any],
    command: str,
    targets: Mapping[str, Mapping[str, float]] | None = None,
    control_delta_m: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``study.json`` record (schema in ``tools/study.py --help``).

    ``targets``: task → the metrics of its teacher's multi-view targets (the teacher
    averaged over the views the student's targets are; a ceiling for the student, shown
    beside the teacher's single pass, which the verdict compares with).
    ``control_delta_m``: task → the control's Δm against its teacher,
    ``{"mean", "ci95"}`` (:func:`bootstrap_delta_m`'s per-task entry), shown beside the
    student's.
    """
    teacher_all: dict[str, float] = {}
    for scores in teachers.values():
        teacher_all.update(scores)
    per_metric = {}
    for metric in metric_names():
        if metric not in teacher_all or not all(metric in s for s in students):
            continue
        values = np.array([s[metric] for s in students], np.float64)
        row = {
            "teacher": float(teacher_all[metric]),
            "student_mean": float(values.mean()),
            "student_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "student_median": float(np.median(values)),
            "student_range": [float(values.min()), float(values.max())],
            "wins": int(sum(_better(metric, v, teacher_all[metric]) for v in values)),
        }
        target = (targets or {}).get(task_of(metric), {})
        if metric in target:
            row["targets"] = float(target[metric])
        runs = control.get(task_of(metric), [])
        if runs:
            row["control_mean"] = float(np.mean([run[metric] for run in runs]))
        per_metric[metric] = row
    verdict = {}
    for task in teachers:
        headline = [m for m in headline_metrics().get(task, ()) if m in per_metric]
        verdict[task] = {
            "student_at_or_above_teacher": all(
                not _better(m, per_metric[m]["teacher"], per_metric[m]["student_mean"])
                for m in headline
            ),
            "student_above_control": bool(control.get(task))
            and all(
                _better(m, per_metric[m]["student_mean"], per_metric[m]["control_mean"])
                for m in headline
            ),
        }
    return {
        "recipe": recipe,
        "command": command,
        "seeds": list(seeds),
        "params_ratio": float(params_ratio),
        "teachers": {task: dict(scores) for task, scores in teachers.items()},
        **({"targets": {task: dict(s) for task, s in targets.items()}} if targets else {}),
        "students": [dict(s) for s in students],
        "control": {task: [dict(r) for r in runs] for task, runs in control.items()},
        "delta_m": dict(delta["delta_m"]),
        "delta_m_per_task": dict(delta["delta_m_per_task"]),
        **(
            {"control_delta_m_per_task": {t: dict(d) for t, d in control_delta_m.items()}}
            if control_delta_m
            else {}
        ),
        "delta_m_excluded": list(delta.get("excluded", [])),
        "per_metric": per_metric,
        "verdict": verdict,
    }


def _pct(value: float) -> str:
    return f"{100 * value:+.2f}%"


def markdown(summary: Mapping[str, Any]) -> str:
    """``study.md``: the headline, the per-metric table and the verdict per task."""
    delta = summary["delta_m"]
    lines = [
        f"# Study: {summary['recipe']}, {len(summary['seeds'])} seeds",
        "",
        f"`{summary['command']}`",
        "",
        f"Student parameters: {summary['params_ratio']:.3f}× the teachers'.",
        "",
        f"**Δm {_pct(delta['mean'])}** (95% CI {_pct(delta['ci95'][0])} … "
        f"{_pct(delta['ci95'][1])}; bootstrap over test images and seeds)",
        "",
    ]
    controls = summary.get("control_delta_m_per_task", {})
    if controls:
        lines += [
            "| task | Δm | 95% CI | control's Δm | 95% CI |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
    else:
        lines += ["| task | Δm | 95% CI |", "| --- | ---: | ---: |"]

    def cells(row: Mapping[str, Any]) -> str:
        return f"{_pct(row['mean'])} | {_pct(row['ci95'][0])} … {_pct(row['ci95'][1])}"

    for task, row in summary["delta_m_per_task"].items():
        control_cells = ""
        if controls:
            control_cells = f" {cells(controls[task])} |" if task in controls else " — | — |"
        lines.append(f"| {task} | {cells(row)} |{control_cells}")
    with_targets = "targets" in summary
    lines += [
        "",
        "| metric | teacher | "
        + ("targets (teacher, multi-view) | " if with_targets else "")
        + "student, median (min … max) | student, mean ± std | wins | control |",
        "| --- | ---: | " + ("---: | " if with_targets else "") + "---: | ---: | ---: | ---: |",
    ]
    seeds = len(summary["seeds"])
    for metric, row in summary["per_metric"].items():
        control = f"{row['control_mean']:.4f}" if "control_mean" in row else "—"
        target = (
            (f"{row['targets']:.4f} | " if "targets" in row else "— | ") if with_targets else ""
        )
        low, high = row["student_range"]
        lines.append(
            f"| {metric} | {row['teacher']:.4f} | {target}{row['student_median']:.4f} "
            f"({low:.4f} … {high:.4f}) | {row['student_mean']:.4f} ± "
            f"{row['student_std']:.4f} | {row['wins']}/{seeds} | {control} |"
        )
    if with_targets:
        lines += [
            "",
            "Targets: each teacher averaged over the views the student's fine-tuning "
            "targets are (mirror, scales); wins and the verdict compare with the "
            "teacher's single pass.",
        ]
    lines += ["", "| task | student ≥ teacher (headline metrics) | student > control |"]
    lines.append("| --- | --- | --- |")
    for task, verdict in summary["verdict"].items():
        lines.append(
            f"| {task} | {'yes' if verdict['student_at_or_above_teacher'] else 'no'} | "
            f"{'yes' if verdict['student_above_control'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"
