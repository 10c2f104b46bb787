"""The stages of one session's analysis, each a function returning a typed record.

The chain, which :func:`graftimg.pipeline.session.segment_volume` runs:

1. :func:`start_preprocessing`: the body mask and N4 start in a worker thread
   (:class:`Background`);
2. :func:`find_cord`: the cord by its route, and its centerline (:class:`SessionCord`);
3. :func:`prepare_image`: noise σ, the bias-corrected and normalised image
   (:class:`PreparedImage`);
4. :func:`place_injection_site`: the site given, or proposed, kept on the cord
   (:class:`InjectionSite`);
5. :func:`find_graft`: graft and cyst voxels around the site (:class:`GraftFound`);
6. :func:`measure_session`: volumes with their band, lesion metrics, components, or ``null``
   volumes with the reason (:class:`MeasuredGraft`);
7. :func:`session_summary`: the JSON-ready summary of the session.

Each stage is a plain function of the records before it; none writes a file.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

import numpy as np

from graftimg.errors import SegmentationError
from graftimg.io.volume import Volume
from graftimg.modes import Mode
from graftimg.pipeline.config import PipelineConfig
from graftimg.pipeline.cord import CordResult, cord_for_session

if TYPE_CHECKING:
    from graftimg.segment.centerline import Centerline
    from graftimg.segment.graft import GraftParams, GraftSegmentation

__all__ = [
    "NULL_VOLUME_KEYS",
    "NULL_VOLUME_REASONS",
    "Background",
    "GraftFound",
    "InjectionSite",
    "MeasuredGraft",
    "PreparedImage",
    "SessionCord",
    "cord_narrows_at",
    "find_cord",
    "find_graft",
    "measure_session",
    "null_volume_reason",
    "place_injection_site",
    "prepare_image",
    "session_summary",
    "start_preprocessing",
]

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
    "graft_volume_low_mask_mm3",
    "graft_volume_high_mask_mm3",
    "surface_band_mm3",
    "graft_contrast_to_noise",
    "void_volume_per_echo_time_mm3_per_ms",
)

#: Cord flags under which "nothing found" is no finding (the search may have missed the site).
_DOUBTFUL_CORD_FLAGS = frozenset(
    {"cord_uncertain", "cord_bends_around_abnormality", "cord_narrows_at_site"}
)

#: Why a graft volume is ``null``, per cause: what went wrong, then what to do.
NULL_VOLUME_REASONS = {
    "reference_unreliable": (
        "no trustworthy normal-appearing cord to compare the graft with: give a field of view "
        "that covers normal cord beyond the graft, or check the cord mask"
    ),
    "cord_uncertain": (
        "nothing was found, but the automatic cord is doubtful where the graft was looked for "
        "(a dark or bright graft can push the contour aside and leave the graft outside the "
        "search): check the cord on the QC picture, or give a cord mask with --cord-mask"
    ),
    "site_outside_cord": (
        "the injection site lies outside the cord, so the graft was not looked for where it "
        "was injected: check the injection site, or give a cord mask that holds the graft "
        "with --cord-mask"
    ),
}


# -- records ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Background:
    """The body mask and N4, running in a worker thread while the cord is found.

    Each future gives ``(result, wall time in s)``; ``bias`` is None without bias correction.
    """

    body: Future
    bias: Future | None


@dataclasses.dataclass(frozen=True, eq=False)
class SessionCord:
    """The cord stage: the cord by its route (:class:`CordResult`) and its centerline."""

    cord: CordResult
    centerline: Centerline

    @property
    def mask(self) -> np.ndarray:
        """The cord mask (canonical grid)."""
        return self.cord.mask


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedImage:
    """The image the graft is searched in, with its noise level.

    Attributes
    ----------
    image : ndarray
        Bias-corrected and normalised as configured (the raw data otherwise).
    noise_sigma : float
        Noise σ in the units of ``image``.
    raw_noise_sigma : float
        Noise σ of the raw image.
    record : dict
        What was done, as the session JSON's ``preprocess``.
    timings : dict of str to float
        ``body_s``, ``bias_s`` (the worker thread's own times) and ``bias_wait_s``.
    """

    image: np.ndarray
    noise_sigma: float
    raw_noise_sigma: float
    record: dict[str, Any]
    timings: dict[str, float]


@dataclasses.dataclass(frozen=True, eq=False)
class InjectionSite:
    """Where the graft is looked for: a canonical voxel (or None: nowhere) and its origin.

    ``source`` is ``given``, ``registration`` or ``proposed``; ``score`` is the proposal's score
    (None when the site was given).
    """

    voxel: np.ndarray | None
    source: str
    flags: tuple[str, ...] = ()
    score: float | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class GraftFound:
    """The graft stage: graft and cyst masks and the segmentation (None: no site to search)."""

    graft_mask: np.ndarray
    cyst_mask: np.ndarray
    segmentation: GraftSegmentation | None
    flags: tuple[str, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class MeasuredGraft:
    """The measure stage: the masks to write (empty when nothing could be measured) and values."""

    graft_mask: np.ndarray
    cyst_mask: np.ndarray
    values: dict[str, Any]


# -- stages -----------------------------------------------------------------------------------
def _timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``function(*args, **kwargs)`` and its wall time in seconds."""
    t0 = time.perf_counter()
    return function(*args, **kwargs), time.perf_counter() - t0


def start_preprocessing(
    volume: Volume, config: PipelineConfig, params: dict[str, Any], pool: Executor
) -> Background:
    """Submit the body mask and N4 to ``pool`` (NumPy, SciPy and SimpleITK release the GIL).

    Parameters
    ----------
    volume : Volume
        The session image.
    config : PipelineConfig
        Parameters.
    params : dict
        The resolved parameters (:meth:`PipelineConfig.resolved`).
    pool : Executor
        A one-worker pool: N4 waits for the body mask it is fitted in.

    Returns
    -------
    Background
    """
    from graftimg.preprocess.bias import correct_bias
    from graftimg.preprocess.body import body_mask

    spacing = volume.spacing
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
    return Background(body_job, bias_job)


def find_cord(
    volume: Volume,
    *,
    config: PipelineConfig,
    scale: str,
    cord_mask: Any = None,
    cord_from: Any = None,
    seed_voxel: tuple[float, ...] | None = None,
    load_options: dict[str, Any] | None = None,
) -> SessionCord:
    """The cord of the session by its route, and its centerline.

    Parameters are those of :func:`graftimg.pipeline.cord.cord_for_session`.

    Returns
    -------
    SessionCord

    Raises
    ------
    SegmentationError
        When no cord was found.
    """
    from graftimg.segment.centerline import fit_centerline

    cord = cord_for_session(
        volume,
        cord_mask=cord_mask,
        cord_from=cord_from,
        seed_voxel=seed_voxel,
        contrast=config.cord.contrast,
        scale=scale,
        refine_registration=config.cord.refine_registration,
        load_options=load_options,
    )
    if not cord.mask.any():
        raise SegmentationError(
            "no cord was found",
            path=volume.source,
            hint="give a cord mask (--cord-mask), a companion (--cord-from) or a seed",
        )
    return SessionCord(cord, fit_centerline(cord.mask, spacing=volume.spacing))


def prepare_image(
    volume: Volume, cord: SessionCord, background: Background, config: PipelineConfig
) -> PreparedImage:
    """Noise σ on the raw image, then the bias-corrected image normalised by the cord's median.

    Parameters
    ----------
    volume : Volume
        The session image.
    cord : SessionCord
        The cord (the normalisation's reference).
    background : Background
        The body mask and N4 started by :func:`start_preprocessing` (waited for here).
    config : PipelineConfig
        Parameters.

    Returns
    -------
    PreparedImage
    """
    from graftimg.preprocess.noise import estimate_noise

    timings: dict[str, float] = {}
    body, timings["body_s"] = background.body.result()
    noise = estimate_noise(volume.data, spacing=volume.spacing, body=body)
    record: dict[str, Any] = {
        "bias_correction": False,
        "noise_sigma": float(noise.sigma),
        "noise_method": noise.method,
    }
    image = volume.data
    if background.bias is not None:
        t_wait = time.perf_counter()
        corrected, timings["bias_s"] = background.bias.result()
        timings["bias_wait_s"] = time.perf_counter() - t_wait
        image = corrected.image
        field_in_body = corrected.field[corrected.mask]
        record.update(
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
        record["normalization_factor"] = float(normalized.factor)
        record["normalization"] = "divided by the median of the cord"
    return PreparedImage(image, noise_sigma, float(noise.sigma), record, timings)


def place_injection_site(
    prepared: PreparedImage,
    cord: SessionCord,
    site_voxel: np.ndarray | None,
    *,
    source: str,
    mode: Mode,
    graft_params: GraftParams,
    spacing: tuple[float, float, float],
) -> InjectionSite:
    """The site given, or the most abnormal cord region when none is; kept on a cord slice.

    Parameters
    ----------
    prepared : PreparedImage
        The image the proposal searches.
    cord : SessionCord
        The cord.
    site_voxel : ndarray or None
        The site given, as a canonical voxel.
    source : str
        Where a given site comes from (``given``, ``registration``).
    mode : {'iron', 't2'}
        Graft mode.
    graft_params : GraftParams
        Thresholds of the proposal (``k_sigma``, ``min_component_volume_mm3``).
    spacing : tuple of 3 float
        Voxel size in mm.

    Returns
    -------
    InjectionSite
        Flags ``injection_site_automatic`` (proposed) and ``site_moved_onto_cord`` (a site a
        few slices past the cord's end, moved to its nearest slice).
    """
    from graftimg.segment.injection import propose_injection_site

    site = site_voxel
    flags: list[str] = []
    score = None
    if site is None:
        proposed, site_score = propose_injection_site(
            prepared.image,
            cord.mask,
            spacing=spacing,
            mode=mode,
            k_sigma=graft_params.k_sigma,
            min_cluster_volume_mm3=graft_params.min_component_volume_mm3,
        )
        source = "proposed"
        flags.append("injection_site_automatic")
        score = float(site_score)
        site = None if proposed is None else np.asarray(proposed, dtype=float)
    cord_slices = np.flatnonzero(cord.mask.any(axis=(0, 1)))
    if site is not None and not cord.mask[:, :, int(np.clip(round(site[2]), 0, None))].any():
        # Keep the site's slice on the cord (a site a few slices past the cord's end).
        nearest = cord_slices[np.argmin(np.abs(cord_slices - site[2]))]
        flags.append("site_moved_onto_cord")
        site = np.array([site[0], site[1], float(nearest)])
    return InjectionSite(site, source, tuple(flags), score)


def find_graft(
    prepared: PreparedImage,
    cord: SessionCord,
    site: InjectionSite,
    *,
    mode: Mode,
    graft_params: GraftParams,
    spacing: tuple[float, float, float],
) -> GraftFound:
    """Graft (and cyst) voxels around the site (:func:`graftimg.segment.graft.segment_graft`).

    Returns
    -------
    GraftFound
        Without a site, empty masks, no segmentation and the flag ``no_graft_found``.
    """
    from graftimg.segment.graft import segment_graft

    shape = prepared.image.shape
    if site.voxel is None:
        empty = np.zeros(shape, bool)
        return GraftFound(empty, np.zeros(shape, bool), None, ("no_graft_found",))
    seg = segment_graft(
        prepared.image,
        cord.mask,
        cord.centerline.along_cord_mm(float(site.voxel[2])),
        tuple(site.voxel),
        spacing=spacing,
        mode=mode,
        params=graft_params,
        noise_sigma=prepared.noise_sigma,
    )
    flags = seg.flags
    automatic = cord.cord.source != "mask"  # a cord mask given by the user is not doubted
    if automatic and cord_narrows_at(cord.mask, float(site.voxel[2]), spacing=spacing):
        flags = tuple(sorted({*flags, "cord_narrows_at_site"}))
    return GraftFound(seg.graft_mask, seg.cyst_mask, seg, flags)


#: Slices within this distance of the site (mm) are "at the site"; the cord's usual
#: cross-section is the median over the slices between the two distances on either side.
_SITE_HALF_MM, _AROUND_MM = (2.0, (5.0, 15.0))
#: At the site, a cross-section under this fraction of the usual one is a narrowing.
_NARROW_RATIO = 0.5


def cord_narrows_at(
    cord: np.ndarray, site_z: float, *, spacing: tuple[float, float, float]
) -> bool:
    """Whether the cord's cross-section at the site is under half of its usual size around it.

    A dark void (or bright graft) that the automatic contour went around, or shrank onto,
    leaves the cord pinched at the site: on a real T2*w an inserted void was then the whole
    cord at the site, nothing was found and 0 was reported.

    Examples
    --------
    >>> cord = np.zeros((9, 9, 41), bool)
    >>> cord[2:7, 2:7, :] = True
    >>> cord_narrows_at(cord, 20.0, spacing=(1.0, 1.0, 1.0))
    False
    >>> cord[2:7, 2:7, 19:22] = False
    >>> cord[4, 4, 19:22] = True
    >>> cord_narrows_at(cord, 20.0, spacing=(1.0, 1.0, 1.0))
    True
    """
    area = cord.sum(axis=(0, 1)).astype(float)
    distance = np.abs(np.arange(cord.shape[2]) - site_z) * spacing[2]
    at_site = (distance <= max(_SITE_HALF_MM, 0.5 * spacing[2])) & (area > 0)
    around = (distance >= _AROUND_MM[0]) & (distance <= _AROUND_MM[1]) & (area > 0)
    if not at_site.any() or not around.any():
        return False
    return bool(area[at_site].min() < _NARROW_RATIO * np.median(area[around]))


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


def null_volume_reason(flags: Any, *, n_graft_voxels: int, cord_flags: Any = ()) -> str | None:
    """Why the graft volume cannot be given, or None when it was measured.

    Parameters
    ----------
    flags : iterable of str
        Flags of the graft stage (with ``cord_narrows_at_site``, the cord's doubt at the site).
    n_graft_voxels : int
        Graft voxels found.
    cord_flags : iterable of str, optional
        Flags of the cord (the automatic cord's doubts).

    Returns
    -------
    str or None
        A short sentence naming the cause and the fix (:data:`NULL_VOLUME_REASONS`), or None.
        ``reference_unreliable`` always voids the measurement (the threshold has no basis);
        ``site_outside_cord`` voids it only when nothing was found (the search did not reach
        the site, so finding nothing says nothing about the graft). A doubtful automatic
        cord (``cord_uncertain``, ``cord_bends_around_abnormality``, ``cord_narrows_at_site``)
        voids it only when nothing was found: on real T2*w with thick slices the contour
        sometimes went around an inserted void, which was then outside the search and reported
        as 0.

    Examples
    --------
    >>> null_volume_reason(["no_graft_found"], n_graft_voxels=0) is None
    True
    >>> null_volume_reason(["site_outside_cord"], n_graft_voxels=12) is None
    True
    >>> null_volume_reason(["reference_unreliable"], n_graft_voxels=12).split(":")[0]
    'no trustworthy normal-appearing cord to compare the graft with'
    >>> null_volume_reason(["no_graft_found"], n_graft_voxels=0, cord_flags=["cord_uncertain"])
    'nothing was found, but the automatic cord is doubtful where the graft was looked for ...'
    """
    flags = set(flags)
    if "reference_unreliable" in flags:
        return NULL_VOLUME_REASONS["reference_unreliable"]
    if "site_outside_cord" in flags and n_graft_voxels == 0:
        return NULL_VOLUME_REASONS["site_outside_cord"]
    if n_graft_voxels == 0 and _DOUBTFUL_CORD_FLAGS & {*flags, *cord_flags}:
        return NULL_VOLUME_REASONS["cord_uncertain"]
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


def measure_session(
    volume: Volume,
    prepared: PreparedImage,
    cord: SessionCord,
    found: GraftFound,
    *,
    mode: Mode,
) -> MeasuredGraft:
    """Volumes with their band, lesion metrics and components of the graft found.

    Returns
    -------
    MeasuredGraft
        Without a segmentation, zero volumes (nothing was found). When the graft cannot be
        measured (:func:`null_volume_reason`), empty masks, ``null`` volumes
        (:data:`NULL_VOLUME_KEYS`) and ``graft_volume_null_reason`` (with
        ``reference_unreliable_reasons``, the graft stage's own findings, when it gives them).
    """
    from graftimg.measure.graft import measure_graft

    seg = found.segmentation
    if seg is None:
        values = _empty_measurements(volume, cord.mask, mode)
        return MeasuredGraft(found.graft_mask, found.cyst_mask, values)
    graft, cyst = found.graft_mask, found.cyst_mask
    values = measure_graft(
        prepared.image,
        seg,
        cord.mask,
        spacing=volume.spacing,
        centerline=cord.centerline,
        noise_sigma=prepared.noise_sigma,
        metadata=volume.metadata,
    )
    values["components"] = _components_in_scanner_mm(volume, values.get("components", []))
    values["reference_n_voxels"] = int(seg.reference.n_voxels)
    # Which route the normal-cord reference took and what it left out (issue 8).
    values["reference_region"] = seg.reference.region
    values["reference_excluded_voxels"] = int(seg.reference.excluded_voxels)
    reason = null_volume_reason(
        found.flags, n_graft_voxels=int(graft.sum()), cord_flags=cord.cord.flags
    )
    if reason is not None:
        # Nothing trustworthy to write: empty masks, null volumes, the reason said.
        graft = np.zeros(volume.shape, bool)
        cyst = np.zeros(volume.shape, bool)
        details = getattr(seg.reference, "unreliable_reasons", ())
        if "reference_unreliable" in seg.flags and details:
            # The graft stage's own finding first, then the generic cause and fix.
            reason = f"{'; '.join(details)} — {reason}"
        values = _unmeasured(values, reason)
        if "reference_unreliable" in seg.flags and details:
            values["reference_unreliable_reasons"] = list(details)
    return MeasuredGraft(graft, cyst, values)


def session_summary(
    volume: Volume,
    cord: SessionCord,
    prepared: PreparedImage,
    site: InjectionSite,
    found: GraftFound,
    measured: MeasuredGraft,
    *,
    scale: str,
    params: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The session's summary: measurements, flags, site, cord, preprocessing, SNR, timings.

    Returns
    -------
    dict
        The keys of the session JSON before provenance and outputs are added.
    """
    flags = {*cord.cord.flags, *site.flags, *found.flags}
    site_world = None
    if site.voxel is not None:
        site_world = [float(v) for v in volume.voxel_to_world(site.voxel)]
    sigma = prepared.raw_noise_sigma
    cord_snr = float(np.median(volume.data[cord.mask]) / sigma) if sigma > 0 else None
    return {
        **measured.values,
        "flags": sorted(flags),
        "scale": scale,
        "injection_site_mm": site_world,
        "injection_site_source": site.source,
        **({} if site.score is None else {"injection_site_score": site.score}),
        "cord": {
            "source": cord.cord.source,
            "confidence": cord.cord.confidence,
            "flags": list(cord.cord.flags),
            **{k: v for k, v in cord.cord.details.items() if k != "per_slice"},
        },
        "preprocess": prepared.record,
        "snr_cord": cord_snr,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "params": params,
    }
