"""One session end to end: load → preprocess → cord → injection window → graft → measure → write.

This module is where stages are chained; each stage stays a plain function on arrays. Nothing is
written until every step has succeeded, every write is atomic, and the JSON is written last: its
presence (with matching parameter and input hashes) marks a finished session.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graftimg.errors import ConfigError, GraftimgError, OutputError, SegmentationError
from graftimg.io.atomic import write_json_atomic
from graftimg.io.session_record import record_json
from graftimg.io.volume import Volume, load_volume, save_like
from graftimg.modes import Mode
from graftimg.pipeline.config import PipelineConfig
from graftimg.pipeline.cord import CordResult, cord_for_session
from graftimg.provenance import provenance_record

__all__ = [
    "NULL_VOLUME_KEYS",
    "NULL_VOLUME_REASONS",
    "SessionResult",
    "json_ready",
    "null_volume_reason",
    "output_paths",
    "run_session",
    "segment_volume",
]

SiteSource = Literal["given", "registration"]

#: Summary keys written as ``null`` when the graft could not be measured. A volume of 0 means
#: "looked properly and found nothing"; a failed measurement must never read as that.
NULL_VOLUME_KEYS = (
    "graft_n_voxels",
    "graft_volume_mm3",
    "graft_volume_pv_mm3",
    "graft_volume_low_mm3",
    "graft_volume_high_mm3",
    "cyst_volume_mm3",
    "cyst_volume_pv_mm3",
)
#: Keys derived from the same measurement, also ``null`` then (when the mode reports them).
_DERIVED_VOLUME_KEYS = (
    "graft_volume_k_plus_1_mm3",
    "graft_volume_k_minus_1_mm3",
    "surface_band_mm3",
    "graft_contrast_to_noise",
    "void_volume_per_echo_time_mm3_per_ms",
)

#: Why a graft volume is ``null``, per cause: what went wrong, then what to do.
NULL_VOLUME_REASONS = {
    "reference_unreliable": (
        "no trustworthy normal-appearing cord to compare the graft with: give a field of view "
        "that covers normal cord beyond the graft, or check the cord mask"
    ),
    "site_outside_cord": (
        "the injection site lies outside the cord, so the graft was not looked for where it "
        "was injected: check the injection site, or give a cord mask that holds the graft "
        "with --cord-mask"
    ),
}


@dataclasses.dataclass(frozen=True, eq=False)
class SessionResult:
    """What :func:`segment_volume` found (canonical grid) and the JSON-ready summary."""

    volume: Volume
    cord: CordResult
    graft_mask: np.ndarray
    cyst_mask: np.ndarray
    summary: dict[str, Any]


def output_paths(out_prefix: str | os.PathLike) -> dict[str, Path]:
    """Files ``graftimg segment`` writes for ``OUT_PREFIX``."""
    prefix = str(out_prefix)
    return {
        "graft_mask": Path(f"{prefix}_label-graft_mask.nii.gz"),
        "cord_mask": Path(f"{prefix}_label-cord_mask.nii.gz"),
        "cyst_mask": Path(f"{prefix}_label-cyst_mask.nii.gz"),
        "json": Path(f"{prefix}_graft.json"),
        "qc": Path(f"{prefix}_qc.png"),
    }


def _site_voxel(
    volume: Volume,
    injection_world: tuple[float, float, float] | None,
    injection_voxel: tuple[float, float, float] | None,
) -> np.ndarray | None:
    if injection_world is not None and injection_voxel is not None:
        raise ConfigError("give the injection site in world mm or as a voxel, not both")
    if injection_world is not None:
        site = volume.world_to_voxel(injection_world)
    elif injection_voxel is not None:
        site = volume.stored_to_canonical_index(injection_voxel)
    else:
        return None
    if np.any(site < -0.5) or np.any(site > np.asarray(volume.shape) - 0.5):
        raise SegmentationError(
            f"injection site maps to voxel {np.round(site, 1).tolist()}, outside the image "
            f"(shape {list(volume.shape)})",
            path=volume.source,
            hint="--injection is scanner RAS mm; --injection-voxel is an index of the stored file",
        )
    return site


def _empty_measurements(volume: Volume, cord: np.ndarray, mode: Mode) -> dict[str, Any]:
    from graftimg.measure.volume import volume_mm3

    out: dict[str, Any] = {
        "mode": mode,
        "graft_n_voxels": 0,
        "graft_volume_mm3": 0.0,
        "graft_volume_pv_mm3": 0.0,
        "graft_volume_low_mm3": 0.0,
        "graft_volume_high_mm3": 0.0,
        "cyst_volume_mm3": 0.0,
        "cyst_volume_pv_mm3": 0.0,
        "cord_volume_mm3": volume_mm3(cord, spacing=volume.spacing),
        "voxel_size_mm": list(volume.spacing),
        "lesion_metrics": None,
        "components": [],
    }
    # Both modes record the protocol: the survival analysis compares it between sessions.
    out["echo_time_s"] = volume.metadata.get("EchoTime")
    out["field_strength_T"] = volume.metadata.get("MagneticFieldStrength")
    return out


def null_volume_reason(flags: Any, *, n_graft_voxels: int) -> str | None:
    """Why the graft volume cannot be given, or None when it was measured.

    Parameters
    ----------
    flags : iterable of str
        Flags of the graft segmentation.
    n_graft_voxels : int
        Graft voxels found.

    Returns
    -------
    str or None
        A short sentence naming the cause and the fix (:data:`NULL_VOLUME_REASONS`), or None.
        ``reference_unreliable`` always voids the measurement (the threshold has no basis);
        ``site_outside_cord`` voids it only when nothing was found (the search did not reach
        the site, so finding nothing says nothing about the graft).

    Examples
    --------
    >>> null_volume_reason(["no_graft_found"], n_graft_voxels=0) is None
    True
    >>> null_volume_reason(["site_outside_cord"], n_graft_voxels=12) is None
    True
    >>> null_volume_reason(["reference_unreliable"], n_graft_voxels=12).split(":")[0]
    'no trustworthy normal-appearing cord to compare the graft with'
    """
    flags = set(flags)
    if "reference_unreliable" in flags:
        return NULL_VOLUME_REASONS["reference_unreliable"]
    if "site_outside_cord" in flags and n_graft_voxels == 0:
        return NULL_VOLUME_REASONS["site_outside_cord"]
    return None


def _unmeasured(measurements: dict[str, Any], reason: str) -> dict[str, Any]:
    """Measurements of a graft that could not be measured: volumes ``null``, the reason said."""
    out = dict(measurements)
    out.update(dict.fromkeys(NULL_VOLUME_KEYS))
    out.update(dict.fromkeys(key for key in _DERIVED_VOLUME_KEYS if key in out))
    out["graft_volume_null_reason"] = reason
    out["components"] = []
    out["lesion_metrics"] = None
    return out


def _components_in_scanner_mm(volume: Volume, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Component rows with ``centroid_mm`` in scanner RAS mm.

    The canonical voxel centroid goes through the volume's affine; ``centroid_voxel`` stays the
    canonical (RAS+) index.
    """
    out = []
    for row in rows:
        row = dict(row)
        if row.get("centroid_voxel") is not None:
            world = volume.voxel_to_world(np.asarray(row["centroid_voxel"], dtype=float))
            row["centroid_mm"] = [float(v) for v in world]
        out.append(row)
    return out


def _timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``function(*args, **kwargs)`` and its wall time in seconds."""
    t0 = time.perf_counter()
    return function(*args, **kwargs), time.perf_counter() - t0


def _naming_the_image(function: Callable[..., SessionResult]) -> Callable[..., SessionResult]:
    """Errors of array-level steps know no file: let them name the session's image."""

    @functools.wraps(function)
    def wrapper(volume: Volume, **kwargs: Any) -> SessionResult:
        try:
            return function(volume, **kwargs)
        except GraftimgError as err:
            named = err.about(volume.source)
            if named is err:
                raise
            raise named from None

    return wrapper


@_naming_the_image
def segment_volume(
    volume: Volume,
    *,
    mode: Mode,
    injection_world: tuple[float, float, float] | None = None,
    injection_voxel: tuple[float, float, float] | None = None,
    cord_mask: str | os.PathLike | None = None,
    cord_from: str | os.PathLike | None = None,
    cord_seed_world: tuple[float, float, float] | None = None,
    cord_seed_voxel: tuple[float, float, float] | None = None,
    injection_site_source: SiteSource = "given",
    config: PipelineConfig | None = None,
    load_options: dict[str, Any] | None = None,
) -> SessionResult:
    """Run the whole analysis of one image in memory (no file is written).

    Parameters
    ----------
    volume : Volume
        The session image (T2*w/GRE for ``iron``, T2w for ``t2``).
    mode : {'iron', 't2'}
        Graft mode.
    injection_world : tuple of 3 float, optional
        Injection site in scanner RAS mm.
    injection_voxel : tuple of 3 float, optional
        Injection site as a voxel index of the file as stored on disk.
    cord_mask, cord_from : path-like, optional
        Cord routes (a) and (b), see :func:`graftimg.pipeline.cord.cord_for_session`.
    cord_seed_world, cord_seed_voxel : tuple of 3 float, optional
        A point inside the cord for route (c), in scanner mm or stored voxel index.
    injection_site_source : {'given', 'registration'}
        Where a given injection site comes from, recorded as ``injection_site_source``:
        ``'registration'`` when it was carried from another session's coordinates by
        registration (the study runner). A site proposed by graftimg is ``'proposed'``.
    config : PipelineConfig, optional
        Parameters (defaults when absent).
    load_options : dict, optional
        Passed to :func:`load_volume` for companion files.

    Returns
    -------
    SessionResult
        ``summary["timings_s"]`` holds the wall time of each stage of the calling thread:
        ``cord_s`` (with the centerline), then ``preprocess_s`` (noise σ, the normalisation,
        and the wait for the worker thread), ``graft_s``, ``measure_s``. The body mask and N4
        run in a worker thread during the cord stage: ``body_s`` and ``bias_s`` are their own
        wall times, ``bias_wait_s`` how long the calling thread waited for N4 (part of
        ``preprocess_s``).

        When the graft cannot be measured (:func:`null_volume_reason`), the volumes
        (:data:`NULL_VOLUME_KEYS`) are None, ``graft_volume_null_reason`` says why (and
        ``reference_unreliable_reasons`` lists the graft stage's own findings, when it gives
        them), and the graft and cyst masks are empty. A volume of 0 means the search was
        done and found nothing.
    """
    from graftimg.measure.graft import measure_graft
    from graftimg.preprocess.bias import correct_bias
    from graftimg.preprocess.body import body_mask
    from graftimg.preprocess.noise import estimate_noise
    from graftimg.segment.centerline import fit_centerline
    from graftimg.segment.graft import segment_graft
    from graftimg.segment.injection import propose_injection_site

    if mode not in ("iron", "t2"):
        raise ConfigError(f"mode must be 'iron' or 't2', got {mode!r}")
    if injection_site_source not in ("given", "registration"):
        raise ConfigError(
            "injection_site_source must be 'given' or 'registration', got "
            f"{injection_site_source!r}"
        )
    config = config or PipelineConfig()
    scale = config.resolve_scale(volume.spacing)
    params = config.resolved(scale)
    graft_params = config.graft_params(scale)
    timings: dict[str, float] = {}
    flags: list[str] = []
    spacing = volume.spacing

    site = _site_voxel(volume, injection_world, injection_voxel)
    seed = None
    if cord_seed_world is not None:
        seed = tuple(float(v) for v in volume.world_to_voxel(cord_seed_world))
    elif cord_seed_voxel is not None:
        seed = tuple(float(v) for v in volume.stored_to_canonical_index(cord_seed_voxel))

    # The body mask and N4 run in a worker thread while the cord is found on the raw image
    # (NumPy, SciPy and SimpleITK release the GIL, so on two cores they cost little wall
    # time); the noise estimate and the normalisation after the cord use their results.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="graftimg-preprocess") as pool:
        body_job = pool.submit(_timed, body_mask, volume.data, spacing=spacing)
        bias_job = None
        if config.preprocess.bias_correction:
            bias_job = pool.submit(
                lambda: _timed(
                    correct_bias,
                    volume.data,
                    spacing=spacing,
                    mask=body_job.result()[0],
                    shrink_factor=params["preprocess"]["shrink_factor"],
                    n_levels=config.preprocess.n4_levels,
                    n_iterations=config.preprocess.n4_iterations,
                    knot_spacing_mm=params["preprocess"]["n4_knot_spacing_mm"],
                )
            )

        t0 = time.perf_counter()
        cord = cord_for_session(
            volume,
            cord_mask=cord_mask,
            cord_from=cord_from,
            seed_voxel=seed,
            contrast=config.cord.contrast,
            scale=scale,
            refine_registration=config.cord.refine_registration,
            load_options=load_options,
        )
        flags += list(cord.flags)
        if not cord.mask.any():
            raise SegmentationError(
                "no cord was found",
                path=volume.source,
                hint="give a cord mask (--cord-mask), a companion (--cord-from) or a seed",
            )
        centerline = fit_centerline(cord.mask, spacing=spacing)
        timings["cord_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        body, timings["body_s"] = body_job.result()
        noise = estimate_noise(volume.data, spacing=spacing, body=body)
        preprocess: dict[str, Any] = {
            "bias_correction": False,
            "noise_sigma": float(noise.sigma),
            "noise_method": noise.method,
        }
        image = volume.data
        if bias_job is not None:
            t_wait = time.perf_counter()
            corrected, timings["bias_s"] = bias_job.result()
            timings["bias_wait_s"] = time.perf_counter() - t_wait
            image = corrected.image
            field_in_body = corrected.field[corrected.mask]
            preprocess.update(
                bias_correction=True,
                n4_levels=corrected.n_levels,
                n4_iterations=corrected.n_iterations_last_level,
                bias_field_range=[float(field_in_body.min()), float(field_in_body.max())]
                if field_in_body.size
                else None,
            )
    noise_sigma = float(noise.sigma)
    if config.preprocess.normalize:
        from graftimg.preprocess.normalize import normalize_intensity

        normalized = normalize_intensity(image, reference_mask=cord.mask)
        image = normalized.image
        noise_sigma /= normalized.factor
        preprocess["normalization_factor"] = float(normalized.factor)
        preprocess["normalization"] = "divided by the median of the cord"
    timings["preprocess_s"] = time.perf_counter() - t0  # noise, waits, normalisation

    t0 = time.perf_counter()
    site_source: str = injection_site_source
    summary_extra: dict[str, Any] = {}
    if site is None:
        proposed, site_score = propose_injection_site(
            image,
            cord.mask,
            spacing=spacing,
            mode=mode,
            k_sigma=graft_params.k_sigma,
            min_cluster_volume_mm3=graft_params.min_component_volume_mm3,
        )
        site_source = "proposed"
        flags.append("injection_site_automatic")
        summary_extra["injection_site_score"] = float(site_score)
        site = None if proposed is None else np.asarray(proposed, dtype=float)
    cord_slices = np.flatnonzero(cord.mask.any(axis=(0, 1)))
    if site is not None and not cord.mask[:, :, int(np.clip(round(site[2]), 0, None))].any():
        # Keep the site's slice on the cord (a site a few slices past the cord's end).
        nearest = cord_slices[np.argmin(np.abs(cord_slices - site[2]))]
        flags.append("site_moved_onto_cord")
        site = np.array([site[0], site[1], float(nearest)])

    if site is None:
        flags.append("no_graft_found")
        graft = np.zeros(volume.shape, bool)
        cyst = np.zeros(volume.shape, bool)
        measurements = _empty_measurements(volume, cord.mask, mode)
        seg_flags: tuple[str, ...] = ()
        timings["graft_s"] = time.perf_counter() - t0  # the site proposal found nothing
    else:
        s_mm = centerline.along_cord_mm(float(site[2]))
        seg = segment_graft(
            image,
            cord.mask,
            s_mm,
            tuple(site),
            spacing=spacing,
            mode=mode,
            params=graft_params,
            noise_sigma=noise_sigma,
        )
        timings["graft_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        graft, cyst = seg.graft_mask, seg.cyst_mask
        seg_flags = seg.flags
        measurements = measure_graft(
            image,
            seg,
            cord.mask,
            spacing=spacing,
            centerline=centerline,
            noise_sigma=noise_sigma,
            metadata=volume.metadata,
        )
        measurements["components"] = _components_in_scanner_mm(
            volume, measurements.get("components", [])
        )
        measurements["reference_n_voxels"] = int(seg.reference.n_voxels)
        # Which route the normal-cord reference took and what it left out (issue 8).
        measurements["reference_region"] = seg.reference.region
        measurements["reference_excluded_voxels"] = int(seg.reference.excluded_voxels)
        reason = null_volume_reason(seg_flags, n_graft_voxels=int(graft.sum()))
        if reason is not None:
            # Nothing trustworthy to write: empty masks, null volumes, the reason said.
            graft = np.zeros(volume.shape, bool)
            cyst = np.zeros(volume.shape, bool)
            details = getattr(seg.reference, "unreliable_reasons", ())
            if "reference_unreliable" in seg_flags and details:
                # The graft stage's own finding first, then the generic cause and fix.
                reason = f"{'; '.join(details)} — {reason}"
            measurements = _unmeasured(measurements, reason)
            if "reference_unreliable" in seg_flags and details:
                measurements["reference_unreliable_reasons"] = list(details)
        timings["measure_s"] = time.perf_counter() - t0

    site_world = None if site is None else [float(v) for v in volume.voxel_to_world(site)]
    cord_snr = float(np.median(volume.data[cord.mask]) / noise.sigma) if noise.sigma > 0 else None
    summary: dict[str, Any] = {
        **measurements,
        "flags": sorted(set(flags) | set(seg_flags)),
        "scale": scale,
        "injection_site_mm": site_world,
        "injection_site_source": site_source,
        **summary_extra,
        "cord": {
            "source": cord.source,
            "confidence": cord.confidence,
            "flags": list(cord.flags),
            **{k: v for k, v in cord.details.items() if k != "per_slice"},
        },
        "preprocess": preprocess,
        "snr_cord": cord_snr,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "params": params,
    }
    return SessionResult(volume, cord, graft, cyst, summary)


def run_session(
    image: str | os.PathLike,
    out_prefix: str | os.PathLike,
    *,
    mode: Mode,
    config: PipelineConfig | None = None,
    load_options: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    study_params_hash: str | None = None,
    qc: bool = False,
    paths: dict[str, Path] | None = None,
    **options: Any,
) -> SessionResult:
    """Segment one image file and write masks and ``OUT_PREFIX_graft.json``.

    Masks are written in the input's own grid and orientation. Nothing is written unless the
    whole analysis succeeded; the JSON, with provenance, is written last.

    Parameters
    ----------
    image : path-like
        The session image.
    out_prefix : path-like
        Output prefix; its folder is created if needed.
    mode : {'iron', 't2'}
        Graft mode.
    config : PipelineConfig, optional
        Parameters.
    load_options : dict, optional
        Passed to :func:`load_volume` (``affine_from``, ``nonfinite``, ``volume_index``).
    extra : dict, optional
        Study facts stored in the JSON (subject, session, days since injection, flags).
    qc : bool
        Also write ``OUT_PREFIX_qc.png`` (mask contours over the image; needs matplotlib).
    study_params_hash : str, optional
        Hash of the study configuration, recorded so that reruns can skip finished sessions.
    paths : dict of str to Path, optional
        Where to write each output (the keys of :func:`output_paths`); default the names
        :func:`output_paths` gives ``out_prefix``.
    **options
        Passed to :func:`segment_volume` (injection site, cord routes).

    Returns
    -------
    SessionResult
    """
    t_start = time.perf_counter()
    config = config or PipelineConfig()
    load_options = dict(load_options or {})
    volume = load_volume(image, **load_options)
    load_s = time.perf_counter() - t_start
    companion_options = {k: v for k, v in load_options.items() if k != "volume_index"}
    result = segment_volume(
        volume, mode=mode, config=config, load_options=companion_options, **options
    )

    paths = {**output_paths(out_prefix), **(paths or {})}
    folder = paths["json"].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the output folder ({err})", path=folder) from None

    inputs = {"image": image}
    for key in ("cord_mask", "cord_from"):
        if options.get(key) is not None:
            inputs[key] = options[key]
    summary = dict(result.summary)
    summary["provenance"] = provenance_record(
        params={
            **summary.pop("params"),
            "mode": mode,
            "options": {k: v for k, v in options.items() if v is not None},
        },
        inputs=inputs,
    )
    summary["provenance"]["affine_source"] = volume.affine_source
    summary["provenance"]["qform_sform_max_displacement_mm"] = (
        volume.qform_sform_max_displacement_mm
    )
    if study_params_hash is not None:
        summary["provenance"]["study_params_hash"] = study_params_hash
    summary.update(extra or {})
    summary["outputs"] = {}
    t_write = time.perf_counter()
    save_like(result.graft_mask, volume, paths["graft_mask"], description="graftimg graft")
    save_like(result.cord.mask, volume, paths["cord_mask"], description="graftimg cord")
    summary["outputs"]["graft_mask"] = paths["graft_mask"].name
    summary["outputs"]["cord_mask"] = paths["cord_mask"].name
    if mode == "t2":
        save_like(result.cyst_mask, volume, paths["cyst_mask"], description="graftimg cyst")
        summary["outputs"]["cyst_mask"] = paths["cyst_mask"].name
    if qc:
        from graftimg.report.qc import qc_title, save_qc_png

        save_qc_png(
            paths["qc"],
            volume.data,
            spacing=volume.spacing,
            cord=result.cord.mask,
            graft=result.graft_mask,
            cyst=result.cyst_mask if mode == "t2" else None,
            title=qc_title(Path(image).name, summary),
        )
        summary["outputs"]["qc"] = paths["qc"].name
    summary["source"] = str(image)
    summary["timings_s"]["load_s"] = round(load_s, 3)
    summary["timings_s"]["write_s"] = round(time.perf_counter() - t_write, 3)
    summary["timings_s"]["total_s"] = round(time.perf_counter() - t_start, 3)
    write_json_atomic(paths["json"], record_json(summary), default=_json_default)
    return dataclasses.replace(result, summary=summary)


def json_ready(obj: Any) -> Any:
    """Replace NaN/Inf floats by None, recursively (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
