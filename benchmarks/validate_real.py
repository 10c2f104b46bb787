"""Real-anatomy validation: grafts of known volume inserted into real scans, through the pipeline.

Run from the repository root::

    .venv/bin/python benchmarks/validate_real.py [--seeds 20] [--workers 2] [--sweep fov ...]
        [--mode t2 iron none] [--cord auto|manual|both] [--holdout]
        [--json benchmarks/results/validate_real.json] [--figures DIR] [--qc DIR --qc-cases N]

Hosts are the Spinal Cord Toolbox test scans in ``tests/data/sct_testing_data`` (MIT): T2w
(1 mm, 55 mm along the cord) for ``t2`` and ``iron``, T2*w (axial 0.5 × 0.5 × 7.5 mm) for
``iron``; T1w (1 mm, 77 mm) is the *holdout* ``iron`` host, run only with ``--holdout``, which
also moves the seeds to 1000 + i. Tuning uses seeds 0..N-1 on the other hosts only.

Each case (:class:`Case`) is made by :func:`graftimg.validation.insert.synthesize` (resampling
with a random rigid motion, insert, crop along S-I, Rician noise to the SNR), written as NIfTI
(int16, BIDS suffix of the host's contrast, a sidecar), loaded with
:func:`graftimg.io.load_volume` and run through
:func:`graftimg.pipeline.session.segment_volume` as a user would: the injection site is the
insert's centre in scanner mm; the cord automatic, or the resampled manual mask given as
``cord_mask`` (``--cord manual``). Any exception of the pipeline is a failed case, with its
message.

Conditions are swept one factor at a time around a default (:data:`SWEEPS`), ``--seeds`` seeds
per value; a case shared by two sweeps runs once. Metrics (:func:`run_case`):

- ``t2``: (graft + cyst) volume vs truth (the inserted partial-volume volume). The truth is a
  sum of partial-volume fractions, so the error (``error_pct``) is that of the
  partial-volume-weighted measurement, ``graft_volume_pv_mm3`` + cyst; the binary volume
  (``graft_volume_mm3`` + cyst: voxels at least half graft) is reported beside it
  (``error_binary_pct``) and runs low on small grafts, whose half-filled shell is a large part
  of them. The graft class's share of the inserted graft (``graft_share_pct``: its
  partial-volume volume over the inserted graft volume; ``graft_overlap_pct``: the inserted
  graft inside the binary mask); Dice against truth ≥ 0.5; a volume of ``None`` is "not
  measured" (with ``graft_volume_null_reason``), counted apart, never as 0;
- ``iron``: void volume vs the noise-free signal-loss volume (partial-volume-weighted; binary
  beside it);
- nothing inserted: graft voxels per 10 mm of manual cord within the injection window;
- always: cord Dice against the resampled manual mask, flags, errors.

Acceptance (issue 8), each printed PASS/FAIL; exit code 1 if any fails:

- ``t2``, grafts ≥ 40 voxels: median |error| ≤ 10 % and max ≤ 25 % at every FOV (≥ 16 mm), every
  voxel size and every contrast fraction ≥ 0.35; median share of a fraction-0.5 graft in the
  graft class ≥ 80 %; no graft ≥ 40 voxels reported as 0;
- ``iron``: median void error within ±15 % of the signal-loss truth at every FOV (per host);
- nothing inserted: max < 1 false graft voxel per 10 mm of cord (per host and mode).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "sct_testing_data"

#: host key: (image, manual mask, BIDS suffix, default grid)
HOSTS = {
    "T2w": ("t2/t2.nii.gz", "t2/t2_seg-manual.nii.gz", "T2w", "iso1"),
    "T2starw": ("t2s/t2s.nii.gz", "t2s/t2s_seg.nii.gz", "T2starw", "axial"),
    "T1w": ("t1/t1w.nii.gz", "t1/t1w_seg-manual.nii.gz", "T1w", "iso1"),
}
MODE_HOSTS = {"t2": ("T2w",), "iron": ("T2w", "T2starw")}
HOLDOUT_HOSTS = {"t2": (), "iron": ("T1w",)}
GRIDS = {"iso1": (1.0, 1.0, 1.0), "iso08": (0.8, 0.8, 0.8), "axial": (0.5, 0.5, 3.0)}
FOVS: tuple[float | None, ...] = (16.0, 24.0, 32.0, 48.0, 64.0, None)
SNRS = (10.0, 20.0, 40.0)
FRACTIONS = (0.25, 0.35, 0.5, 0.65, 0.75)
SIZES = (20.0, 40.0, 80.0, 160.0, 300.0)
#: Small sizes (voxels) × every grid, for the smallest volume found reliably (T2w host).
DETECT_SIZES = (8.0, 12.0, 20.0, 30.0, 40.0)
#: Share of inserts found (a volume > 0) that counts as reliably detected.
DETECT_RATE_PCT = 90.0
POSITIONS = ("centre", "offcentre", "edge")
#: Sizes drawn per seed (log-uniform, voxels of the target grid) where size is not swept.
SIZE_RANGE = (20.0, 300.0)
#: Factors swept per mode (the others at their default).
SWEEPS = {
    "t2": ("fov", "grid", "snr", "fraction", "size", "position", "cyst", "detect"),
    "iron": ("fov", "grid", "snr", "position", "detect"),
    "none": ("fov",),
}
#: False-positive FOVs (nothing inserted).
NONE_FOVS: tuple[float | None, ...] = (16.0, 32.0, None)

ACCEPT = {
    "t2_min_voxels": 40.0,
    "t2_median_abs_error_pct": 10.0,
    "t2_max_abs_error_pct": 25.0,
    "t2_min_fraction": 0.35,
    "t2_graft_share_pct": 80.0,
    "iron_error_pct": 15.0,
    "fp_voxels_per_10mm": 1.0,
}
#: Cord flags that say the automatic cord may not hold the lesion.
_CORD_WARNINGS = {"cord_uncertain", "cord_bends_around_abnormality"}
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")


@dataclasses.dataclass(frozen=True)
class Case:
    """One run: what is inserted into which host, on which grid, and how it is segmented.

    ``insert`` False: nothing inserted (``mode`` is the pipeline mode). ``size`` None: drawn
    per seed in :data:`SIZE_RANGE`.
    """

    mode: str
    host: str
    seed: int
    insert: bool = True
    grid: str = "iso1"
    fov: float | None = None
    snr: float = 20.0
    fraction: float = 0.5
    size: float | None = None
    position: str = "centre"
    cyst: bool = False
    cord: str = "auto"

    @property
    def id(self) -> str:
        """Short unique name (file names, ``--case``)."""
        fov = "full" if self.fov is None else f"{self.fov:g}"
        size = "rand" if self.size is None else f"{self.size:g}"
        kind = self.mode if self.insert else f"{self.mode}-none"
        return (
            f"{kind}_{self.host}_{self.grid}_fov{fov}_snr{self.snr:g}_f{self.fraction:g}"
            f"_n{size}_{self.position}{'_cyst' if self.cyst else ''}_{self.cord}_s{self.seed}"
        )

    def n_voxels(self) -> float:
        """Requested insert size in voxels (drawn from the seed when not swept)."""
        if self.size is not None:
            return float(self.size)
        rng = np.random.default_rng([self.seed, 31])
        lo, hi = SIZE_RANGE
        return float(np.exp(rng.uniform(math.log(lo), math.log(hi))))


def host_length_mm(host: str) -> float:
    """Length of the host's manual cord along S-I, in mm (which FOVs a host can give)."""
    from graftimg.io import load_volume

    _, mask_rel, _, _ = HOSTS[host]
    mask = load_volume(DATA / mask_rel)
    z = np.flatnonzero((mask.data > 0.5).any(axis=(0, 1)))
    return float((z.max() - z.min() + 1) * mask.spacing[2])


def _fov_fits(host: str, fov: float | None, lengths: dict[str, float]) -> bool:
    # Resampling with motion loses up to ~2 mm at the ends; keep 3 mm of slack.
    return fov is None or fov <= lengths[host] - 3.0


def campaign_cases(
    n_seeds: int,
    *,
    modes: Sequence[str] = ("t2", "iron", "none"),
    sweeps: Sequence[str] | None = None,
    cord: str = "auto",
    holdout: bool = False,
    notes: list[str] | None = None,
) -> list[Case]:
    """Every case of the campaign, one factor at a time around each host's default."""
    notes = [] if notes is None else notes
    seeds = [1000 + i if holdout else i for i in range(n_seeds)]
    hosts_for = HOLDOUT_HOSTS if holdout else MODE_HOSTS
    lengths = {h: host_length_mm(h) for h in HOSTS}
    routes = ("auto", "manual") if cord == "both" else (cord,)
    cases: list[Case] = []

    def add(case: Case) -> None:
        if not _fov_fits(case.host, case.fov, lengths):
            note = (
                f"FOV {case.fov:g} mm skipped on host {case.host}: its manual cord is "
                f"{lengths[case.host]:.0f} mm long"
            )
            if note not in notes:
                notes.append(note)
            return
        for route in routes:
            cases.append(dataclasses.replace(case, cord=route))

    values = {
        "fov": ("fov", FOVS),
        "grid": ("grid", tuple(GRIDS)),
        "snr": ("snr", SNRS),
        "fraction": ("fraction", FRACTIONS),
        "size": ("size", SIZES),
        "position": ("position", POSITIONS),
        "cyst": ("cyst", (False, True)),
    }
    for mode in modes:
        insert = mode != "none"
        pipeline_modes = ("t2", "iron") if mode == "none" else (mode,)
        for pmode in pipeline_modes:
            for host in hosts_for[pmode]:
                default = Case(pmode, host, 0, insert=insert, grid=HOSTS[host][3])
                for sweep in SWEEPS[mode]:
                    if sweeps is not None and sweep not in sweeps:
                        continue
                    if sweep == "detect":
                        if host != "T2w":
                            continue
                        for grid in GRIDS:
                            for size in DETECT_SIZES:
                                for seed in seeds:
                                    add(
                                        dataclasses.replace(
                                            default, seed=seed, grid=grid, size=size
                                        )
                                    )
                        continue
                    field, options = values[sweep]
                    if mode == "none" and sweep == "fov":
                        options = NONE_FOVS
                    for value in options:
                        for seed in seeds:
                            add(dataclasses.replace(default, seed=seed, **{field: value}))
    unique: dict[Case, None] = dict.fromkeys(cases)
    return list(unique)


# -- one case ----------------------------------------------------------------------------------

_HOST_CACHE: dict[str, Any] = {}


def _host(key: str):
    from graftimg.validation.insert import load_host

    if key not in _HOST_CACHE:
        image_rel, mask_rel, _, _ = HOSTS[key]
        _HOST_CACHE[key] = load_host(DATA / image_rel, DATA / mask_rel, name=key)
    return _HOST_CACHE[key]


def synthesize_case(case: Case):
    """The case's image and truth (:func:`graftimg.validation.insert.synthesize`)."""
    from graftimg.validation.insert import InsertSpec, synthesize

    spec = InsertSpec(
        mode=case.mode if case.insert else "none",
        spacing_mm=GRIDS[case.grid],
        fov_mm=case.fov,
        snr=case.snr,
        n_voxels=case.n_voxels(),
        position=case.position,
        fraction=case.fraction,
        cyst=case.cyst,
        seed=case.seed,
    )
    return synthesize(_host(case.host), spec)


def write_case(folder: Path, case: Case, synth) -> tuple[Path, Path]:
    """The image (int16, as a scanner stores it) with its sidecar, and the manual cord mask."""
    from graftimg.io.nifti import nifti_gz_bytes

    suffix = HOSTS[case.host][2]
    axial = case.grid == "axial"
    path = folder / f"sub-{case.host.lower()}_{suffix}.nii.gz"
    data = np.rint(np.clip(synth.data, 0, 32767))
    path.write_bytes(
        nifti_gz_bytes(data, synth.affine, dtype=np.int16, slice_axis=2 if axial else None)
    )
    sidecar = {
        "MagneticFieldStrength": 3.0,
        "EchoTime": 0.015 if case.mode == "iron" else 0.1,
        "MRAcquisitionType": "2D" if axial else "3D",
    }
    (folder / path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))
    mask = folder / f"sub-{case.host.lower()}_label-cord_mask.nii.gz"
    mask.write_bytes(
        nifti_gz_bytes(synth.cord_manual.astype(np.uint8), synth.affine, dtype=np.uint8)
    )
    return path, mask


def _dice(a: np.ndarray, b: np.ndarray) -> float | None:
    from graftimg.measure.overlap import dice

    value = dice(a, b)
    return None if np.isnan(value) else value


def _window_half_length_mm(volume) -> float:
    try:
        from graftimg.pipeline.config import PipelineConfig

        config = PipelineConfig()
        return float(
            config.graft_params(config.resolve_scale(volume.spacing)).window_half_length_mm
        )
    except Exception:  # the configuration API may change; the human window
        return 30.0


def _pct(measured: float | None, truth: float) -> float | None:
    if measured is None or truth <= 0:
        return None
    return 100.0 * (float(measured) / truth - 1.0)


def run_case(case: Case, arrays: dict[str, Any] | None = None) -> dict[str, Any]:
    """Synthesize, write, load, segment and compare one case; return a JSON-ready row."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"id": case.id, **dataclasses.asdict(case)}
    try:
        synth = synthesize_case(case)
    except Exception as err:  # a case the host cannot give: reported, never silently dropped
        row.update(synth_error=f"{type(err).__name__}: {err}", seconds=time.perf_counter() - t0)
        return row
    voxel = synth.voxel_volume_mm3
    row["synth"] = synth.info
    row["voxel_mm3"] = voxel
    if case.insert and case.mode == "t2":
        graft_pv = synth.truth_volume_mm3("graft")
        cyst_pv = synth.truth_volume_mm3("cyst")
        row.update(truth_graft_mm3=graft_pv, truth_cyst_mm3=cyst_pv, truth_mm3=graft_pv + cyst_pv)
    elif case.insert:
        row["truth_mm3"] = synth.truth_volume_mm3("loss")
    else:
        row["truth_mm3"] = 0.0
    row["truth_n_voxels"] = row["truth_mm3"] / voxel
    with tempfile.TemporaryDirectory() as tmp:
        path, mask_path = write_case(Path(tmp), case, synth)
        try:
            from graftimg.io import load_volume
            from graftimg.pipeline.session import segment_volume

            volume = load_volume(path)
            if volume.shape != synth.data.shape or not np.allclose(volume.affine, synth.affine):
                raise RuntimeError("the written image does not load on the synthesis grid")
            result = segment_volume(
                volume,
                mode=case.mode,
                injection_world=synth.site_mm,
                cord_mask=mask_path if case.cord == "manual" else None,
            )
        except Exception as err:  # any failure of the pipeline is a failed case
            row.update(
                error=f"{type(err).__name__}: {err}",
                traceback=traceback.format_exc(limit=-3),
                seconds=time.perf_counter() - t0,
            )
            return row
    s = result.summary
    graft = np.asarray(result.graft_mask, dtype=bool)
    cyst = np.asarray(result.cyst_mask, dtype=bool)
    cord = np.asarray(result.cord.mask, dtype=bool)
    row.update(
        flags=list(s.get("flags", [])),
        null_reason=s.get("graft_volume_null_reason"),
        cord_dice=_dice(cord, synth.cord_manual),
        cord_volume_ratio=float(cord.sum()) / max(float(synth.cord_manual.sum()), 1.0),
        cord_source=s.get("cord", {}).get("source"),
        cord_confidence=s.get("cord", {}).get("confidence"),
        snr_cord_pipeline=s.get("snr_cord"),
        graft_n_voxels=int(graft.sum()),
        seconds_pipeline=float(sum(v for v in s.get("timings_s", {}).values() if v)),
    )
    g_bin, g_pv = s.get("graft_volume_mm3"), s.get("graft_volume_pv_mm3")
    c_bin = s.get("cyst_volume_mm3")
    c_pv = s.get("cyst_volume_pv_mm3", c_bin)
    row["measured_null"] = g_bin is None
    if case.mode == "t2":
        total = None if g_bin is None else g_bin + (c_bin or 0.0)
        total_pv = None if g_pv is None else g_pv + (c_pv or 0.0)
    else:
        total, total_pv = g_bin, g_pv
    row.update(measured_mm3=total, measured_pv_mm3=total_pv)
    if case.insert:
        truth = row["truth_mm3"]
        # The truth is a partial-volume volume: the partial-volume-weighted measurement is the
        # one compared with it; the binary volume (voxels at least half graft) is reported too.
        row["error_pct"] = _pct(total_pv, truth)
        row["error_binary_pct"] = _pct(total, truth)
        row["reported_zero"] = total is not None and total == 0.0
        lesion = (
            synth.truth["graft"] + synth.truth["cyst"]
            if case.mode == "t2"
            else synth.truth["loss"]
        )
        inside_manual = float((lesion * synth.cord_manual).sum())
        # The share of the inserted tissue inside the cord mask used, of the share inside the
        # manual cord (an iron void's lobes reach past the cord by design).
        row["lesion_in_cord_pct"] = (
            100.0 * float((lesion * synth.cord_manual * cord).sum()) / inside_manual
            if inside_manual > 0
            else None
        )
        if case.mode == "t2":
            tg, tc = synth.truth["graft"], synth.truth["cyst"]
            truth_graft = float(tg.sum()) * synth.voxel_volume_mm3
            # How much of the inserted graft the graft class holds (not called cyst, not
            # missed): its partial-volume volume against the inserted graft volume; and, apart,
            # the share of the inserted graft inside the binary graft mask.
            row["graft_share_pct"] = (
                100.0 * (g_pv or 0.0) / truth_graft
                if truth_graft > 0 and g_pv is not None
                else None
            )
            row["graft_overlap_pct"] = (
                100.0 * float((tg * graft).sum()) / float(tg.sum()) if tg.sum() > 0 else None
            )
            row["dice"] = _dice(graft, tg >= 0.5)
            row["dice_union"] = _dice(graft | cyst, (tg + tc) >= 0.5)
            row["cyst_measured_mm3"] = c_bin
        else:
            row["dice"] = _dice(graft, synth.truth["loss"] >= 0.5)
    else:
        site = volume.world_to_voxel(synth.site_mm)
        half = _window_half_length_mm(volume)
        z = np.arange(volume.shape[2])
        inside = np.abs((z - site[2]) * volume.spacing[2]) <= half
        cord_mm = float(synth.cord_manual[:, :, inside].any(axis=(0, 1)).sum()) * volume.spacing[2]
        row.update(
            window_cord_length_mm=cord_mm,
            fp_voxels=int(graft.sum()),
            fp_cyst_voxels=int(cyst.sum()),
            fp_voxels_per_10mm=int(graft.sum()) / (cord_mm / 10.0) if cord_mm > 0 else math.inf,
        )
    if arrays is not None:
        arrays.update(
            image=np.asarray(volume.data),
            spacing=volume.spacing,
            site=volume.world_to_voxel(synth.site_mm),
            truth=synth.truth,
            graft=graft,
            cyst=cyst,
            cord=cord,
            manual=synth.cord_manual,
        )
    row["seconds"] = time.perf_counter() - t0
    return row


# -- summary -----------------------------------------------------------------------------------


def _default_of(case: dict[str, Any], factor: str) -> Any:
    if factor == "grid":
        return HOSTS[case["host"]][3]
    return {
        "fov": None,
        "snr": 20.0,
        "fraction": 0.5,
        "size": None,
        "position": "centre",
        "cyst": False,
    }[factor]


def _in_sweep(row: dict[str, Any], factor: str, factors: Iterable[str]) -> bool:
    """Whether every factor but ``factor`` is at its default in this row."""
    return all(row[f] == _default_of(row, f) for f in factors if f != factor)


def _stats(rows: list[dict[str, Any]], key: str = "error_pct") -> dict[str, Any]:
    errored = [r for r in rows if "error" in r]
    null = [r for r in rows if r.get("measured_null")]
    values = [r[key] for r in rows if r.get(key) is not None]
    absvals = [abs(v) for v in values] + [math.inf] * len(errored)
    binary = [r["error_binary_pct"] for r in rows if r.get("error_binary_pct") is not None]
    dice = [r["dice"] for r in rows if r.get("dice") is not None]
    return {
        "n": len(rows),
        "n_errored": len(errored),
        "n_null": len(null),
        "n_zero": sum(1 for r in rows if r.get("reported_zero")),
        "median_error_pct": float(np.median(values)) if values else None,
        "median_abs_error_pct": float(np.median(absvals)) if absvals else None,
        "max_abs_error_pct": float(max(absvals)) if absvals else None,
        "median_error_binary_pct": float(np.median(binary)) if binary else None,
        "median_abs_error_binary_pct": float(np.median(np.abs(binary))) if binary else None,
        "median_dice": float(np.median(dice)) if dice else None,
        "within_15_pct": (
            100.0 * sum(1 for v in absvals if v <= 15.0) / len(absvals) if absvals else None
        ),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-condition tables and the acceptance checks."""
    checks: list[dict[str, Any]] = []
    tables: dict[str, list[dict[str, Any]]] = {}
    notes_out: list[str] = []
    detect_limits: list[dict[str, Any]] = []
    factors = ("fov", "grid", "snr", "fraction", "size", "position", "cyst")
    ok_rows = [r for r in rows if "synth_error" not in r]

    def check(name: str, where: str, value: float | None, limit: str, passed: bool) -> None:
        checks.append(
            {"check": name, "where": where, "value": value, "limit": limit, "pass": passed}
        )

    for mode in ("t2", "iron"):
        inserted = [r for r in ok_rows if r["mode"] == mode and r["insert"]]
        for host in sorted({r["host"] for r in inserted}):
            for cord in sorted({r["cord"] for r in inserted}):
                group = [r for r in inserted if r["host"] == host and r["cord"] == cord]
                for factor in factors:
                    sweep = [r for r in group if _in_sweep(r, factor, factors)]
                    values = sorted({r[factor] for r in sweep}, key=lambda v: (v is None, v))
                    if len(values) < 2 and factor != "fov":
                        continue
                    table = []
                    for value in values:
                        sub = [r for r in sweep if r[factor] == value]
                        big = [
                            r
                            for r in sub
                            if r.get("truth_n_voxels", 0) >= ACCEPT["t2_min_voxels"]
                            or mode == "iron"
                        ]
                        entry = {factor: value, **_stats(big), "n_all": len(sub)}
                        if mode == "t2":
                            share = [
                                r["graft_share_pct"]
                                for r in big
                                if r.get("graft_share_pct") is not None
                            ]
                            entry["median_graft_share_pct"] = (
                                float(np.median(share)) if share else None
                            )
                        table.append(entry)
                        where = f"{mode} {host} cord={cord} {factor}={_label(factor, value)}"
                        if mode == "t2" and factor in ("fov", "grid", "fraction"):
                            if factor == "fraction" and value < ACCEPT["t2_min_fraction"]:
                                continue
                            med, mx = entry["median_abs_error_pct"], entry["max_abs_error_pct"]
                            check(
                                "median |error| % (>= 40 voxels)",
                                where,
                                med,
                                "<= 10",
                                med is not None and med <= 10.0,
                            )
                            check(
                                "max |error| % (>= 40 voxels)",
                                where,
                                mx,
                                "<= 25",
                                mx is not None and mx <= 25.0,
                            )
                        if mode == "iron" and factor == "fov":
                            med = entry["median_error_pct"]
                            passed = (
                                med is not None
                                and abs(med) <= ACCEPT["iron_error_pct"]
                                and entry["n_errored"] == 0
                            )
                            check("median void error %", where, med, "within ±15", passed)
                    tables[f"{mode} {host} cord={cord} by {factor}"] = table
                if mode == "t2":
                    half = [
                        r
                        for r in group
                        if r["fraction"] == 0.5
                        and r.get("truth_n_voxels", 0) >= ACCEPT["t2_min_voxels"]
                    ]
                    share = [r.get("graft_share_pct") or 0.0 for r in half if "error" not in r]
                    share += [0.0] * sum(1 for r in half if "error" in r)
                    med = float(np.median(share)) if share else None
                    check(
                        "median % of a fraction-0.5 graft in the graft class",
                        f"t2 {host} cord={cord}",
                        med,
                        ">= 80",
                        med is not None and med >= 80.0,
                    )
                    # The same conditions as the error checks: ≥ 40 voxels, contrast fraction
                    # ≥ 0.35. Fainter grafts are listed apart (their contrast is about k·σ).
                    big = [
                        r
                        for r in group
                        if r.get("truth_n_voxels", 0) >= ACCEPT["t2_min_voxels"]
                        and r["fraction"] >= ACCEPT["t2_min_fraction"]
                    ]
                    faint = [
                        r
                        for r in group
                        if r.get("truth_n_voxels", 0) >= ACCEPT["t2_min_voxels"]
                        and r["fraction"] < ACCEPT["t2_min_fraction"]
                    ]
                    if faint:
                        notes_out.append(
                            f"t2 {host} cord={cord}: grafts >= 40 voxels at contrast fraction "
                            f"< {ACCEPT['t2_min_fraction']}: "
                            f"{sum(1 for r in faint if r.get('reported_zero'))} of {len(faint)} "
                            "reported as 0 (below the detection contrast)"
                        )
                    zeros = sum(1 for r in big if r.get("reported_zero"))
                    check(
                        "grafts >= 40 voxels reported as 0",
                        f"t2 {host} cord={cord} (of {len(big)}; not measured: "
                        f"{sum(1 for r in big if r.get('measured_null'))})",
                        zeros,
                        "== 0",
                        zeros == 0,
                    )
    for mode in ("t2", "iron"):
        small = [
            r
            for r in ok_rows
            if r["mode"] == mode
            and r["insert"]
            and r["host"] == "T2w"
            and r["size"] in DETECT_SIZES
            and r["fov"] is None
            and r["snr"] == 20.0
            and r["fraction"] == 0.5
            and r["position"] == "centre"
            and not r["cyst"]
        ]
        for cord in sorted({r["cord"] for r in small}):
            table = []
            for grid in GRIDS:
                found_all = []
                for size in DETECT_SIZES:
                    sub = [
                        r
                        for r in small
                        if r["cord"] == cord and r["grid"] == grid and r["size"] == size
                    ]
                    if not sub:
                        continue
                    found = sum(1 for r in sub if (r.get("measured_mm3") or 0.0) > 0.0)
                    rate = 100.0 * found / len(sub)
                    found_all.append((size, rate))
                    voxel = float(np.prod(GRIDS[grid]))
                    table.append(
                        {
                            "grid": grid,
                            "size_voxels": size,
                            "size_mm3": size * voxel,
                            "n": len(sub),
                            "found_pct": rate,
                            "n_null": sum(1 for r in sub if r.get("measured_null")),
                            "median_error_pct": _median_or_none(
                                [r["error_pct"] for r in sub if r.get("error_pct") is not None]
                            ),
                        }
                    )
                smallest = None
                for i, (size, _) in enumerate(found_all):
                    if all(rate >= DETECT_RATE_PCT for _, rate in found_all[i:]):
                        smallest = size
                        break
                detect_limits.append(
                    {
                        "mode": mode,
                        "cord": cord,
                        "grid": grid,
                        "min_detected_voxels": smallest,
                        "min_detected_mm3": None
                        if smallest is None
                        else smallest * float(np.prod(GRIDS[grid])),
                    }
                )
            tables[f"detection {mode} T2w cord={cord} (share of inserts found)"] = table
    # The inserted lesion inside the automatic cord: the check on T2w and T1w, per
    # mode; other hosts (T2*w) reported apart.
    in_cord = [
        r
        for r in ok_rows
        if r["insert"]
        and r["cord"] == "auto"
        and r.get("lesion_in_cord_pct") is not None
        and "error" not in r
    ]
    groups = [
        (
            mode,
            [r for r in in_cord if r["mode"] == mode and r["host"] in ("T2w", "T1w")],
            True,
        )
        for mode in ("t2", "iron")
    ] + [
        (f"{host} (reported, not a check)", [r for r in in_cord if r["host"] == host], False)
        for host in sorted({r["host"] for r in in_cord} - {"T2w", "T1w"})
    ]
    for label, group, checked in groups:
        if not group:
            continue
        shares = [r["lesion_in_cord_pct"] for r in group]
        below = [r for r in group if r["lesion_in_cord_pct"] < 95.0]
        flagged = sum(1 for r in below if _CORD_WARNINGS & set(r.get("flags", [])))
        notes_out.append(
            f"{label}, automatic cord: inserted tissue inside it (of what lies inside the manual "
            f"cord) median {np.median(shares):.1f} %, min {min(shares):.1f} %; {len(below)} of "
            f"{len(group)} cases under 95 % ({flagged} of them flagged)"
        )
        if checked:
            check(
                "min % of the inserted lesion inside the automatic cord",
                f"{label} (n = {len(group)})",
                float(min(shares)),
                ">= 95",
                not below,
            )
    none = [r for r in ok_rows if not r["insert"]]
    for key in sorted({(r["mode"], r["host"], r["cord"]) for r in none}):
        group = [r for r in none if (r["mode"], r["host"], r["cord"]) == key]
        fp = [
            r.get("fp_voxels_per_10mm", math.inf) if "error" not in r else math.inf for r in group
        ]
        table = []
        for fov in sorted({r["fov"] for r in group}, key=lambda v: (v is None, v)):
            sub = [r for r in group if r["fov"] == fov]
            vals = [r.get("fp_voxels_per_10mm", math.inf) for r in sub if "error" not in r]
            table.append(
                {
                    "fov": fov,
                    "n": len(sub),
                    "n_errored": sum(1 for r in sub if "error" in r),
                    "max_fp_voxels_per_10mm": max(vals) if vals else None,
                    "mean_fp_voxels_per_10mm": float(np.mean(vals)) if vals else None,
                }
            )
        tables[f"nothing inserted: {key[0]} {key[1]} cord={key[2]}"] = table
        worst = max(fp) if fp else None
        check(
            "max false graft voxels / 10 mm",
            f"none {key[0]} {key[1]} cord={key[2]}",
            worst,
            "< 1",
            worst is not None and worst < 1.0,
        )
    errored = [r for r in rows if "error" in r]
    messages: dict[str, int] = {}
    for r in errored:
        messages[r["error"][:160]] = messages.get(r["error"][:160], 0) + 1
    flags: dict[str, int] = {}
    for r in ok_rows:
        for f in r.get("flags", []):
            flags[f] = flags.get(f, 0) + 1
    cord_dice = [r["cord_dice"] for r in ok_rows if r.get("cord_dice") is not None]
    dice_half = [
        r["dice"]
        for r in ok_rows
        if r.get("dice") is not None and r["insert"] and r["fraction"] >= 0.5
    ]
    return {
        "checks": checks,
        "tables": tables,
        "n_cases": len(rows),
        "n_errored": len(errored),
        "n_synth_errors": sum(1 for r in rows if "synth_error" in r),
        "synth_errors": sorted({r["synth_error"] for r in rows if "synth_error" in r}),
        "errors": messages,
        "flags": dict(sorted(flags.items(), key=lambda kv: -kv[1])),
        "median_cord_dice": float(np.median(cord_dice)) if cord_dice else None,
        "min_cord_dice": float(min(cord_dice)) if cord_dice else None,
        "median_dice_fraction_ge_0.5": float(np.median(dice_half)) if dice_half else None,
        "n_null": sum(1 for r in ok_rows if r.get("measured_null")),
        "notes": notes_out,
        "detection_limits": detect_limits,
        "all_pass": all(c["pass"] for c in checks),
    }


def _median_or_none(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if values else None


def _label(factor: str, value: Any) -> str:
    if factor in ("fov", "size") and value is None:
        return "full" if factor == "fov" else "random"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def markdown(summary: dict[str, Any], notes: Sequence[str], seconds: float) -> str:
    """The tables and checks as markdown."""
    lines = [f"# Real-anatomy validation ({summary['n_cases']} cases, {seconds:.0f} s)", ""]
    for note in notes:
        lines.append(f"- {note}")
    if notes:
        lines.append("")
    for name, table in summary["tables"].items():
        if not table:
            continue
        lines += [f"## {name}", ""]
        keys = list(table[0])
        lines.append("| " + " | ".join(keys) + " |")
        lines.append("|" + "---|" * len(keys))
        for entry in table:
            cells = []
            for k in keys:
                v = entry[k]
                cells.append(_label(k, v) if k == keys[0] else _fmt(v))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Acceptance",
        "",
        "| check | where | value | limit | result |",
        "|---|---|---|---|---|",
    ]
    for c in summary["checks"]:
        lines.append(
            f"| {c['check']} | {c['where']} | {_fmt(c['value'])} | {c['limit']} "
            f"| {'PASS' if c['pass'] else '**FAIL**'} |"
        )
    lines += [
        "",
        f"- cases errored: {summary['n_errored']} (each counts as a failed case: error = inf)",
        f"- cases the host could not give (synthesis): {summary['n_synth_errors']}",
        f"- volumes not measured (null with a reason): {summary['n_null']}",
        "- cord Dice vs the resampled manual mask: median "
        f"{_fmt(summary['median_cord_dice'], 3)}, min {_fmt(summary['min_cord_dice'], 3)}",
        f"- graft Dice vs truth ≥ 0.5 (fraction ≥ 0.5): median "
        f"{_fmt(summary['median_dice_fraction_ge_0.5'], 3)}",
        f"- flags seen: {', '.join(f'{k} ×{v}' for k, v in summary['flags'].items()) or 'none'}",
    ]
    lines += [f"- {note}" for note in summary.get("notes", [])]
    if summary.get("detection_limits"):
        lines += [
            "",
            f"Smallest insert found in >= {DETECT_RATE_PCT:g} % of seeds (and every larger size),"
            " T2w host, fraction 0.5, SNR 20:",
            "",
            "| mode | cord | grid | voxels | mm³ |",
            "|---|---|---|---|---|",
        ]
        for d in summary["detection_limits"]:
            lines.append(
                f"| {d['mode']} | {d['cord']} | {d['grid']} | {_fmt(d['min_detected_voxels'])} "
                f"| {_fmt(d['min_detected_mm3'])} |"
            )
    if summary["errors"]:
        lines += ["", "Errors:", ""]
        lines += [f"- ×{n}: `{m}`" for m, n in summary["errors"].items()]
    if summary["synth_errors"]:
        lines += ["", "Synthesis refused:", ""]
        lines += [f"- `{m}`" for m in summary["synth_errors"]]
    lines += ["", f"**All acceptance points pass: {summary['all_pass']}**", ""]
    return "\n".join(lines)


# -- figures -----------------------------------------------------------------------------------


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figures(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Error vs FOV, size and contrast fraction (strip + box), and Bland–Altman plots."""
    plt = _matplotlib()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    factors = ("fov", "grid", "snr", "fraction", "size", "position", "cyst")
    measured = [r for r in rows if r.get("insert") and r.get("error_pct") is not None]

    def strip(ax, groups: list[tuple[str, list[float]]], title: str, xlabel: str, limit: float):
        data = [g[1] for g in groups]
        positions = np.arange(len(groups))
        if any(data):
            ax.boxplot(
                [d if d else [np.nan] for d in data],
                positions=positions,
                widths=0.5,
                showfliers=False,
                medianprops={"color": OKABE_ITO[5]},
            )
        rng = np.random.default_rng(0)
        for i, d in enumerate(data):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=9, color=OKABE_ITO[4], alpha=0.7)
        for y in (-limit, limit):
            ax.axhline(y, color=OKABE_ITO[0], ls="--", lw=1)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(positions, [g[0] for g in groups])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("volume error (%)")
        ax.set_title(title, fontsize=9)

    panels = []
    for mode, host in (("t2", "T2w"), ("iron", "T2w"), ("iron", "T2starw"), ("iron", "T1w")):
        group = [r for r in measured if r["mode"] == mode and r["host"] == host]
        if not group:
            continue
        for factor, xlabel in (
            ("fov", "field of view along the cord (mm)"),
            ("size", "graft size (voxels)"),
            ("fraction", "tissue fraction between cord (0) and CSF (1)"),
        ):
            sweep = [r for r in group if _in_sweep(r, factor, factors)]
            if factor == "size":
                sweep = [r for r in group if _in_sweep(r, "size", factors)]
                bins = [(20, 40), (40, 80), (80, 160), (160, 301)]
                groups = [
                    (
                        f"{lo}–{hi - 1 if hi == 301 else hi}",
                        [r["error_pct"] for r in sweep if lo <= r["truth_n_voxels"] < hi],
                    )
                    for lo, hi in bins
                ]
            else:
                values = sorted({r[factor] for r in sweep}, key=lambda v: (v is None, v))
                if len(values) < 2:
                    continue
                groups = [
                    (_label(factor, v), [r["error_pct"] for r in sweep if r[factor] == v])
                    for v in values
                ]
            limit = 10.0 if mode == "t2" else 15.0
            panels.append((f"{mode} on {host}: error vs {factor}", xlabel, groups, limit, factor))
    if panels:
        n = len(panels)
        cols = 3
        rows_n = math.ceil(n / cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.4 * rows_n), squeeze=False)
        for ax, (title, xlabel, groups, limit, _) in zip(axes.flat, panels):
            strip(ax, groups, title, xlabel, limit)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.tight_layout()
        path = folder / "real_error_sweeps.png"
        fig.savefig(path, dpi=150)
        plt.close(fig)
        written.append(path)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), squeeze=False)
    for ax, mode in zip(axes.flat, ("t2", "iron")):
        group = [r for r in measured if r["mode"] == mode]
        for i, host in enumerate(sorted({r["host"] for r in group})):
            sub = [r for r in group if r["host"] == host]
            truth = np.array([r["truth_mm3"] for r in sub])
            meas = np.array([r["measured_pv_mm3"] for r in sub])
            ax.scatter(
                (truth + meas) / 2,
                meas - truth,
                s=10,
                color=OKABE_ITO[i % 7],
                label=host,
                alpha=0.7,
            )
        if group:
            diff = np.array([r["measured_pv_mm3"] - r["truth_mm3"] for r in group])
            bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
            ax.axhline(bias, color="0.2", lw=1, label=f"bias {bias:.1f} mm³")
            for y in (bias - 1.96 * sd, bias + 1.96 * sd):
                ax.axhline(y, color="0.2", lw=1, ls="--")
            ax.legend(fontsize=8)
        ax.set_xlabel("mean of truth and measured (mm³)")
        ax.set_ylabel("measured (partial-volume) − truth (mm³)")
        what = "graft + cyst" if mode == "t2" else "void vs signal-loss truth"
        ax.set_title(f"Bland–Altman, {mode} ({what})", fontsize=9)
    fig.tight_layout()
    path = folder / "real_bland_altman.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    written.append(path)
    return written


def qc_figure(case: Case, row: dict[str, Any], arrays: dict[str, Any], path: Path) -> Path:
    """Sagittal and axial slices through the insert: image, truth, graft, cyst, cord contours."""
    plt = _matplotlib()
    from matplotlib.lines import Line2D

    image = arrays["image"]
    sx, sy, sz = arrays["spacing"]
    i, j, k = (int(np.clip(round(arrays["site"][a]), 0, image.shape[a] - 1)) for a in range(3))
    truth = arrays["truth"]
    truth_mask = None
    if "graft" in truth:
        truth_mask = (truth["graft"] + truth["cyst"]) >= 0.5
    elif "loss" in truth:
        truth_mask = truth["loss"] >= 0.5
    layers = [
        ("truth ≥ 0.5", truth_mask, OKABE_ITO[3], "-"),
        ("graft mask", arrays["graft"], OKABE_ITO[5], "-"),
        ("cyst mask", arrays["cyst"], OKABE_ITO[1], "-"),
        ("cord mask", arrays["cord"], OKABE_ITO[2], "-"),
        ("manual cord", arrays["manual"], OKABE_ITO[6], ":"),
    ]
    lo, hi = np.percentile(image, [1, 99.5])
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6))
    views = [
        ("sagittal", image[i, :, :].T, lambda m: m[i, :, :].T, (sy, sz), ("P", "A", "I", "S")),
        ("coronal", image[:, j, :].T, lambda m: m[:, j, :].T, (sx, sz), ("R", "L", "I", "S")),
        ("axial", image[:, :, k].T, lambda m: m[:, :, k].T, (sx, sy), ("R", "L", "P", "A")),
    ]
    for ax, (name, plane, cut, (dx, dy), (left, right, bottom, top)) in zip(axes, views):
        extent = (-0.5 * dx, (plane.shape[1] - 0.5) * dx, -0.5 * dy, (plane.shape[0] - 0.5) * dy)
        flip = name != "sagittal"  # radiological: patient's right on the viewer's left
        shown = plane[:, ::-1] if flip else plane
        ax.imshow(
            shown, cmap="gray", vmin=lo, vmax=hi, origin="lower", extent=extent, aspect="equal"
        )
        for _, mask, colour, style in layers:
            if mask is None or not np.any(mask):
                continue
            m = cut(np.asarray(mask, dtype=float))
            m = m[:, ::-1] if flip else m
            if m.max() > 0:
                xs = (np.arange(m.shape[1])) * dx
                ys = (np.arange(m.shape[0])) * dy
                ax.contour(
                    xs, ys, m, levels=[0.5], colors=[colour], linewidths=1.2, linestyles=style
                )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("mm")
        for text, (x, y, ha, va) in zip(
            (left, right, bottom, top),
            (
                (0.01, 0.5, "left", "center"),
                (0.99, 0.5, "right", "center"),
                (0.5, 0.01, "center", "bottom"),
                (0.5, 0.99, "center", "top"),
            ),
        ):
            ax.text(
                x,
                y,
                text,
                transform=ax.transAxes,
                ha=ha,
                va=va,
                color="white",
                fontsize=10,
                fontweight="bold",
            )
    handles = [Line2D([0], [0], color=c, ls=s, label=n) for n, _, c, s in layers]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    meas, pv = row.get("measured_mm3"), row.get("measured_pv_mm3")
    err = row.get("error_pct")
    shown = "null" if meas is None else f"binary {meas:.1f} mm³"
    if pv is not None:
        shown += f", partial-volume {pv:.1f} mm³"
    relative = "" if err is None else f" ({err:+.0f} % partial-volume)"
    snr = row["synth"].get("snr_reached", float("nan"))
    flags = ", ".join(row.get("flags", [])) or "–"
    title = f"{case.id}\ntruth {row.get('truth_mm3', 0):.1f} mm³, measured {shown}{relative}; "
    title += "\n".join(textwrap.wrap(f"SNR {snr:.1f}; flags: {flags}", 140))
    if "error" in row:
        title += f"\nERROR {row['error'][:120]}"
    fig.suptitle(title, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def _run_qc(case: Case, folder: Path) -> str:
    arrays: dict[str, Any] = {}
    row = run_case(case, arrays)
    if not arrays:  # the pipeline failed: show the image and truth alone
        synth = synthesize_case(case)
        affine = synth.affine
        arrays = {
            "image": np.asarray(synth.data),
            "spacing": synth.spacing,
            "site": np.linalg.solve(affine[:3, :3], np.asarray(synth.site_mm) - affine[:3, 3]),
            "truth": synth.truth,
            "graft": np.zeros(synth.data.shape, bool),
            "cyst": np.zeros(synth.data.shape, bool),
            "cord": np.zeros(synth.data.shape, bool),
            "manual": synth.cord_manual,
        }
    if "synth_error" in row:
        return f"{case.id}: {row['synth_error']}"
    return str(qc_figure(case, row, arrays, folder / f"{case.id}.png"))


# -- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per condition (20)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", nargs="+", choices=("t2", "iron", "none"), default=None)
    parser.add_argument(
        "--sweep",
        nargs="+",
        choices=("fov", "grid", "snr", "fraction", "size", "position", "cyst", "detect"),
        default=None,
        help="only these one-factor sweeps (default: all)",
    )
    parser.add_argument("--cord", choices=("auto", "manual", "both"), default="auto")
    parser.add_argument(
        "--holdout", action="store_true", help="holdout host (T1w) and seeds 1000+"
    )
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks/results/validate_real.json"
    )
    parser.add_argument("--figures", type=Path, help="write the summary figures there")
    parser.add_argument("--qc", type=Path, help="write QC PNGs of some cases there")
    parser.add_argument("--qc-cases", type=int, default=4, help="how many cases get a QC PNG")
    parser.add_argument("--case", help="run (and QC) only the case with this id")
    parser.add_argument("--limit", type=int, help="run only the first N cases (quick checks)")
    args = parser.parse_args(argv)

    notes: list[str] = []
    modes = args.mode or (["iron"] if args.holdout else ["t2", "iron", "none"])
    cases = campaign_cases(
        args.seeds,
        modes=modes,
        sweeps=args.sweep,
        cord=args.cord,
        holdout=args.holdout,
        notes=notes,
    )
    if args.case:
        cases = [c for c in cases if c.id == args.case]
        if not cases:
            print(f"no case {args.case!r} in this campaign (check --mode/--sweep/--seeds)")
            return 2
    if args.limit:
        cases = cases[: args.limit]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    if args.workers > 1 and len(cases) > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            rows = list(pool.map(run_case, cases, chunksize=1))
    else:
        rows = [run_case(c) for c in cases]
    seconds = time.perf_counter() - t0
    summary = summarise(rows)
    text = markdown(summary, notes, seconds)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    from graftimg.pipeline.session import json_ready

    payload = {
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "seconds": seconds,
        "notes": notes,
        "accept": ACCEPT,
        "summary": summary,
        "cases": rows,
    }
    args.json.write_text(json.dumps(json_ready(payload), indent=1, default=str), encoding="utf-8")
    args.json.with_suffix(".md").write_text(text, encoding="utf-8")
    if args.figures:
        for path in figures(rows, args.figures):
            print(f"figure: {path}")
    if args.qc:
        chosen = cases if args.case else cases[: args.qc_cases]
        for case in chosen:
            print(f"qc: {_run_qc(case, args.qc)}")
    return 0 if summary["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
