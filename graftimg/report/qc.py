"""Quality-control pictures: mask contours over the image, sagittal, coronal and axial.

The slices go through the graft's centroid (the cord's when there is no graft) and are drawn
with the voxels' physical aspect ratio: axial and coronal views radiologically (patient's right
on the left of the picture), sagittal views with anterior on the left, superior up. matplotlib
is imported only when a picture is made, so the core never needs it.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from graftimg.errors import GraftimgError
from graftimg.io.atomic import atomic_path
from graftimg.report.volume_text import graft_volume_text

__all__ = ["qc_figure", "qc_title", "save_qc_png"]

#: Width (characters) at which a long title (a "not measured" reason) is wrapped.
_TITLE_WIDTH = 110

_COLORS = {"cord": "#ffd400", "graft": "#ff3030", "cyst": "#20e0ff", "truth": "#40ff40"}
_COLOR_NAMES = {"cord": "yellow", "graft": "red", "cyst": "cyan", "truth": "green"}


def _centre(masks: dict[str, np.ndarray | None], shape: tuple[int, ...]) -> np.ndarray:
    for name in ("graft", "cyst", "cord"):
        mask = masks.get(name)
        if mask is not None and mask.any():
            return np.round(np.argwhere(mask).mean(axis=0)).astype(int)
    return np.asarray(shape) // 2


def _window(image: np.ndarray, region: np.ndarray | None) -> tuple[float, float]:
    values = image[region] if region is not None and region.any() else image
    low, high = np.percentile(values, [1.0, 99.8])
    return float(low), float(high if high > low else low + 1)


def qc_figure(
    image: np.ndarray,
    *,
    spacing: tuple[float, float, float],
    cord: np.ndarray | None = None,
    graft: np.ndarray | None = None,
    cyst: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    title: str = "",
) -> Any:
    """Build the QC figure for canonical (RAS+) arrays; returns a matplotlib Figure.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical image.
    spacing : tuple of 3 float
        Voxel size in mm (sets the aspect ratio).
    cord, graft, cyst, truth : (X, Y, Z) ndarray of bool, optional
        Masks drawn as contours (yellow, red, cyan, green).
    title : str
        Figure title.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise GraftimgError(
            "QC pictures need matplotlib", hint="pip install 'graftimg[report]'"
        ) from None
    masks = {"cord": cord, "graft": graft, "cyst": cyst, "truth": truth}
    i, j, k = _centre(masks, image.shape)
    sx, sy, sz = spacing
    vmin, vmax = _window(image, None)
    views = [
        (f"sagittal (x = {i}), anterior left", (i, slice(None), slice(None)), sz / sy, True),
        (f"coronal (y = {j})", (slice(None), j, slice(None)), sz / sx, True),
        (f"axial (z = {k})", (slice(None), slice(None), k), sy / sx, True),
    ]
    fig = Figure(figsize=(13, 5), dpi=90)
    axes = fig.subplots(1, 3)
    for ax, (name, index, aspect, flip_lr) in zip(axes, views, strict=True):
        plane = np.asarray(image[index], dtype=float).T
        if flip_lr:  # axial/coronal: patient's right on the left; sagittal: anterior on the left
            plane = plane[:, ::-1]
        ax.imshow(plane, cmap="gray", origin="lower", aspect=aspect, vmin=vmin, vmax=vmax)
        for label, mask in masks.items():
            if mask is None:
                continue
            cut = np.asarray(mask[index], dtype=float).T
            if flip_lr:
                cut = cut[:, ::-1]
            if cut.any() and not cut.all():
                ax.contour(cut, levels=[0.5], colors=_COLORS[label], linewidths=0.9)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    legend = ", ".join(
        f"{label} ({_COLOR_NAMES[label]})" for label, mask in masks.items() if mask is not None
    )
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=10, y=1.04)
    return fig


def qc_title(image_name: str, summary: Mapping[str, Any]) -> str:
    """Title of a session's QC figure: image, mode and the graft volume line.

    The volume is worded by :func:`graftimg.report.volume_text.graft_volume_text`, the same
    line the command line prints; a long line is wrapped.

    Examples
    --------
    >>> print(qc_title("sub-01_T2w.nii.gz", {"mode": "t2", "graft_volume_pv_mm3": None,
    ...                 "graft_volume_null_reason": "no cord"}))
    sub-01_T2w.nii.gz · t2 · graft volume: not measured (no cord)
    """
    line = f"{image_name} · {summary.get('mode')} · {graft_volume_text(summary)}"
    return textwrap.fill(line, width=_TITLE_WIDTH, break_long_words=False)


def save_qc_png(path: str | os.PathLike, image: np.ndarray, **kwargs: Any) -> Path:
    """Write :func:`qc_figure` as a PNG, atomically; returns the path."""
    fig = qc_figure(image, **kwargs)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return Path(path)
