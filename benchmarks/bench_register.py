"""Speed and accuracy of registering a session to the baseline (``graftimg register --cord``).

Run from the repository root::

    .venv/bin/python benchmarks/bench_register.py [--json OUT.json] [--pairs 3] [--repeats 3]
        [--cases 20] [--skip-speed] [--skip-real]

Two parts, both with seeds (the same run gives the same cases):

1. **Speed, clinical size.** The phantom generator renders a sagittal T2w of a clinical size
   (52 × 185 × 384 voxels R-L × A-P × S-I, 1 × 0.6 × 0.6 mm, stored PSR as 185 × 384 × 52):
   a baseline at day 14 and ``--pairs`` follow-ups at day 28, each moved by a random rigid
   motion (≤ 5°, ≤ 5 mm about the injection site; the graft shrinks in between, as it does).
   Per pair: :func:`graftimg.register.register_session` with the baseline's cord mask
   (median of ``--repeats`` runs), next to SimpleITK's full-image registration of the same
   pair in the same process (:func:`graftimg.register.rigid.register_rigid` without a mask:
   the same Euler transform, Mattes MI with 32 bins, 3 levels, at most 100 000 samples per
   level, the whole of both images). Wall and CPU seconds, the residual at the injection
   site against the known motion, and ``ratio`` = median full / median box.
2. **Accuracy on real scans.** The Spinal Cord Toolbox T2w and T1w of the test data (and the
   axial T2*w, 7.5 mm slices, reported apart), each moved by ``--cases`` known rigid motions
   (≤ 5°, ≤ 5 mm about a site in the cord: the centroid of the cord's middle slice), resampled
   with a cubic spline, plus Gaussian noise of the σ measured on the scan (high-pass MAD,
   :func:`graftimg.preprocess.noise.highpass_sigma`). Registered with the manual cord mask;
   the residual at the site, and the same with the bare cord as the metric mask
   (``rim_mm=0``) for comparison. Acceptance: ≤ 0.3 mm in ≥ 95 % of the cases.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests/data/sct_testing_data"
SCANS = {
    "t2": ("t2/t2.nii.gz", "t2/t2_seg-manual.nii.gz"),
    "t1": ("t1/t1w.nii.gz", "t1/t1w_seg-manual.nii.gz"),
    "t2s": ("t2s/t2s.nii.gz", "t2s/t2s_seg.nii.gz"),
}
#: Clinical sagittal T2w size, anatomical order (R-L, A-P, S-I).
CLINICAL_SHAPE = (52, 185, 384)
CLINICAL_SPACING_MM = (1.0, 0.6, 0.6)
MAX_ROTATION_DEG = 5.0
MAX_TRANSLATION_MM = 5.0


def _timed(function):
    t0, c0 = time.perf_counter(), time.process_time()
    out = function()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _residual(world_matrix_or_point, truth: np.ndarray, site: np.ndarray) -> float:
    point = np.asarray(world_matrix_or_point, dtype=float)
    if point.shape == (4, 4):
        point = point[:3, :3] @ site + point[:3, 3]
    return float(np.linalg.norm(point - truth))


def speed(pairs: int, repeats: int) -> dict:
    """Part 1: box registration vs SimpleITK full-image on clinical-size phantom pairs."""
    from graftimg.io.volume import Volume
    from graftimg.phantom.motion import random_motion
    from graftimg.phantom.render import render_session
    from graftimg.phantom.spec import default_spec
    from graftimg.register import register_session
    from graftimg.register.rigid import register_rigid

    spec = default_spec("human", "t2").with_acquisition(
        "T2w",
        shape=CLINICAL_SHAPE,
        spacing_mm=CLINICAL_SPACING_MM,
        orientation="PSR",
        supersample=1,
    )

    def volume(session) -> tuple[Volume, np.ndarray]:
        image = session.images["T2w"]
        spacing = tuple(float(v) for v in np.linalg.norm(image.affine[:3, :3], axis=0))
        vol = Volume.from_array(
            image.data.astype(np.float32), affine=image.affine, spacing=spacing
        )
        return vol, image.occupancy["cord"] >= 0.5

    baseline, cord = volume(render_session(spec, days=14.0, seed=0))
    site = np.asarray(spec.injection_world_mm, dtype=float)
    register_session(baseline, baseline, cord_mask=cord, site_mm=site)  # imports, warm caches
    rows = []
    for pair in range(pairs):
        rng = np.random.default_rng(100 + pair)
        motion = random_motion(
            rng, max_rotation_deg=MAX_ROTATION_DEG, max_translation_mm=MAX_TRANSLATION_MM
        )
        follow, _ = volume(render_session(spec, days=28.0, seed=1 + pair, motion=motion))
        truth = motion.apply(site[None], site)[0]
        box = []
        for _ in range(repeats):
            result, wall, cpu = _timed(
                lambda f=follow: register_session(baseline, f, cord_mask=cord, site_mm=site)
            )
            box.append((wall, cpu, _residual(result.site_in_moving_mm, truth, site)))
        full, wall_full, cpu_full = _timed(
            lambda f=follow: register_rigid(
                baseline.data, baseline.affine, f.data, f.affine, center_mm=site
            )
        )
        rows.append(
            {
                "pair": pair,
                "motion_deg": motion.angle_deg,
                "motion_mm": float(np.linalg.norm(motion.translation_mm)),
                "box_wall_s": statistics.median(b[0] for b in box),
                "box_cpu_s": statistics.median(b[1] for b in box),
                "box_residual_mm": box[0][2],
                "full_wall_s": wall_full,
                "full_cpu_s": cpu_full,
                "full_residual_mm": _residual(full.world_matrix, truth, site),
            }
        )
        print(
            f"pair {pair}: box {rows[-1]['box_wall_s']:.2f} s "
            f"({rows[-1]['box_residual_mm']:.3f} mm), full {wall_full:.2f} s "
            f"({rows[-1]['full_residual_mm']:.3f} mm)",
            flush=True,
        )
    box_s = statistics.median(r["box_wall_s"] for r in rows)
    full_s = statistics.median(r["full_wall_s"] for r in rows)
    return {
        "shape_stored": [int(n) for n in baseline.shape],
        "spacing_mm": list(CLINICAL_SPACING_MM),
        "pairs": rows,
        "box_median_s": box_s,
        "full_median_s": full_s,
        "ratio": full_s / box_s,
        "box_cpu_median_s": statistics.median(r["box_cpu_s"] for r in rows),
        "full_cpu_median_s": statistics.median(r["full_cpu_s"] for r in rows),
    }


def moved_scan(volume, site: np.ndarray, seed: int):
    """The scan moved by a known rigid motion about ``site``, plus noise of its own σ."""
    from graftimg.phantom.motion import random_motion
    from graftimg.preprocess.noise import highpass_sigma
    from graftimg.register.resample import resample_to_grid

    rng = np.random.default_rng(seed)
    motion = random_motion(
        rng, max_rotation_deg=MAX_ROTATION_DEG, max_translation_mm=MAX_TRANSLATION_MM
    ).matrix(site)
    data = np.asarray(volume.data, dtype=np.float32)
    moved = resample_to_grid(
        data,
        volume.affine,
        volume.affine,
        volume.shape,
        world_transform=np.linalg.inv(motion),
        order=3,
    )
    moved += rng.normal(0.0, highpass_sigma(data)[0], moved.shape).astype(np.float32)
    return volume.with_data(moved), motion


def real(cases: int) -> dict:
    """Part 2: residual at the site on real scans moved by known motions."""
    from graftimg.io.volume import load_volume
    from graftimg.register import register_session

    out = {}
    for name, (image, seg) in SCANS.items():
        volume = load_volume(DATA / image)
        cord = np.asarray(load_volume(DATA / seg).data) > 0.5
        index = np.argwhere(cord)
        middle = int(np.median(index[:, 2]))
        site = np.asarray(volume.voxel_to_world(index[index[:, 2] == middle].mean(axis=0)))
        rows = []
        for seed in range(cases):
            moving, motion = moved_scan(volume, site, seed)
            truth = motion[:3, :3] @ site + motion[:3, 3]
            result, wall, _ = _timed(
                lambda f=volume, m=moving, c=cord, s=site: register_session(
                    f, m, cord_mask=c, site_mm=s
                )
            )
            bare = register_session(volume, moving, cord_mask=cord, site_mm=site, rim_mm=0.0)
            rows.append(
                {
                    "seed": seed,
                    "residual_mm": _residual(result.site_in_moving_mm, truth, site),
                    "bare_cord_residual_mm": _residual(bare.site_in_moving_mm, truth, site),
                    "wall_s": wall,
                    "flags": list(result.flags),
                }
            )
        residuals = np.array([r["residual_mm"] for r in rows])
        bare_residuals = np.array([r["bare_cord_residual_mm"] for r in rows])
        out[name] = {
            "image": image,
            "voxel_mm": [float(s) for s in volume.spacing],
            "cases": rows,
            "within_0p3_mm": int(np.sum(residuals <= 0.3)),
            "n": len(rows),
            "median_mm": float(np.median(residuals)),
            "p95_mm": float(np.percentile(residuals, 95)),
            "max_mm": float(residuals.max()),
            "bare_cord_within_0p3_mm": int(np.sum(bare_residuals <= 0.3)),
            "bare_cord_median_mm": float(np.median(bare_residuals)),
            "bare_cord_max_mm": float(bare_residuals.max()),
            "median_wall_s": float(np.median([r["wall_s"] for r in rows])),
            "flagged": sum(bool(r["flags"]) for r in rows),
        }
        s = out[name]
        print(
            f"{name}: {s['within_0p3_mm']}/{s['n']} within 0.3 mm, median {s['median_mm']:.3f}, "
            f"max {s['max_mm']:.3f} mm ({s['median_wall_s']:.2f} s); bare cord "
            f"{s['bare_cord_within_0p3_mm']}/{s['n']}, median {s['bare_cord_median_mm']:.3f}, "
            f"max {s['bare_cord_max_mm']:.3f} mm",
            flush=True,
        )
    return out


def figure(path: Path) -> None:
    """The metric mask on the real T2w: sagittal and axial slices through the site."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from graftimg.io.volume import load_volume
    from graftimg.register.session import site_metric_mask

    image, seg = SCANS["t2"]
    volume = load_volume(DATA / image)
    cord = np.asarray(load_volume(DATA / seg).data) > 0.5
    index = np.argwhere(cord)
    middle = int(np.median(index[:, 2]))
    centre = index[index[:, 2] == middle].mean(axis=0)
    site = np.asarray(volume.voxel_to_world(centre))
    region = site_metric_mask(cord, volume.affine, site)
    mask = region.mask
    i, _, k = (round(float(c)) for c in centre)
    sx, sy, sz = volume.spacing
    data = np.asarray(volume.data, dtype=float)
    low, high = np.percentile(data, [1.0, 99.5])
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 4.2), dpi=150)
    views = [  # canonical RAS+: sagittal = (A, S) at x = i, axial = (R→L shown, A) at z = k
        ("sagittal", (i, slice(None), slice(None)), (sy, sz), ("A", "P", "S", "I"), centre[1:]),
        ("axial", (slice(None), slice(None), k), (sx, sy), ("R", "L", "A", "P"), centre[:2]),
    ]
    for ax, (name, cut, (sh, sv), letters, mark) in zip(axes, views, strict=True):
        plane = data[cut]
        nh, nv = plane.shape
        extent = (-0.5 * sh, (nh - 0.5) * sh, -0.5 * sv, (nv - 0.5) * sv)
        ax.imshow(plane.T, cmap="gray", origin="lower", extent=extent, vmin=low, vmax=high)
        hx, vx = np.arange(nh) * sh, np.arange(nv) * sv
        ax.contour(hx, vx, cord[cut].T.astype(float), [0.5], colors="#0072B2", linewidths=1.2)
        ax.contour(hx, vx, mask[cut].T.astype(float), [0.5], colors="#E69F00", linewidths=1.2)
        ax.plot(mark[0] * sh, mark[1] * sv, "+", color="#F0E442", ms=10, mew=2)
        ax.set_xlim(extent[1], extent[0])  # anterior / patient's right on the left
        ax.set_ylim(extent[2], extent[3])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{name} through the site", fontsize=8)
        style = {"color": "white", "fontsize": 9, "fontweight": "bold", "transform": ax.transAxes}
        for (x, y, ha, va), letter in zip(
            [
                (0.02, 0.5, "left", "center"),
                (0.98, 0.5, "right", "center"),
                (0.5, 0.98, "center", "top"),
                (0.5, 0.02, "center", "bottom"),
            ],
            letters,
            strict=True,
        ):
            ax.text(x, y, letter, ha=ha, va=va, **style)
        x0 = extent[0] + 0.12 * (extent[1] - extent[0])
        y0 = extent[2] + 0.08 * (extent[3] - extent[2])
        ax.plot([x0, x0 + 10.0], [y0, y0], color="white", lw=3)
        ax.text(x0 + 5.0, y0 + 1.0, "10 mm", color="white", ha="center", va="bottom", fontsize=7)
    fig.suptitle(
        "Spinal Cord Toolbox T2w: cord (blue), site (+),\n"
        f"metric mask = cord grown by {region.rim_mm:g} mm (CSF and canal wall) within "
        f"±{region.half_length_mm:g} mm of the site (orange)",
        fontsize=8,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--pairs", type=int, default=3, help="phantom pairs (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="box runs per pair (default 3)")
    parser.add_argument("--cases", type=int, default=20, help="moved copies per scan")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--figure", type=Path, help="draw the metric mask on the real T2w here")
    args = parser.parse_args(argv)
    if args.figure:
        figure(args.figure)
    report: dict = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_start": list(os.getloadavg()),
        }
    }
    if not args.skip_speed:
        report["speed"] = speed(args.pairs, args.repeats)
        s = report["speed"]
        print(
            f"clinical size {s['shape_stored']}: box median {s['box_median_s']:.2f} s, "
            f"SimpleITK full image {s['full_median_s']:.2f} s, ratio {s['ratio']:.1f}×"
        )
    if not args.skip_real:
        report["real"] = real(args.cases)
    report["machine"]["load_average_end"] = list(os.getloadavg())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
