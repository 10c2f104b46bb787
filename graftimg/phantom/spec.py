"""Every parameter of a phantom study, with realistic defaults per scale and graft mode.

A :class:`PhantomSpec` holds the anatomy (cord, CSF, vertebral column, body outline), the graft
and its kinetics, the iron label, the acquisitions (one :class:`AcquisitionSpec` per image of a
session) and the session effects (bias field, noise, motion). It is frozen and validated when it
is built; :func:`default_spec` gives the defaults docs/phantom.md lists with their sources
(cord sizes: Sherman et al., *AJNR* 1990;11:369; Kato et al., *Eur Spine J* 2012;21:1499;
acquisitions: spine-generic, Cohen-Adad et al., *Nat Protoc* 2021;16:4611; Rician noise:
Gudbjartsson & Patz, *MRM* 1995;34:910).

Coordinates. The anatomy lives in a *subject frame* in mm whose origin is the injection site and
whose axes are anatomical R-L, A-P, S-I (RAS+: +x right, +y anterior, +z superior). For a rodent
the usual preclinical relabelling applies: ventral is "anterior", rostral is "superior". At the
first session the subject frame is the scanner frame shifted by ``injection_world_mm``; later
sessions add a small rigid motion. B0 is along scanner +z.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from graftimg.errors import ConfigError
from graftimg.modes import MODES, Mode
from graftimg.phantom.anatomy import check_geometry

__all__ = [
    "AcquisitionSpec",
    "Intensities",
    "PhantomSpec",
    "Scale",
    "default_spec",
]

Scale = Literal["human", "rodent"]

_AXIS_PAIRS = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


@dataclass(frozen=True)
class Intensities:
    """Relative signal of each tissue in one contrast (CSF on T2w = 1; air is always 0).

    Parameters
    ----------
    csf, white_matter, grey_matter, graft, cyst, soft_tissue, bone_marrow, bone_cortex, \
disc_nucleus, disc_annulus : float
        Noise-free, bias-free signal of each tissue, relative to CSF on T2w. ``graft`` is the
        unlabeled graft tissue in ``t2`` mode and the iron-laden cell deposit in ``iron`` mode
        (on a T2*w image the deposit lies inside the signal void and shows at the noise floor).
    """

    csf: float
    white_matter: float
    grey_matter: float
    graft: float
    cyst: float
    soft_tissue: float
    bone_marrow: float
    bone_cortex: float
    disc_nucleus: float
    disc_annulus: float

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"intensity {name}={value!r} must be finite and >= 0")


@dataclass(frozen=True)
class AcquisitionSpec:
    """One image of a session: grid, stored orientation, sequence and SNR.

    Parameters
    ----------
    suffix : {'T2w', 'T2starw'}
        BIDS suffix; ``T2starw`` images carry the iron blooming.
    shape : (3,) tuple of int
        Voxels along R-L, A-P, S-I (anatomical order, whatever the stored order).
    spacing_mm : (3,) tuple of float
        Voxel size in mm along R-L, A-P, S-I.
    orientation : str
        nibabel axis codes of the array as stored on disk (``'PSR'``: first axis runs toward
        posterior, second toward superior, third toward right, as Spinal Cord Toolbox's sagittal
        T2w; ``'LAS'``: axial radiological).
    fov_offset_mm : (3,) tuple of float
        Centre of the field of view minus the baseline injection site, in scanner mm (R, A, S).
    echo_time_s, repetition_time_s : float
        TE and TR in seconds (TE scales the iron blooming on T2*w).
    flip_angle_deg : float
        Excitation flip angle in degrees.
    snr : float
        Cord (white matter) signal divided by the Gaussian noise sigma of each channel.
    intensities : Intensities
        Tissue signals of this contrast.
    acquisition_type : {'2D', '3D'}
        BIDS ``MRAcquisitionType``; for 2D the slice axis is the thickest one.
    scanning_sequence : {'SE', 'GR'}
        BIDS ``ScanningSequence`` (spin echo for T2w, gradient recalled echo for T2*w).
    pulse_sequence : str
        Free-text description written as ``PulseSequenceType``.
    supersample : int
        Sub-samples per axis for partial volume along the finest axis (thicker axes get
        proportionally more, at most twice as many).
    """

    suffix: Literal["T2w", "T2starw"]
    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    orientation: str
    fov_offset_mm: tuple[float, float, float]
    echo_time_s: float
    repetition_time_s: float
    flip_angle_deg: float
    snr: float
    intensities: Intensities
    acquisition_type: Literal["2D", "3D"] = "3D"
    scanning_sequence: Literal["SE", "GR"] = "SE"
    pulse_sequence: str = ""
    supersample: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "spacing_mm", tuple(float(s) for s in self.spacing_mm))
        object.__setattr__(self, "fov_offset_mm", tuple(float(s) for s in self.fov_offset_mm))
        if self.suffix not in ("T2w", "T2starw"):
            raise ConfigError(f"suffix must be 'T2w' or 'T2starw', not {self.suffix!r}")
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ConfigError(f"{self.suffix}: shape {self.shape} must be 3 positive integers")
        if len(self.spacing_mm) != 3 or not all(
            math.isfinite(s) and s > 0 for s in self.spacing_mm
        ):
            raise ConfigError(f"{self.suffix}: spacing_mm {self.spacing_mm} must be 3 values > 0")
        if len(self.fov_offset_mm) != 3:
            raise ConfigError(f"{self.suffix}: fov_offset_mm needs 3 values")
        axis_codes(self.orientation)  # validates
        for name in ("echo_time_s", "repetition_time_s", "snr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{self.suffix}: {name}={value!r} must be > 0")
        if self.acquisition_type not in ("2D", "3D"):
            raise ConfigError(
                f"acquisition_type must be '2D' or '3D', not {self.acquisition_type!r}"
            )
        if self.scanning_sequence not in ("SE", "GR"):
            raise ConfigError(
                f"scanning_sequence must be 'SE' or 'GR', not {self.scanning_sequence!r}"
            )
        if not 1 <= self.supersample <= 8:
            raise ConfigError(f"supersample={self.supersample} must be between 1 and 8")

    @property
    def fov_mm(self) -> tuple[float, float, float]:
        """Field of view in mm along R-L, A-P, S-I."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing_mm, strict=True))

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³."""
        return math.prod(self.spacing_mm)


def axis_codes(orientation: str) -> tuple[tuple[int, int], ...]:
    """Parse nibabel axis codes into ``(world axis, sign)`` per stored axis.

    Raises
    ------
    ConfigError
        If the string is not a permutation of one letter of each pair R/L, A/P, S/I.
    """
    codes = str(orientation).upper()
    try:
        parsed = tuple(_AXIS_PAIRS[c] for c in codes)
    except KeyError:
        parsed = ()
    if len(parsed) != 3 or sorted(a for a, _ in parsed) != [0, 1, 2]:
        raise ConfigError(
            f"orientation {orientation!r} is not valid",
            hint="use three nibabel axis codes, one of each pair R/L, A/P, S/I, e.g. 'PSR'",
        )
    return parsed


@dataclass(frozen=True)
class PhantomSpec:
    """All parameters of a phantom subject; lengths in mm, times in days or seconds.

    Build one with :func:`default_spec` and change fields with :func:`dataclasses.replace`
    (or :meth:`with_acquisition` for an image). The spec is checked when it is built: the graft
    and cyst must lie inside the cord, the cyst must not touch the graft, and every object with
    an analytic volume must fit in every field of view.

    Parameters
    ----------
    mode : {'iron', 't2'}
        ``t2``: unlabeled graft, brighter than cord on T2w. ``iron``: iron-labeled cells, a dark
        blooming void on T2*w plus a same-session T2w where the deposit is mildly dark.
    scale : {'human', 'rodent'}
        Anatomical scale; sets the defaults.
    field_strength_T : float
        B0 in tesla.
    cord_ap_mm, cord_lr_mm : float
        Cord diameters (antero-posterior, left-right), perpendicular to the cord axis.
    csf_rim_mm : float
        Thickness of the CSF annulus around the cord.
    curvature_amplitude_mm, curvature_period_mm, curvature_phase_rad : float
        Sinusoidal antero-posterior displacement of the centerline along the cord axis
        (amplitude 0: straight). The centerline passes through the injection site.
    tilt_deg : float
        Rotation of the whole column about the R-L axis (in the sagittal plane), in degrees.
    grey_matter : bool
        Draw a grey-matter butterfly inside the cord.
    vertebra_period_mm, disc_height_mm : float
        Length of one vertebral segment (body + disc) and of the disc.
    vertebra_offset_mm : float
        Axial position of the injection site within its segment (0: top endplate).
    vertebral_body_ap_mm, vertebral_body_lr_mm, cortex_thickness_mm : float
        Size of the elliptical vertebral bodies (anterior to the canal) and their cortical shell.
    epidural_gap_mm : float
        Soft tissue between the CSF and bone.
    lamina_thickness_mm, spinous_length_mm, spinous_width_mm : float
        Posterior arch: laminae and pedicles around the canal, spinous process behind it.
    body_lr_mm, body_ap_mm, body_offset_ap_mm : float
        Body (neck or trunk) outline, an ellipse centred ``body_offset_ap_mm`` anterior to the
        injection site; outside is air.
    graft_volume0_mm3, graft_volume_inf_mm3, graft_rate_per_day : float
        Graft volume law ``V(t) = V∞ + (V0 − V∞)·exp(−λ t)``, t in days since injection.
    graft_aspect : (3,) tuple of float
        Relative semi-axes of the ``t2`` graft ellipsoid (R-L, A-P, along the cord). The
        ``iron`` deposit is a sphere (so its void volume stays a 1-D integral under rotation).
    cyst_volume_mm3, cyst_gap_mm : float
        Spherical CSF-like cyst caudal to the graft (0: none), separated from the largest
        graft by ``cyst_gap_mm``.
    cells_injected : int
        Number of cells injected (recorded in ``participants.tsv``).
    iron_pg_per_cell, iron_persistent_fraction, iron_rate_per_day : float
        Iron per cell, and the iron law ``m(t) = m0·(f + (1 − f)·exp(−λ_Fe t))`` (iron persists
        in macrophages while the cells die).
    magnetization_am2_per_kg : float
        Saturation magnetization per kg of iron (moment = mass × magnetization).
    void_phase_rad : float
        Phase above which the GRE signal is fully dephased (defines the blooming void).
    injection_world_mm : (3,) tuple of float
        Scanner RAS position of the injection site at the first session.
    t2w, t2starw : AcquisitionSpec or None
        The images of a session; ``t2starw`` is required in ``iron`` mode.
    bias_amplitude : float
        The multiplicative bias field spans ``[1/(1+a), 1+a]`` (0: no bias).
    bias_order : int
        Order of the Legendre polynomial of the log bias field.
    bias_scale_mm : float
        Half-size of the cube over which the bias polynomial is normalised.
    max_rotation_deg, max_translation_mm : float
        Bounds of the rigid motion of later sessions relative to the first.
    session_days : tuple of float
        Default days since injection of successive sessions.
    signal_scale : float
        Stored value of CSF on T2w (images are written as int16).
    """

    mode: Mode
    scale: Scale
    field_strength_T: float
    cord_ap_mm: float
    cord_lr_mm: float
    csf_rim_mm: float
    curvature_amplitude_mm: float
    curvature_period_mm: float
    curvature_phase_rad: float
    tilt_deg: float
    grey_matter: bool
    vertebra_period_mm: float
    disc_height_mm: float
    vertebra_offset_mm: float
    vertebral_body_ap_mm: float
    vertebral_body_lr_mm: float
    cortex_thickness_mm: float
    epidural_gap_mm: float
    lamina_thickness_mm: float
    spinous_length_mm: float
    spinous_width_mm: float
    body_lr_mm: float
    body_ap_mm: float
    body_offset_ap_mm: float
    graft_volume0_mm3: float
    graft_volume_inf_mm3: float
    graft_rate_per_day: float
    graft_aspect: tuple[float, float, float]
    cyst_volume_mm3: float
    cyst_gap_mm: float
    cells_injected: int
    iron_pg_per_cell: float
    iron_persistent_fraction: float
    iron_rate_per_day: float
    magnetization_am2_per_kg: float
    void_phase_rad: float
    injection_world_mm: tuple[float, float, float]
    t2w: AcquisitionSpec
    t2starw: AcquisitionSpec | None
    bias_amplitude: float
    bias_order: int
    bias_scale_mm: float
    max_rotation_deg: float
    max_translation_mm: float
    session_days: tuple[float, ...]
    signal_scale: float = 1000.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "graft_aspect", tuple(float(a) for a in self.graft_aspect))
        object.__setattr__(
            self, "injection_world_mm", tuple(float(a) for a in self.injection_world_mm)
        )
        object.__setattr__(self, "session_days", tuple(float(d) for d in self.session_days))
        self._validate()

    # -- convenience -------------------------------------------------------------------------
    @property
    def acquisitions(self) -> tuple[AcquisitionSpec, ...]:
        """The images of one session, T2w first."""
        return (self.t2w,) if self.t2starw is None else (self.t2w, self.t2starw)

    def with_acquisition(self, suffix: str, **changes: Any) -> PhantomSpec:
        """Return a copy with fields of the ``suffix`` acquisition changed.

        Examples
        --------
        >>> spec = default_spec("human", "t2").with_acquisition("T2w", snr=40.0)
        >>> spec.t2w.snr
        40.0
        """
        name = {"T2w": "t2w", "T2starw": "t2starw"}.get(suffix)
        current = None if name is None else getattr(self, name)
        if current is None:
            raise ConfigError(f"this spec has no {suffix!r} acquisition")
        return dataclasses.replace(self, **{name: dataclasses.replace(current, **changes)})

    @property
    def cord_semi_axes_mm(self) -> tuple[float, float]:
        """Cord semi-axes (R-L, A-P) in mm."""
        return self.cord_lr_mm / 2.0, self.cord_ap_mm / 2.0

    @property
    def canal_semi_axes_mm(self) -> tuple[float, float]:
        """Semi-axes (R-L, A-P) in mm of the dural sac (cord + CSF rim)."""
        a_u, a_v = self.cord_semi_axes_mm
        return a_u + self.csf_rim_mm, a_v + self.csf_rim_mm

    # -- validation --------------------------------------------------------------------------
    def _validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be 'iron' or 't2', not {self.mode!r}")
        if self.scale not in ("human", "rodent"):
            raise ConfigError(f"scale must be 'human' or 'rodent', not {self.scale!r}")
        positive = [
            "field_strength_T",
            "cord_ap_mm",
            "cord_lr_mm",
            "csf_rim_mm",
            "curvature_period_mm",
            "vertebra_period_mm",
            "disc_height_mm",
            "vertebral_body_ap_mm",
            "vertebral_body_lr_mm",
            "cortex_thickness_mm",
            "epidural_gap_mm",
            "lamina_thickness_mm",
            "spinous_length_mm",
            "spinous_width_mm",
            "body_lr_mm",
            "body_ap_mm",
            "graft_volume0_mm3",
            "graft_volume_inf_mm3",
            "magnetization_am2_per_kg",
            "void_phase_rad",
            "bias_scale_mm",
            "signal_scale",
        ]
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}={value!r} must be finite and > 0")
        non_negative = [
            "curvature_amplitude_mm",
            "graft_rate_per_day",
            "cyst_volume_mm3",
            "cyst_gap_mm",
            "iron_pg_per_cell",
            "iron_rate_per_day",
            "bias_amplitude",
            "max_rotation_deg",
            "max_translation_mm",
            "cells_injected",
        ]
        for name in non_negative:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name}={value!r} must be finite and >= 0")
        if not 0.0 <= self.iron_persistent_fraction <= 1.0:
            raise ConfigError(
                f"iron_persistent_fraction={self.iron_persistent_fraction} must be in [0, 1]"
            )
        if abs(self.tilt_deg) > 45:
            raise ConfigError(f"tilt_deg={self.tilt_deg} must be within ±45°")
        if self.disc_height_mm >= self.vertebra_period_mm:
            raise ConfigError("disc_height_mm must be shorter than vertebra_period_mm")
        if len(self.graft_aspect) != 3 or min(self.graft_aspect) <= 0:
            raise ConfigError(f"graft_aspect {self.graft_aspect} must be 3 values > 0")
        if len(self.injection_world_mm) != 3:
            raise ConfigError("injection_world_mm needs 3 values")
        if not 0 <= self.bias_order <= 6:
            raise ConfigError(f"bias_order={self.bias_order} must be between 0 and 6")
        if self.t2w.suffix != "T2w":
            raise ConfigError("the t2w acquisition must have suffix 'T2w'")
        if self.t2starw is not None and self.t2starw.suffix != "T2starw":
            raise ConfigError("the t2starw acquisition must have suffix 'T2starw'")
        if self.mode == "iron" and self.t2starw is None:
            raise ConfigError(
                "iron mode needs a T2*w acquisition", hint="set t2starw=AcquisitionSpec(...)"
            )
        if self.mode == "iron" and self.cells_injected * self.iron_pg_per_cell <= 0:
            raise ConfigError("iron mode needs cells_injected > 0 and iron_pg_per_cell > 0")
        if any(not math.isfinite(d) or d < 0 for d in self.session_days):
            raise ConfigError(f"session_days {self.session_days} must be >= 0")
        # Geometry that makes the analytic truth exact.
        check_geometry(self)


# -- defaults (presets.json) ---------------------------------------------------------------


@functools.cache
def _presets() -> dict[str, Any]:
    """The default parameters per scale and mode, shipped as ``presets.json``."""
    text = resources.files("graftimg.phantom").joinpath("presets.json").read_text("utf-8")
    return json.loads(text)


def _tuples(value: Any) -> Any:
    """JSON lists as tuples (the spec's sequences are tuples), recursively."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _preset(scale: str, mode: str) -> dict[str, Any]:
    data = _presets()
    preset = data[scale]
    values = _tuples({**preset["common"], **preset["by_mode"][mode]})
    levels = data["intensities"]
    # On a spin-echo T2w the iron deposit is only mildly dark (no blooming: refocused).
    t2w_levels = Intensities(**{**levels["T2w"], "graft": levels["T2w_graft_by_mode"][mode]})
    acquisitions = _tuples(preset["acquisitions"])
    values["t2w"] = AcquisitionSpec(**acquisitions["T2w"], intensities=t2w_levels)
    values["t2starw"] = (
        AcquisitionSpec(**acquisitions["T2starw"], intensities=Intensities(**levels["T2starw"]))
        if mode == "iron"
        else None
    )
    return values


def default_spec(scale: Scale | None = None, mode: Mode = "t2", **changes: Any) -> PhantomSpec:
    """Return the default phantom of a scale and graft mode, with optional changes.

    Parameters
    ----------
    scale : {'human', 'rodent'}, optional
        Default: ``'rodent'`` for ``iron`` (preclinical SPIO studies), ``'human'`` for ``t2``.
    mode : {'t2', 'iron'}
        Graft mode.
    **changes
        Any :class:`PhantomSpec` field.

    Returns
    -------
    PhantomSpec

    Raises
    ------
    ConfigError
        For an unknown scale, mode or field, or an inconsistent geometry.

    Examples
    --------
    >>> spec = default_spec(mode="iron")
    >>> spec.scale, spec.t2starw.spacing_mm, spec.t2starw.orientation
    ('rodent', (0.1, 0.1, 0.4), 'LAS')
    >>> default_spec("human", "t2", tilt_deg=10.0).tilt_deg
    10.0
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be 'iron' or 't2', not {mode!r}")
    if scale is None:
        scale = "rodent" if mode == "iron" else "human"
    if scale not in ("human", "rodent"):
        raise ConfigError(f"scale must be 'human' or 'rodent', not {scale!r}")
    values = _preset(scale, mode)
    known = {f.name for f in dataclasses.fields(PhantomSpec) if not f.name.startswith("_")}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(f"unknown phantom parameter(s): {', '.join(unknown)}")
    values.update(changes)
    return PhantomSpec(mode=mode, **values)
