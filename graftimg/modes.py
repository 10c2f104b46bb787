"""The two kinds of graft graftimg measures, as one type used by every layer.

``iron``
    Cells labelled with iron oxide: a dark, blooming signal void on T2*w.
``t2``
    Unlabelled cells: tissue brighter than the cord on T2w (with CSF-like cysts split off).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["MODES", "Mode"]

Mode = Literal["iron", "t2"]

#: Every mode, in the order of :data:`Mode`.
MODES: tuple[str, ...] = get_args(Mode)
