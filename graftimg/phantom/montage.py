"""Montage of a written phantom study: slices through the graft with the truth contours.

It reads the files back from disk (so it also checks the stored orientation and affines):
each image is reoriented to RAS with nibabel, cut through the injection site of its session,
and shown in radiological convention (sagittal: anterior left; axial: patient right on the
left, anterior up) with the truth masks as contours. matplotlib is imported only when called.

Run ``python -m graftimg.phantom.montage STUDY PARTICIPANT OUT.png`` to save one.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from graftimg.errors import ConfigError

__all__ = ["main", "save_montage"]

_CONTOURS = (("cord", "#f2d21b"), ("graft", "#ff3b30"), ("cyst", "#27c8f5"), ("void", "#d13cff"))


def _load_ras(path: Path):
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(str(path)))
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def _extent(affine: np.ndarray, shape: Sequence[int], axes: tuple[int, int]) -> list[float]:
    out = []
    for axis in axes:
        step, origin = affine[axis, axis], affine[axis, 3]
        out += [origin - step / 2, origin + step * (shape[axis] - 0.5)]
    return out


def _panel(ax, study: Path, truth_root: Path, row: dict, view: str, zoom_mm: float | None):
    data, affine = _load_ras(study / row["image"])
    site = np.array([float(row[f"injection_{a}_mm"]) for a in "xyz"])
    index = np.rint(np.linalg.solve(affine[:3, :3], site - affine[:3, 3])).astype(int)
    index = np.clip(index, 0, np.array(data.shape) - 1)
    if view == "sagittal":
        axes, cut = (1, 2), (index[0], slice(None), slice(None))
    else:
        axes, cut = (0, 1), (slice(None), slice(None), index[2])
    extent = _extent(affine, data.shape, axes)
    vmax = float(np.percentile(data, 99.5))
    ax.imshow(data[cut].T, origin="lower", extent=extent, cmap="gray", vmin=0, vmax=vmax)
    for name, colour in _CONTOURS:
        rel = row.get(f"{name}_mask", "n/a")
        if rel in ("", "n/a", None):
            continue
        mask, _ = _load_ras(truth_root / rel)
        plane = mask[cut].T
        if plane.any() and not plane.all():
            ax.contour(
                plane, levels=[0.5], colors=colour, linewidths=0.8, origin="lower", extent=extent
            )
    centre = site[list(axes)]
    if zoom_mm is not None:
        ax.set_xlim(centre[0] - zoom_mm, centre[0] + zoom_mm)
        ax.set_ylim(centre[1] - zoom_mm, centre[1] + zoom_mm)
    # Radiological display: sagittal anterior on the left, axial patient right on the left.
    ax.invert_xaxis()
    left, right, low, high = ("A", "P", "I", "S") if view == "sagittal" else ("R", "L", "P", "A")
    style = dict(transform=ax.transAxes, color="w", fontsize=7, fontweight="bold")
    ax.text(0.02, 0.5, left, va="center", **style)
    ax.text(0.94, 0.5, right, va="center", **style)
    ax.text(0.5, 0.02, low, ha="center", **style)
    ax.text(0.5, 0.92, high, ha="center", **style)
    ax.set_xticks([])
    ax.set_yticks([])


def save_montage(
    study_dir: str | os.PathLike,
    participant_id: str,
    png_path: str | os.PathLike,
    *,
    sessions: Sequence[str] | None = None,
    zoom_mm: float | None = None,
    dpi: int = 110,
) -> Path:
    """Save a PNG: one row per session, sagittal and axial cuts through the graft.

    ``t2`` subjects: T2w sagittal (full and zoomed) and axial. ``iron`` subjects: T2w sagittal,
    T2*w sagittal and T2*w axial. Contours: cord (yellow), graft or iron deposit (red), cyst
    (cyan), blooming void (magenta).

    Parameters
    ----------
    study_dir : path-like
        A study written by :func:`graftimg.phantom.study.write_study`.
    participant_id : str
        For example ``'sub-01'``.
    png_path : path-like
        Output file (written atomically).
    sessions : sequence of str, optional
        Session labels to show (default: all).
    zoom_mm : float, optional
        Half-width of the zoomed panels (default: 25 mm human, 3 mm rodent).
    dpi : int
        Resolution.

    Returns
    -------
    pathlib.Path
    """
    from matplotlib.figure import Figure

    from graftimg.io.atomic import atomic_path

    study = Path(study_dir)
    truth_root = study / "derivatives" / "truth"
    with open(truth_root / "truth.tsv", encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t")]
    rows = [r for r in rows if r["participant_id"] == participant_id]
    if sessions is not None:
        rows = [r for r in rows if r["session_id"] in sessions]
    if not rows:
        raise ConfigError(f"no truth rows for {participant_id}", path=truth_root / "truth.tsv")
    mode, scale = rows[0]["graft_mode"], rows[0]["scale"]
    zoom = zoom_mm if zoom_mm is not None else (25.0 if scale == "human" else 3.0)
    by_session: dict[str, dict[str, dict]] = {}
    for r in rows:
        by_session.setdefault(r["session_id"], {})[r["suffix"]] = r
    if mode == "iron":
        columns = [
            ("T2w", "sagittal", None),
            ("T2starw", "sagittal", zoom),
            ("T2starw", "axial", None),
        ]
    else:
        columns = [("T2w", "sagittal", None), ("T2w", "sagittal", zoom), ("T2w", "axial", None)]
    n_rows = len(by_session)
    fig = Figure(figsize=(3.0 * len(columns), 3.1 * n_rows))
    axes = fig.subplots(n_rows, len(columns), squeeze=False)
    fig.patch.set_facecolor("black")
    for ax_row, (session, images) in zip(axes, sorted(by_session.items()), strict=True):
        for ax, (suffix, view, panel_zoom) in zip(ax_row, columns, strict=True):
            row = images[suffix]
            _panel(ax, study, truth_root, row, view, panel_zoom)
            title = f"{session} day {row['days']} · {suffix} {view}"
            if suffix == "T2starw":
                te_ms = 1000 * float(row["echo_time_s"])
                title += f"\nTE {te_ms:g} ms, void {float(row['void_volume_mm3']):.2f} mm³"
            else:
                title += f"\ngraft {float(row['graft_volume_mm3']):.3g} mm³"
            ax.set_title(title, color="w", fontsize=7.5)
    fig.suptitle(
        f"{participant_id}: {mode} graft, {scale} scale (truth contours: cord yellow, graft red, "
        "cyst cyan, void magenta)",
        color="w",
        fontsize=9,
    )
    fig.tight_layout()
    out = Path(png_path)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, facecolor=fig.get_facecolor())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m graftimg.phantom.montage STUDY PARTICIPANT OUT.png``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print(
            "usage: python -m graftimg.phantom.montage STUDY PARTICIPANT OUT.png", file=sys.stderr
        )
        return 2
    save_montage(args[0], args[1], args[2])
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
