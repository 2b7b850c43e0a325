"""The project's one Markdown table: every report's tables go through wasabi's renderer,
so none joins pipes by hand; and the cell format of the run reports."""
from typing import Any, Iterable, Optional, Sequence

from wasabi import MarkdownRenderer


def table(header: Sequence[str], rows: Iterable[Iterable[Any]], aligns: Optional[Sequence[str]] = None) -> str:
    """A Markdown table ending with a newline.

    header (Sequence[str]): the column names.
    rows (Iterable[Iterable[Any]]): the body; each cell is written with `str` (format it first).
    aligns (Optional[Sequence[str]]): "l", "r" or "c" per column; left when None.
    RETURNS (str): the table.
    """
    body = [[str(cell) for cell in row] for row in rows]
    return MarkdownRenderer().table(body, list(header), aligns).rstrip("\n") + "\n"


def cell(x, fmt: str = "{:.3f}") -> str:
    """A table cell: "-" for None, integers with thousands separators, floats by FMT."""
    if x is None:
        return "-"
    return f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) else fmt.format(x) if isinstance(x, float) else str(x)


def formatted_table(header: Sequence[str], rows: Iterable[Iterable[Any]]) -> str:
    """A Markdown table of `cell`-formatted values."""
    return table(header, [[cell(value) for value in row] for row in rows])
