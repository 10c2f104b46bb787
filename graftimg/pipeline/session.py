"""One session end to end: load → preprocess → cord → injection window → graft → measure → write.

This module is where stages are chained: :func:`segment_volume` runs the stage functions of
:mod:`graftimg.pipeline.stages`, each returning a typed record, and :func:`run_session` loads
the image and writes the results. Nothing is written until every step has succeeded, every
write is atomic, and the JSON is written last: its presence (with matching parameter and input
hashes) marks a finished session.
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
from graftimg.pipeline.cord import CordResult
from graftimg.pipeline.stages import (
    NULL_VOLUME_KEYS,
    NULL_VOLUME_REASONS,
    find_cord,
    find_graft,
    measure_session,
    null_volume_reason,
    place_injection_site,
    prepare_image,
    session_summary,
    start_preprocessing,
)
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
    spacing = volume.spacing

    site = _site_voxel(volume, injection_world, injection_voxel)
    seed = None
    if cord_seed_world is not None:
        seed = tuple(float(v) for v in volume.world_to_voxel(cord_seed_world))
    elif cord_seed_voxel is not None:
        seed = tuple(float(v) for v in volume.stored_to_canonical_index(cord_seed_voxel))

    # The body mask and N4 run in a worker thread while the cord is found on the raw image
    # (on two cores they cost little wall time); the noise estimate and the normalisation
    # after the cord use their results.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="graftimg-preprocess") as pool:
        background = start_preprocessing(volume, config, params, pool)
        t0 = time.perf_counter()
        cord = find_cord(
            volume,
            config=config,
            scale=scale,
            cord_mask=cord_mask,
            cord_from=cord_from,
            seed_voxel=seed,
            load_options=load_options,
        )
        timings["cord_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        prepared = prepare_image(volume, cord, background, config)
    timings.update(prepared.timings)
    timings["preprocess_s"] = time.perf_counter() - t0  # noise, waits, normalisation

    t0 = time.perf_counter()
    placed = place_injection_site(
        prepared,
        cord,
        site,
        source=injection_site_source,
        mode=mode,
        graft_params=graft_params,
        spacing=spacing,
    )
    found = find_graft(
        prepared, cord, placed, mode=mode, graft_params=graft_params, spacing=spacing
    )
    timings["graft_s"] = time.perf_counter() - t0  # with the site proposal
    t0 = time.perf_counter()
    measured = measure_session(volume, prepared, cord, found, mode=mode)
    if found.segmentation is not None:
        timings["measure_s"] = time.perf_counter() - t0

    summary = session_summary(
        volume,
        cord,
        prepared,
        placed,
        found,
        measured,
        scale=scale,
        params=params,
        timings=timings,
    )
    return SessionResult(volume, cord.cord, measured.graft_mask, measured.cyst_mask, summary)


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
