"""Plain JSON values from results: dataclasses, NumPy scalars and arrays, NaN as ``null``."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

__all__ = ["jsonable"]


def jsonable(obj: Any, *, digits: int | None = None) -> Any:
    """``obj`` as dicts, lists, str, int, float, bool and None, ready for ``json.dumps``.

    Dataclasses become dicts of their fields, NumPy values Python ones, paths strings, and
    NaN or infinite floats ``None`` (JSON has no NaN).

    Parameters
    ----------
    obj : object
        The value to convert.
    digits : int, optional
        Round floats to this many significant digits (stable files across platforms).

    Examples
    --------
    >>> jsonable({"a": np.float32(0.5), "b": [np.nan, np.arange(2)], 3: (1 / 3,)}, digits=4)
    {'a': 0.5, 'b': [None, [0, 1]], '3': [0.3333]}
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: jsonable(getattr(obj, f.name), digits=digits) for f in dataclasses.fields(obj)
        }
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, digits=digits) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [jsonable(v, digits=digits) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), digits=digits)
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), digits=digits)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{digits}g}") if digits is not None else obj
    return obj
