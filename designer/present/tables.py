"""Rich tables that fit the terminal and never cut a number (`designer profile`, `compare`, ...).

A column of numbers gets exactly the width of its longest value and never wraps inside one; the label
column and the layout names in the header fold instead. When the layouts do not fit side by side, a
value's ratio goes under it on a second line, and when they still do not fit the layouts are split
over several tables (the metric column repeated in each), so a value is always printed whole.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

LABEL_MIN = 12          # the metric column folds down to this width, no narrower


@dataclass(frozen=True)
class Row:
    label: str
    values: list[str]                 # one per value column
    notes: list[str | None]           # a ratio such as "(x5.78)" under or beside each value, or None
    fold: bool = False                # text (a file name), not a number: may fold to the column's width


def _width(cell: str) -> int:
    return max((len(line) for line in cell.split("\n")), default=0)


def table_width(widths: list[int]) -> int:
    """Characters a rich table (default box, padding 1) of columns this wide takes."""
    return sum(widths) + 3 * len(widths) + 1


def _cells(row: Row, two_lines: bool) -> list[str]:
    sep = "\n" if two_lines else " "
    return [v if n is None else f"{v}{sep}{n}" for v, n in zip(row.values, row.notes)]


def _chunks(needs: list[int], room: int) -> list[list[int]]:
    """Column indices grouped so that each group's widths (plus borders) fit in `room`; at least one each."""
    groups: list[list[int]] = [[]]
    used = 0
    for i, need in enumerate(needs):
        if groups[-1] and used + need + 3 > room:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += need + 3
    return groups


def metric_tables(title: str, head: str, names: list[str], rows: list[Row], width: int,
                  *, label_head: str = "metric") -> list[Table]:
    """Tables of `rows` (a label and one value per name) that fit in `width` characters.

    `head` is shown above the label column; each name heads its column (folded when long)."""
    label_max = max([len(label_head)] + [len(r.label) for r in rows])
    two_lines = False
    numbers = [r for r in rows if not r.fold]
    needs = [max([_width(c[i]) for c in (_cells(r, False) for r in numbers)] + [1]) for i in range(len(names))]
    if table_width([min(label_max, LABEL_MIN)] + needs) > width:
        two_lines = True
        needs = [max([_width(c[i]) for c in (_cells(r, True) for r in numbers)] + [1]) for i in range(len(names))]
    label_w = max(LABEL_MIN, min(label_max, width - table_width([0] + needs)))
    groups = _chunks(needs, width - (label_w + 4)) if table_width([label_w] + needs) > width else \
        [list(range(len(names)))]
    tables = []
    for k, group in enumerate(groups):
        part = "" if len(groups) == 1 else f" ({k + 1}/{len(groups)})"
        t = Table(title=f"{title}{part}", title_justify="left")
        widths = {i: needs[i] for i in group}
        spare = width - table_width([min(label_w, 20)] + list(widths.values()))
        for i in group:                  # spare room goes to names (and text rows) wider than the numbers
            wanted = max([len(names[i])] + [_width(r.values[i]) for r in rows if r.fold])
            grow = min(max(0, wanted - widths[i]), max(0, spare))
            widths[i] += grow
            spare -= grow
        room = width - table_width([0] + list(widths.values()))
        t.add_column(f"{head}" if head else label_head, overflow="fold",
                     min_width=min(label_max, max(LABEL_MIN, room)))
        for i in group:
            # a name longer than its numbers folds; the numbers set the width
            t.add_column(names[i], justify="right", overflow="fold", width=widths[i])
        for r in rows:
            cells = _cells(r, two_lines)
            t.add_row(r.label, *(Text(cells[i], no_wrap=not r.fold, overflow="fold", justify="right")
                                 for i in group))
        tables.append(t)
    return tables


def record_tables(title: str, headers: list[str], records: list[list[str]], width: int,
                  *, text_columns: tuple[int, ...] = (), key: int = 0) -> list[Table]:
    """One row per record when they fit side by side (number columns exactly as wide as their longest value,
    `text_columns` folding); otherwise transposed: a column per record (headed by its `key` field) and a row
    per field, split over several tables as `metric_tables` does. Either way no value is cut."""
    needs = [max([len(r[i]) for r in records] + [max(len(w) for w in headers[i].split() or [""])])
             for i in range(len(headers))]
    widths = [min(needs[i], max(8, len(headers[i]))) if i in text_columns else needs[i] for i in range(len(headers))]
    if table_width(widths) <= width:
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            if i in text_columns:
                t.add_column(h, overflow="fold", min_width=widths[i])
            else:
                t.add_column(h, justify="right", overflow="fold", width=needs[i])
        for r in records:
            t.add_row(*(c if i in text_columns else Text(c, no_wrap=True, justify="right") for i, c in enumerate(r)))
        return [t]
    names = [r[key] for r in records]
    rows = [Row(h, [r[i] for r in records], [None] * len(records), fold=i in text_columns)
            for i, h in enumerate(headers) if i != key]
    return metric_tables(title, headers[key], names, rows, width, label_head=headers[key])
