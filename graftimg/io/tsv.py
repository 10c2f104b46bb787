"""Tab-separated tables the BIDS way: one rule for every cell graftimg writes.

Missing and non-finite values are ``n/a``; floats keep 10 significant digits (``.10g``);
booleans are ``true``/``false``; lists are comma-joined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["tsv_cell", "tsv_text"]


def tsv_cell(value: Any) -> str:
    """One TSV cell.

    Examples
    --------
    >>> [tsv_cell(v) for v in (None, float("nan"), 1 / 3, 2.0, np.int64(7), True, [1.5, 2])]
    ['n/a', 'n/a', '0.3333333333', '2', '7', 'true', '1.5,2']
    >>> tsv_cell([])
    'n/a'
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        return f"{value:.10g}" if math.isfinite(value) else "n/a"
    if isinstance(value, list | tuple):
        return ",".join(tsv_cell(v) for v in value) or "n/a"
    return str(value)


def tsv_text(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """A whole table: the header, then one line per row (a missing key is ``n/a``).

    Examples
    --------
    >>> print(tsv_text(["a", "b"], [{"a": 1, "b": 0.5}, {"a": 2}]), end="")
    a	b
    1	0.5
    2	n/a
    """
    lines = ["\t".join(columns)]
    lines += ["\t".join(tsv_cell(row.get(c)) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"
