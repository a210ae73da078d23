"""Readable fixed-width and Markdown tables of metrics: rows = models, columns = metrics.

Column headers carry an arrow: ``↑`` higher is better, ``↓`` lower is better (no
arrow for keys ka_tf does not know, e.g. ``params``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ka_tf.metrics.names import higher_is_better, metric_names

MISSING = "-"


def _columns(rows: Mapping[str, Mapping[str, float]], metrics: Sequence[str] | None) -> list[str]:
    if metrics is not None:
        return list(metrics)
    seen = {name for values in rows.values() for name in values}
    ordered = metric_names()
    known = [name for name in ordered if name in seen]
    extra: list[str] = []
    for values in rows.values():
        extra += [name for name in values if name not in ordered and name not in extra]
    return known + extra


def _header(name: str) -> str:
    direction = higher_is_better(name)
    if direction is None:
        return name
    return f"{name} {'↑' if direction else '↓'}"


def _cell(value: float | None, digits: int) -> str:
    if value is None:
        return MISSING
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return str(value)


def _cells(
    rows: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] | None,
    digits: int,
    first_column: str = "model",
) -> tuple[list[str], list[list[str]]]:
    columns = _columns(rows, metrics)
    header = [first_column, *(_header(name) for name in columns)]
    body = [
        [str(model), *(_cell(values.get(name), digits) for name in columns)]
        for model, values in rows.items()
    ]
    return header, body


def format_table(
    rows: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] | None = None,
    digits: int = 4,
    first_column: str = "model",
) -> str:
    """Formats metrics as a fixed-width text table.

    Args:
        rows: Model name -> {metric key: value}.
        metrics: Columns in order; default: every key seen, known metrics first in
            report order.
        digits: Decimals shown for numbers.
        first_column: The header of the row names' column.

    Returns:
        The table, one line per model below a header and a rule, no trailing newline.
        Missing values show as ``-``.

    Example:
        >>> print(format_table({"teacher": {"depth/rmse": 0.5}}))
        model    depth/rmse ↓
        -------  ------------
        teacher        0.5000
    """
    header, body = _cells(rows, metrics, digits, first_column)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def render(line: list[str]) -> str:
        first = line[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in body)])


def format_markdown_table(
    rows: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] | None = None,
    digits: int = 4,
) -> str:
    """Formats metrics as a GitHub-flavoured Markdown table (numbers right-aligned).

    Args:
        rows: Model name -> {metric key: value}.
        metrics: Columns in order; default as in :func:`format_table`.
        digits: Decimals shown for numbers.

    Returns:
        The Markdown table text, no trailing newline.
    """
    header, body = _cells(rows, metrics, digits)
    align = ["---", *("---:" for _ in header[1:])]
    lines = [header, align, *body]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
