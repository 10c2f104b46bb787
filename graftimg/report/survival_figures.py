"""Figures of the survival reports: volume and survival fraction over time, QC overlays, cohort.

Built with matplotlib's object API (``Figure`` and the Agg canvas, never pyplot), so making a
report changes no global state. Colours are the Okabe–Ito palette, which stays distinct for the
common colour-vision deficiencies (Okabe & Ito, *Color Universal Design*, 2008; Wong, *Nat
Methods* 2011;8:441). Image panels are drawn in millimetres with the voxels' physical aspect,
orientation letters on their edges and a scale bar: sagittal with anterior on the left and
superior up, axial radiologically (patient's right on the left, anterior up).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from graftimg.errors import GraftimgError
from graftimg.longitudinal.survival import SubjectSurvival

__all__ = [
    "DPI",
    "OKABE_ITO",
    "cohort_figure",
    "figure_png",
    "figure_png_base64",
    "qc_overlay_figure",
    "survival_figure",
    "volume_figure",
]

#: Resolution of every report figure.
DPI = 150
#: Okabe–Ito colours by name.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
_MEASURED = OKABE_ITO["blue"]
_FIT = OKABE_ITO["vermillion"]
_MASK_COLOURS = {
    "cord": OKABE_ITO["sky_blue"],
    "graft": OKABE_ITO["orange"],
    "cyst": OKABE_ITO["reddish_purple"],
}
_SUBJECT_COLOURS = [OKABE_ITO[k] for k in ("blue", "vermillion", "bluish_green", "orange")] + [
    OKABE_ITO[k] for k in ("reddish_purple", "sky_blue", "black", "yellow")
]


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise GraftimgError(
            "reports need matplotlib", hint="pip install 'graftimg[report]'"
        ) from None
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Any) -> bytes:
    """PNG bytes of a figure at :data:`DPI`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def figure_png_base64(fig: Any) -> str:
    """A figure as a base64 PNG, ready for ``<img src="data:image/png;base64,...">``."""
    return base64.b64encode(figure_png(fig)).decode("ascii")


def _half_life_label(analysis: SubjectSurvival) -> str:
    fit = analysis.fit
    if fit.model is None:
        return f"no fit: {fit.reason}"
    name = "exponential with plateau" if fit.model == "exponential_plateau" else "log-linear"
    if fit.half_life_days is None:
        return f"{name} fit: no half-life"
    ci = fit.half_life_ci95_days
    high = "∞" if ci is None or ci[1] is None else f"{ci[1]:.3g}"
    low = "?" if ci is None else f"{ci[0]:.3g}"
    return f"{name} fit: t½ = {fit.half_life_days:.3g} d (95 % CI {low}–{high})"


def _time_axes(ax: Any, analysis: SubjectSurvival) -> None:
    window = analysis.acute_window_days
    ax.axvspan(0, window, color="0.88", zorder=0, label=f"acute window (< {window:g} d)")
    if analysis.reference is not None and analysis.reference.days is not None:
        ax.axvline(analysis.reference.days, color="0.4", lw=0.8, ls=":", zorder=1)
    ax.set_xlabel("days since injection")
    ax.grid(True, color="0.92", lw=0.6)


def _plot_points(ax: Any, analysis: SubjectSurvival, *, fraction: bool) -> None:
    ref = analysis.reference.volume_mm3 if analysis.reference is not None else None
    divisor = ref if fraction and ref else 1.0
    for used in (True, False):
        rows = [
            s
            for s in analysis.sessions
            if s.used_in_fit == used
            and s.point.volume_mm3 is not None
            and s.point.days is not None
        ]
        if not rows:
            continue
        x = np.array([s.point.days for s in rows])
        y = np.array([s.point.volume_mm3 for s in rows]) / divisor
        low = (
            np.array(
                [
                    s.point.low_mm3 if s.point.low_mm3 is not None else s.point.volume_mm3
                    for s in rows
                ]
            )
            / divisor
        )
        high = (
            np.array(
                [
                    s.point.high_mm3 if s.point.high_mm3 is not None else s.point.volume_mm3
                    for s in rows
                ]
            )
            / divisor
        )
        ax.errorbar(
            x,
            y,
            yerr=[np.clip(y - low, 0, None), np.clip(high - y, 0, None)],
            fmt="o",
            color=_MEASURED,
            mfc=_MEASURED if used else "white",
            ms=6,
            capsize=3,
            lw=1.2,
            label="measured, band (used in fit)" if used else "measured, band (not in fit)",
            zorder=3,
        )
    missing = [
        s for s in analysis.sessions if s.point.volume_mm3 is None and s.point.days is not None
    ]
    if missing:
        ax.plot(
            [s.point.days for s in missing],
            [0.0] * len(missing),
            "x",
            color=OKABE_ITO["reddish_purple"],
            ms=8,
            mew=2,
            label="not measured",
            zorder=3,
        )


def _plot_fit(ax: Any, analysis: SubjectSurvival, *, fraction: bool) -> None:
    fit, ref = analysis.fit, analysis.reference
    if fit.model is None or ref is None or ref.days is None:
        return
    days = [s.point.days for s in analysis.sessions if s.used_in_fit and s.point.days is not None]
    t = np.linspace(0.0, max(days) - ref.days, 200)
    curve = fit.curve(t)
    if curve is None:
        return
    divisor = ref.volume_mm3 if fraction and ref.volume_mm3 else 1.0
    ax.plot(t + ref.days, curve / divisor, color=_FIT, lw=2, label=_half_life_label(analysis))
    if fit.v_inf_mm3 is not None and fit.model == "exponential_plateau":
        ax.axhline(
            fit.v_inf_mm3 / divisor,
            color=_FIT,
            lw=1,
            ls="--",
            label=f"plateau ({fit.plateau_fraction:.2f} of fitted V0)",
        )


def volume_figure(analysis: SubjectSurvival) -> Any:
    """Graft volume over time: each session's volume and band, the fit, the acute window."""
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    _time_axes(ax, analysis)
    _plot_points(ax, analysis, fraction=False)
    _plot_fit(ax, analysis, fraction=False)
    if analysis.fit.model is None:
        ax.plot([], [], " ", label=_half_life_label(analysis))
    ax.set_ylabel("graft volume (mm³)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"sub-{analysis.timeline.subject} · {analysis.timeline.mode} · graft volume")
    ax.legend(fontsize=7, loc="best", framealpha=0.9)
    return fig


def survival_figure(analysis: SubjectSurvival) -> Any:
    """Survival fraction V(t)/V(t_ref) with the band divided the same way, and the fit."""
    fig = _figure(7.0, 3.6)
    ax = fig.add_subplot()
    _time_axes(ax, analysis)
    ref = analysis.reference
    if ref is None or not ref.volume_mm3:
        ax.text(
            0.5,
            0.5,
            "no reference session after the acute window",
            ha="center",
            transform=ax.transAxes,
        )
    else:
        ax.axhline(1.0, color="0.5", lw=0.8)
        _plot_points(ax, analysis, fraction=True)
        _plot_fit(ax, analysis, fraction=True)
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    ax.set_ylabel(f"survival fraction (V / V at ses-{ref.session if ref else '?'})")
    ax.set_ylim(bottom=0)
    ax.set_title(f"sub-{analysis.timeline.subject} · survival fraction")
    return fig


def _nice_length(field_mm: float) -> float:
    target = field_mm / 4.0
    for value in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0):
        if value >= target * 0.7:
            return value
    return 100.0


def _scale_bar(ax: Any, length_mm: float) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    sign = 1.0 if x1 > x0 else -1.0
    start = x1 - sign * 0.06 * abs(x1 - x0) - sign * length_mm
    y = y0 + 0.07 * (y1 - y0)
    xs = [start, start + sign * length_mm]
    ax.plot(xs, [y, y], color="black", lw=5, solid_capstyle="butt")
    ax.plot(xs, [y, y], color="white", lw=3, solid_capstyle="butt")
    ax.text(
        start + sign * length_mm / 2,
        y + 0.04 * (y1 - y0),
        f"{length_mm:g} mm",
        color="white",
        ha="center",
        va="bottom",
        fontsize=7,
        fontweight="bold",
        bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.0, "edgecolor": "none"},
    )


def _letters(ax: Any, left: str, right: str, top: str, bottom: str) -> None:
    style = {
        "color": "white",
        "fontsize": 9,
        "fontweight": "bold",
        "transform": ax.transAxes,
        "bbox": {"facecolor": "black", "alpha": 0.5, "pad": 1.0, "edgecolor": "none"},
    }
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def qc_overlay_figure(
    image: np.ndarray,
    *,
    spacing: tuple[float, float, float],
    centre_voxel: Sequence[float],
    masks: dict[str, np.ndarray | None],
    field_mm: float,
    title: str = "",
) -> Any:
    """Sagittal and axial slices through ``centre_voxel`` with mask contours.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical (RAS+) image.
    spacing : tuple of 3 float
        Voxel size in mm.
    centre_voxel : sequence of 3 float
        Where the slices cross (the graft's centroid).
    masks : dict of name → (X, Y, Z) bool ndarray or None
        ``cord``, ``graft``, ``cyst``: drawn as contours.
    field_mm : float
        Half-width of the field shown around the centre, in mm.
    title : str
    """
    fig = _figure(7.0, 3.5)
    axes = fig.subplots(1, 2)
    i, j, k = (round(float(c)) for c in centre_voxel)
    i, j, k = (min(max(v, 0), n - 1) for v, n in zip((i, j, k), image.shape))
    sx, sy, sz = (float(s) for s in spacing)
    cx, cy, cz = i * sx, j * sy, k * sz
    low, high = np.percentile(image, [1.0, 99.5])
    views = [
        # name, 2-D cut, horizontal (coords, centre, reversed), vertical coords, letters
        ("sagittal", (i, slice(None), slice(None)), sy, cy, sz, cz, ("A", "P", "S", "I")),
        ("axial", (slice(None), slice(None), k), sx, cx, sy, cy, ("R", "L", "A", "P")),
    ]
    for ax, (name, cut, sh, ch, sv, cv, letters) in zip(axes, views):
        plane = np.asarray(image[cut], dtype=float)  # (horizontal, vertical)
        nh, nv = plane.shape
        extent = (-0.5 * sh, (nh - 0.5) * sh, -0.5 * sv, (nv - 0.5) * sv)
        ax.imshow(
            plane.T,
            cmap="gray",
            origin="lower",
            extent=extent,
            vmin=low,
            vmax=high if high > low else low + 1,
            interpolation="nearest",
        )
        hx, vx = np.arange(nh) * sh, np.arange(nv) * sv
        for label, mask in masks.items():
            if mask is None:
                continue
            m = np.asarray(mask[cut], dtype=float)
            if m.any() and not m.all():
                ax.contour(hx, vx, m.T, levels=[0.5], colors=_MASK_COLOURS[label], linewidths=1.2)
        # Anterior on the left (sagittal); patient's right on the left (axial).
        ax.set_xlim(ch + field_mm, ch - field_mm)
        ax.set_ylim(cv - field_mm, cv + field_mm)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        where = f"x = {i}" if name == "sagittal" else f"z = {k}"
        ax.set_title(f"{name} ({where})", fontsize=8)
        _letters(ax, *letters)
        _scale_bar(ax, _nice_length(2 * field_mm))
    legend = ", ".join(
        f"{name} ({colour})"
        for name, colour in (("cord", "blue"), ("graft", "orange"), ("cyst", "purple"))
        if masks.get(name) is not None
    )
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=8)
    return fig


def cohort_figure(analyses: Sequence[SubjectSurvival]) -> Any:
    """Survival fraction of every subject over time, one colour and marker per subject."""
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    markers = "os^Dv<>p"
    for n, analysis in enumerate(analyses):
        ref = analysis.reference
        if ref is None or not ref.volume_mm3:
            continue
        colour = _SUBJECT_COLOURS[n % len(_SUBJECT_COLOURS)]
        rows = [s for s in analysis.sessions if s.survival_fraction is not None]
        x = [s.point.days for s in rows]
        y = [s.survival_fraction for s in rows]
        label = f"sub-{analysis.timeline.subject} ({analysis.timeline.mode})"
        ax.plot(x, y, marker=markers[n % len(markers)], color=colour, lw=0.8, ls=":", label=label)
        curve_t = [s.t_days for s in analysis.sessions if s.used_in_fit and s.t_days is not None]
        if curve_t and analysis.fit.model is not None and ref.days is not None:
            t = np.linspace(0.0, max(curve_t), 200)
            curve = analysis.fit.curve(t)
            if curve is not None:
                ax.plot(t + ref.days, curve / ref.volume_mm3, color=colour, lw=1.8)
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_xlabel("days since injection")
    ax.set_ylabel("survival fraction (V / V at t_ref)")
    ax.set_ylim(bottom=0)
    ax.grid(True, color="0.92", lw=0.6)
    ax.set_title("cohort: survival fraction per subject (points: sessions; lines: fits)")
    if analyses:
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    return fig
