"""The graft volume as one line of text, the same wherever it is shown.

The command line, the study runner's progress lines and the QC figure's title all print the
graft volume through :func:`graft_volume_text`, so the same session never shows two different
numbers or roundings. A volume that could not be measured (``null`` in the session JSON) reads
"not measured (reason)", never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["format_mm3", "graft_volume_text"]


def format_mm3(value: float | None) -> str:
    """A volume in mm³ to three significant digits, without exponent; None → ``"n/a"``.

    Examples
    --------
    >>> [format_mm3(v) for v in (0.0, 0.01234, 1.234, 12.34, 123.4, 12345.6, None)]
    ['0', '0.0123', '1.23', '12.3', '123', '12346', 'n/a']
    """
    if value is None or not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def graft_volume_text(summary: Mapping[str, Any]) -> str:
    """The graft volume of a session summary as one line.

    Parameters
    ----------
    summary : Mapping
        A session summary (``*_graft.json``): ``graft_volume_pv_mm3``, ``graft_volume_low_mm3``,
        ``graft_volume_high_mm3``, ``graft_volume_mm3`` and, when the volume is ``null``,
        ``graft_volume_null_reason``.

    Returns
    -------
    str
        ``"graft volume: 12.3 mm³ partial-volume weighted [10.2, 14.5], binary 12.0 mm³"``, or
        ``"graft volume: not measured (<reason>)"``.

    Examples
    --------
    >>> graft_volume_text({"graft_volume_pv_mm3": 12.34, "graft_volume_low_mm3": 10.21,
    ...                    "graft_volume_high_mm3": 14.5, "graft_volume_mm3": 12.0})
    'graft volume: 12.3 mm³ partial-volume weighted [10.2, 14.5], binary 12.0 mm³'
    >>> graft_volume_text({"graft_volume_pv_mm3": None, "graft_volume_null_reason": "no cord"})
    'graft volume: not measured (no cord)'
    """
    pv = summary.get("graft_volume_pv_mm3")
    if pv is None:
        reason = summary.get("graft_volume_null_reason") or "no reason recorded"
        return f"graft volume: not measured ({reason})"
    low = format_mm3(summary.get("graft_volume_low_mm3"))
    high = format_mm3(summary.get("graft_volume_high_mm3"))
    binary = format_mm3(summary.get("graft_volume_mm3"))
    return (
        f"graft volume: {format_mm3(pv)} mm³ partial-volume weighted [{low}, {high}], "
        f"binary {binary} mm³"
    )
