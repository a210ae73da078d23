"""The amalgamation report (JSON + Markdown) and prediction panels a person can read."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ka_tf import visualize
from ka_tf.constants import DEPTH, SEMSEG
from ka_tf.io_utils import atomic_write_json, atomic_write_text
from ka_tf.metrics import format_markdown_table, format_table
from ka_tf.models.arch import BRANCH_CANDIDATES
from ka_tf.tasks import get_task

REPORT_JSON = "amalgamation_report.json"
REPORT_MD = "amalgamation_report.md"
BLOCK_LOSSES_PNG = "block_losses.png"
CHOSEN_COLOUR = (230, 120, 30)
OTHER_COLOUR = (140, 170, 210)
FIGURE_TITLE_HEIGHT = 16  # the block-loss figure's title line; task rows follow


def block_loss_table(
    block_losses: Mapping[str, list[float]], branch_points: Mapping[str, int]
) -> str:
    """Markdown table: one row per task, one column per candidate; the choice in bold."""
    header = "| task | " + " | ".join(f"{i}: {n}" for i, n in enumerate(BRANCH_CANDIDATES)) + " |"
    lines = [header, "|" + " --- |" * (len(BRANCH_CANDIDATES) + 1)]
    for task, losses in block_losses.items():
        cells = [
            f"**{v:.4f}**" if i == branch_points.get(task) else f"{v:.4f}"
            for i, v in enumerate(losses)
        ]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def block_loss_figure(
    block_losses: Mapping[str, Sequence[float | None]],
    branch_points: Mapping[str, int],
    bar_width: int = 64,
    bar_height: int = 80,
) -> np.ndarray:
    """The block-loss table as a picture: per task, a bar per candidate, the choice marked.

    Each task's bars share one scale (its largest loss is ``bar_height`` pixels); the
    chosen candidate is orange, the others grey, each with its value above and the
    candidate's name below. A candidate never measured (``None``) has no bar.

    Returns:
        A uint8 RGB image.
    """
    from PIL import Image, ImageDraw

    label_width, gap, row_height = 70, 8, bar_height + 44
    width = label_width + len(BRANCH_CANDIDATES) * (bar_width + gap) + gap
    title = FIGURE_TITLE_HEIGHT
    image = Image.new("RGB", (width, row_height * len(block_losses) + title), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text((4, 2), "validation projection loss per candidate (chosen: orange)", fill=(0, 0, 0))
    for row, (task, losses) in enumerate(block_losses.items()):
        top = title + row * row_height
        base = top + 14 + bar_height
        draw.text((4, top + 14 + bar_height // 2), task, fill=(0, 0, 0))
        measured = [v for v in losses if v is not None]
        scale = bar_height / max(max(measured, default=1.0), 1e-12)
        for index, value in enumerate(losses):
            left = label_width + gap + index * (bar_width + gap)
            draw.text((left, base + 3), f"{index}: {BRANCH_CANDIDATES[index]}", fill=(0, 0, 0))
            if value is None:
                continue
            chosen = branch_points.get(task) == index
            height = max(1, round(value * scale))
            draw.rectangle(
                [left, base - height, left + bar_width - 1, base - 1],
                fill=CHOSEN_COLOUR if chosen else OTHER_COLOUR,
            )
            draw.text((left, base - height - 11), f"{value:.4f}", fill=(0, 0, 0))
    return np.asarray(image)


def params_summary(
    params: Mapping[str, Any], teacher_paths: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Teachers' total, and the student as a fraction of it.

    Args:
        params: The report's ``params`` block.
        teacher_paths: Task → teacher file; a file serving several tasks (a joint
            teacher) is counted once.
    """
    per_file = {
        (teacher_paths or {}).get(task, task): count for task, count in params["teachers"].items()
    }
    teachers_total = int(sum(per_file.values()))
    return {
        "teachers_total": teachers_total,
        "student_fraction": params["student"] / teachers_total,
    }


def render_markdown(report: Mapping[str, Any]) -> str:
    """The human-readable report."""
    lines = ["# Amalgamation report", ""]
    lines += [f"- tasks: {', '.join(report['tasks'])}"]
    for task, path in report["teachers"].items():
        shared = [t for t, p in report["teachers"].items() if p == path]
        note = (
            f" (joint teacher of {', '.join(shared)}: an earlier student, so its rows in the "
            "metrics below are that student's — the new student next to the old one)"
            if len(shared) > 1
            else ""
        )
        lines.append(f"- teacher `{task}`: `{path}`{note}")
    if report.get("data"):
        data = report["data"]
        lines.append(
            f"- data: {data['count']} unlabelled photos in `{data['images']}`, "
            f"{data['held_out_for_val']} held out for the branch choice "
            f"(fraction {data['holdout_fraction']:g}: {data['holdout_rule']})"
        )
    if report.get("distribution"):
        run = report["distribution"]
        lines.append(
            f"- trained under `{run['strategy']}`: {run['replicas']} replica(s) on "
            f"{run['workers']} worker(s), input sharding {run['input_sharding']}"
        )
    if report["branch_points"]:
        lines += ["", "## Branch points", ""]
        lines.append(
            ", ".join(
                f"`{task}` → {b} ({BRANCH_CANDIDATES[b]})"
                for task, b in report["branch_points"].items()
            )
        )
    if report.get("block_losses"):
        lines += [
            "",
            "Validation projection loss at each candidate, every block measured with the "
            "student's final encoder and trunk and that block's own gate, i.e. at the start "
            "of the student that branching there assembles (chosen in bold):",
            "",
            block_loss_table(report["block_losses"], report["branch_points"]),
            "",
            f"![block losses]({BLOCK_LOSSES_PNG})",
        ]
        stage_end = report.get("block_losses_at_stage_end")
        if stage_end and stage_end != report["block_losses"]:
            lines += [
                "",
                "The same loss at the end of each block's own stage (stage b follows b "
                "earlier stages of encoder training, so these columns are not like for like):",
                "",
                block_loss_table(stage_end, report["branch_points"]),
            ]
    params = report["params"]
    summary = params_summary(params, report.get("teachers"))
    lines += ["", "## Parameters", "", "| model | parameters |", "| --- | --- |"]
    lines.append(
        f"| student | {params['student']:,} ({summary['student_fraction']:.2f}× the teachers) |"
    )
    for task, count in params["teachers"].items():
        lines.append(f"| teacher/{task} | {count:,} |")
    lines.append(f"| teachers together (each file once) | {summary['teachers_total']:,} |")
    own = report.get("student") or {}
    if own.get("family") == "efficientnet_lite":
        taps = own.get("tap_tasks") or []
        lines += [
            "",
            "Student: EfficientNet-Lite0 encoder (started from "
            f"{own['encoder_weights'] or 'random'} weights) and a "
            f"{own['decoder_channels']}-channel decoder per task, trained on the "
            "teachers' outputs"
            + (
                f" and on the features of the {', '.join(taps)} teacher(s) at the five branch "
                f"candidates through 1×1 adaptors (weight {own['tap_weight']:g})."
                if taps
                else "."
            ),
        ]
    elif own:
        widths = ", ".join(f"{task} {w:g}" for task, w in own["teachers_width_multiplier"].items())
        branches = own["branches"]
        if isinstance(branches, str):  # reports of earlier versions: one origin for all
            branches = {task: branches for task in report.get("tasks", [])}
        origins = ", ".join(f"{task} {origin}" for task, origin in branches.items())
        lines += [
            "",
            f"Student width multiplier {own['width_multiplier']:g} (splittable teachers: "
            f"{widths or 'none'}); branches: {origins}"
            + (
                " (channel-sliced: its block-wise gates reached the teachers' decoders through "
                "1×1 adaptors)."
                if "channel-sliced" in branches.values()
                else "."
            ),
        ]
        tiers = report.get("teacher_tiers") or {}
        if any(tier != "splittable" for tier in tiers.values()):
            lines.append(
                "Teachers: "
                + ", ".join(f"{task} {tier.replace('_', '-')}" for task, tier in tiers.items())
                + " (an output-only teacher's outputs alone are distilled; its branch starts "
                "as the student's own)."
            )
    for split, rows in report.get("metrics", {}).items():
        lines += ["", f"## Metrics on `{split}`", "", format_markdown_table(rows)]
    for split, rows in report.get("agreement", {}).items():
        lines += [
            "",
            f"## Agreement with the teachers on `{split}` (no human labels)",
            "",
            "Each task's label is its teacher's own prediction (a binary teacher's mask at "
            "0.5), so 1.0 IoU is perfect agreement, not perfect accuracy.",
            "",
            format_markdown_table(rows),
        ]
    if report.get("relative_change"):
        change = report["relative_change"]
        lines += [
            "",
            f"Mean relative change of the student vs its teachers (Δm): {change['delta_m']:+.2%}",
        ]
    if report.get("wall_time_s"):
        lines += ["", "## Wall time", ""]
        lines += [f"- {phase}: {seconds:.0f} s" for phase, seconds in report["wall_time_s"].items()]
    return "\n".join(lines) + "\n"


def write_report(model_dir: str, report: Mapping[str, Any]) -> tuple[str, str]:
    """Writes ``amalgamation_report.json`` and ``.md`` atomically; returns both paths.

    With block losses in the report, :func:`block_loss_figure` goes to
    ``block_losses.png`` beside them (the Markdown links it).
    """
    json_path = os.path.join(model_dir, REPORT_JSON)
    md_path = os.path.join(model_dir, REPORT_MD)
    if report.get("block_losses"):
        visualize.save_png(
            os.path.join(model_dir, BLOCK_LOSSES_PNG),
            block_loss_figure(report["block_losses"], report["branch_points"]),
        )
    atomic_write_json(json_path, report)
    atomic_write_text(md_path, render_markdown(report))
    return json_path, md_path


def console_summary(report: Mapping[str, Any]) -> str:
    """A plain-text table of the test metrics plus branch points and parameters."""
    parts = []
    for split, rows in report.get("metrics", {}).items():
        parts.append(f"Metrics on {split}:\n{format_table(rows)}")
    for split, rows in report.get("agreement", {}).items():
        parts.append(f"Agreement with the teachers on {split}:\n{format_table(rows)}")
    summary = params_summary(report["params"], report.get("teachers"))
    parts.append(
        f"Branch points: {report['branch_points'] or 'none (one decoder per task)'}; student "
        f"parameters "
        f"{report['params']['student']:,} = {summary['student_fraction']:.2f}x the teachers "
        f"together ({summary['teachers_total']:,})."
    )
    return "\n\n".join(parts)


def prediction_panel(
    image: np.ndarray,
    rows: Mapping[str, Mapping[str, np.ndarray]],
    palette,
    class_names=None,
) -> np.ndarray:
    """One image's panel: a column per source (teacher, student, ground truth), a row per task.

    Args:
        image: uint8 [H, W, 3].
        rows: Source name → {task: prediction (class ids, metres, or normals)}.
        palette: Class colours for semseg.
        class_names: Class names for the legend (optional).
    """
    tasks = sorted({task for outputs in rows.values() for task in outputs})
    depths = [v[DEPTH] for v in rows.values() if DEPTH in v]
    valid = [d[d > 0] for d in depths if (d > 0).any()]
    depth_range = (
        (float(min(v.min() for v in valid)), float(max(np.percentile(v, 99) for v in valid)))
        if valid
        else (None, None)
    )
    blank = np.full_like(image, 255)
    grid_rows = [
        [visualize.titled(image, "image")]
        + [visualize.titled(blank, "") for _ in range(len(rows) - 1)]
    ]
    for task in tasks:
        grid_rows.append(
            [
                visualize.titled(
                    get_task(task).render(
                        outputs[task], palette, depth_range if task == DEPTH else (None, None)
                    ),
                    f"{source} {task}",
                )
                if task in outputs
                else visualize.titled(blank, f"{source}: no {task}")
                for source, outputs in rows.items()
            ]
        )
    grid = visualize.make_grid(grid_rows)
    extras = []
    if SEMSEG in tasks and class_names:
        extras.append(visualize.legend(class_names, palette, grid.shape[1]))
    if DEPTH in tasks and depth_range[0] is not None:
        extras.append(visualize.depth_scale_bar(12, grid.shape[1], *depth_range))
    return np.concatenate([grid, *extras], axis=0) if extras else grid
