"""Render one phantom session: partial volume by supersampling, bias field, Rician noise.

Each image has a fixed grid (affine and stored orientation from its
:class:`~graftimg.phantom.spec.AcquisitionSpec`); the anatomy is moved by the session's rigid
motion in scanner coordinates and sampled on that grid. Partial volume is exact up to the
sub-sampling: a voxel whose 8 corners and centre all fall in one tissue takes that tissue's
value; every other voxel, and every neighbour of a voxel on the boundary of the cord, graft,
cyst or void, averages ``n0·n1·n2`` sub-samples (4 per axis on the finest axis by default, up to
twice as many on thick-slice axes), in chunks of at most 1.5 million points. Near an iron
deposit every voxel is sub-sampled and the GRE signal is the magnitude of the *complex* mean of
``ρ·exp(iφ)`` over the voxel, so thick slices show the extra through-slice dephasing of real
data.

The truth masks are the sub-sample occupancies thresholded at 0.5; the truth volumes are
analytic (:class:`SessionTruth`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from scipy import ndimage

from graftimg.phantom.anatomy import (
    CORD_LABELS,
    CYST,
    GRAFT,
    LABEL_NAMES,
    Anatomy,
    anatomy_at,
    transform_columns,
)
from graftimg.phantom.bias import BiasField
from graftimg.phantom.iron import (
    dipole_constant_mm3,
    dipole_phase_xyz,
    in_void_xyz,
    iron_moment_am2,
    void_volume_mm3,
)
from graftimg.phantom.kinetics import iron_mass_ug
from graftimg.phantom.motion import RigidMotion
from graftimg.phantom.noise import add_rician_noise
from graftimg.phantom.spec import AcquisitionSpec, PhantomSpec, axis_codes

__all__ = [
    "PhantomImage",
    "SessionPhantom",
    "SessionTruth",
    "grid_affine",
    "render_image",
    "render_session",
    "supersample_factors",
]

_VOID_BIT = 16
_MAX_POINTS = 1_500_000  # sub-samples evaluated at once (memory ~ 100 MB)
_PHASE_STEP_RAD = 0.25  # largest dipole-phase change across a voxel left un-sub-sampled
_INT16_MAX = 32767


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def grid_affine(acquisition: AcquisitionSpec, center_mm) -> tuple[np.ndarray, tuple[int, ...]]:
    """Affine and stored shape of an acquisition whose FOV is centred on ``center_mm``.

    Parameters
    ----------
    acquisition : AcquisitionSpec
        Shape and spacing (anatomical order) and stored orientation.
    center_mm : (3,) array_like
        Scanner position of the FOV centre.

    Returns
    -------
    affine : (4, 4) ndarray
        Voxel index (as stored) to scanner RAS mm; axis-aligned, flips and permutations only.
    shape : tuple of int
        Array shape as stored.

    Examples
    --------
    >>> from graftimg.phantom.spec import default_spec
    >>> affine, shape = grid_affine(default_spec("human", "t2").t2w, (0.0, 0.0, 0.0))
    >>> shape, affine[:3, :3].tolist()
    ((96, 120, 48), [[0.0, 0.0, 0.8], [-0.8, 0.0, 0.0], [0.0, 0.8, 0.0]])
    """
    codes = axis_codes(acquisition.orientation)
    matrix = np.zeros((3, 3))
    shape = []
    for i, (world, sign) in enumerate(codes):
        matrix[world, i] = sign * acquisition.spacing_mm[world]
        shape.append(acquisition.shape[world])
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = np.asarray(center_mm, dtype=float) - matrix @ ((np.asarray(shape) - 1) / 2.0)
    return affine, tuple(shape)


def supersample_factors(acquisition: AcquisitionSpec) -> tuple[int, ...]:
    """Sub-samples per *stored* axis: ``supersample`` on the finest axis, more on thick ones.

    Examples
    --------
    >>> from graftimg.phantom.spec import default_spec
    >>> supersample_factors(default_spec("rodent", "iron").t2w)  # LPS, 0.1 x 0.1 x 0.5 mm
    (4, 4, 8)
    """
    s = acquisition.supersample
    finest = min(acquisition.spacing_mm)
    factors = []
    for world, _ in axis_codes(acquisition.orientation):
        ratio = acquisition.spacing_mm[world] / finest
        factors.append(int(min(2 * s, max(s, round(s * ratio)))))
    return tuple(factors)


@dataclass(frozen=True, eq=False)
class PhantomImage:
    """One rendered image with its truth, in its stored orientation.

    Attributes
    ----------
    suffix : str
        BIDS suffix (``'T2w'`` or ``'T2starw'``).
    data : ndarray of float32
        What is written to disk: biased, noisy, rounded to integers (int16 range).
    affine : (4, 4) ndarray
        Voxel-to-scanner affine (read-only float64).
    clean : ndarray of float32
        Noise-free, bias-free signal (same units as ``data``).
    bias_field : ndarray of float32
        Multiplicative bias applied before the noise.
    occupancy : mapping of str to ndarray of float32
        Sub-sample fractions ``'cord'``, ``'graft'``, ``'cyst'`` and, on T2*w, ``'void'``.
    noise_sigma : float
        Standard deviation of each noise channel (``SNR = cord signal / noise_sigma``).
    acquisition : AcquisitionSpec
        Sequence parameters.
    void_volume_mm3 : float or None
        Analytic blooming-void volume (T2*w of an iron subject), else None.
    dipole_constant_mm3 : float
        ``K`` of the blooming (0 without iron).
    """

    suffix: str
    data: np.ndarray
    affine: np.ndarray
    clean: np.ndarray
    bias_field: np.ndarray
    occupancy: Mapping[str, np.ndarray]
    noise_sigma: float
    acquisition: AcquisitionSpec
    void_volume_mm3: float | None = None
    dipole_constant_mm3: float = 0.0

    @property
    def spacing_mm(self) -> tuple[float, ...]:
        """Voxel size in mm along the stored axes."""
        return tuple(float(x) for x in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """Binary truth masks: occupancy >= 0.5."""
        return {name: occ >= 0.5 for name, occ in self.occupancy.items()}

    def occupancy_volume_mm3(self, name: str) -> float:
        """Partial-volume (voxelised) volume in mm³: ``Σ occupancy × voxel volume``."""
        return float(self.occupancy[name].sum(dtype=np.float64)) * self.voxel_volume_mm3

    def mask_volume_mm3(self, name: str) -> float:
        """Volume in mm³ of the binary mask (occupancy >= 0.5)."""
        return float(np.count_nonzero(self.occupancy[name] >= 0.5)) * self.voxel_volume_mm3


@dataclass(frozen=True)
class SessionTruth:
    """The analytic truth of one session.

    Attributes
    ----------
    days : float
        Days since injection.
    graft_volume_mm3 : float
        Graft (or iron-deposit) volume, analytic.
    graft_semi_axes_mm : (3,) tuple of float
        Graft semi-axes (R-L, A-P, along the cord).
    cyst_volume_mm3 : float
        Cyst volume, analytic (0: none).
    iron_mass_ug, iron_moment_am2 : float
        Iron amount and moment (0 in ``t2`` mode).
    injection_site_mm : (3,) tuple of float
        Scanner RAS position of the injection site (graft centre) at this session.
    motion : RigidMotion
        Motion relative to the first session, about the first session's injection site.
    cord_area_mm2 : float
        Cord cross-sectional area perpendicular to its axis, ``π·a·b``.
    """

    days: float
    graft_volume_mm3: float
    graft_semi_axes_mm: tuple[float, float, float]
    cyst_volume_mm3: float
    iron_mass_ug: float
    iron_moment_am2: float
    injection_site_mm: tuple[float, float, float]
    motion: RigidMotion
    cord_area_mm2: float


@dataclass(frozen=True, eq=False)
class SessionPhantom:
    """A rendered session: its images (by BIDS suffix) and its truth."""

    spec: PhantomSpec
    truth: SessionTruth
    images: Mapping[str, PhantomImage] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class _Scene:
    anatomy: Anatomy
    rotation: np.ndarray  # subject -> scanner rotation
    origin: np.ndarray  # scanner position of the subject origin (injection site)
    lut: np.ndarray  # intensity per label
    k_mm3: float = 0.0
    core_radius_mm: float = 0.0
    phase_threshold_rad: float = 1.0

    @property
    def has_void(self) -> bool:
        return self.k_mm3 > 0 or self.core_radius_mm > 0

    def codes(self, world: np.ndarray) -> np.ndarray:
        """Label (+16 if void) of ``(N, 3)`` scanner points."""
        d = (np.asarray(world, dtype=float) - self.origin).astype(np.float32)
        return self.codes_relative(*(np.ascontiguousarray(d[:, i]) for i in range(3)))

    def codes_relative(self, dx, dy, dz) -> np.ndarray:
        """Codes of points given relative to ``origin`` as three float32 coordinate arrays.

        float32 resolves 1e-5 mm over the field of view and halves the memory traffic; the
        arithmetic is column by column (no BLAS calls, whose threads stall on busy machines).
        """
        x, y, z = transform_columns(dx, dy, dz, self.rotation)
        labels = self.anatomy.labels_xyz(x, y, z)
        if self.has_void:
            labels[in_void_xyz(dx, dy, dz, self.k_mm3, self.core_radius_mm)] |= _VOID_BIT
        return labels


def _lattice(affine: np.ndarray, n0: int, n1: int, k: float, offset: float) -> np.ndarray:
    """Scanner coordinates of index points ``(i + offset, j + offset, k)``, i-major."""
    i = np.arange(n0, dtype=float) + offset
    j = np.arange(n1, dtype=float) + offset
    ii, jj = np.meshgrid(i, j, indexing="ij")
    index = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, float(k))], axis=1)
    return index @ affine[:3, :3].T + affine[:3, 3]


def _classify(scene: _Scene, affine: np.ndarray, shape: tuple[int, ...], bias: BiasField | None):
    n0, n1, n2 = shape
    centre = np.empty(shape, dtype=np.uint8)
    corners = np.empty((n0 + 1, n1 + 1, n2 + 1), dtype=np.uint8)
    factor = np.ones(shape, dtype=np.float32)
    for k in range(n2):
        world = _lattice(affine, n0, n1, k, 0.0)
        centre[:, :, k] = scene.codes(world).reshape(n0, n1)
        if bias is not None:
            factor[:, :, k] = bias(world).reshape(n0, n1)
    for k in range(n2 + 1):
        world = _lattice(affine, n0 + 1, n1 + 1, k - 0.5, -0.5)
        corners[:, :, k] = scene.codes(world).reshape(n0 + 1, n1 + 1)
    # Truth code per probe: cord / graft / cyst / void membership (4 bits).
    truth_table = np.zeros(2 * _VOID_BIT, dtype=np.uint8)
    for code in range(2 * _VOID_BIT):
        label = code & (_VOID_BIT - 1)
        truth_table[code] = (
            (label in CORD_LABELS) | (label == GRAFT) << 1 | (label == CYST) << 2
        ) | (code >= _VOID_BIT) << 3
    pure = np.ones(shape, dtype=bool)
    truth_pure = np.ones(shape, dtype=bool)
    truth_centre = truth_table[centre]
    for a, b, c in itertools.product((0, 1), repeat=3):
        probe = corners[a : a + n0, b : b + n1, c : c + n2]
        pure &= probe == centre
        truth_pure &= truth_table[probe] == truth_centre
    if scene.has_void:
        # Sub-sample wherever the dipole phase varies within a voxel (intravoxel dephasing):
        # |∇φ|·h <= 3·(2φc·K/r³)·h/r stays below _PHASE_STEP_RAD beyond ``reach``.
        thickest = float(np.linalg.norm(affine[:3, :3], axis=0).max())
        reach = (
            6.0 * scene.phase_threshold_rad * scene.k_mm3 * thickest / _PHASE_STEP_RAD
        ) ** 0.25
        reach = max(reach, scene.core_radius_mm) + thickest
        centre_index = np.linalg.solve(affine[:3, :3], scene.origin - affine[:3, 3])
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        grids = np.ogrid[: shape[0], : shape[1], : shape[2]]
        distance2 = sum(
            ((g - c) * h) ** 2 for g, c, h in zip(grids, centre_index, spacing, strict=True)
        )
        pure &= distance2 > reach**2
    # A thin sliver of an object can slip between the 9 probes of a voxel; for the objects whose
    # volume is truth, the neighbours of every boundary voxel are sub-sampled too.
    cube = np.ones((3, 3, 3), dtype=bool)
    mixed = ~pure | ndimage.binary_dilation(~truth_pure, structure=cube)
    return centre, mixed, factor


def _offsets(factors: tuple[int, ...]) -> np.ndarray:
    axes = [(np.arange(n) + 0.5) / n - 0.5 for n in factors]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def _render_clean(scene: _Scene, affine, shape, factors, bias):
    centre, mixed, factor = _classify(scene, affine, shape, bias)
    labels = centre & (_VOID_BIT - 1)
    void = centre >= _VOID_BIT
    clean = np.where(void, 0.0, scene.lut[labels]).astype(np.float32)
    occupancy = {
        "cord": np.isin(labels, CORD_LABELS).astype(np.float32),
        "graft": (labels == GRAFT).astype(np.float32),
        "cyst": (labels == CYST).astype(np.float32),
    }
    if scene.has_void:
        occupancy["void"] = void.astype(np.float32)

    offsets = (_offsets(factors) @ affine[:3, :3].T).astype(np.float32)
    n_sub = len(offsets)
    flat = np.flatnonzero(mixed)
    chunk = max(1, _MAX_POINTS // n_sub)
    lut = scene.lut.astype(np.float32)
    cord_table = np.zeros(_VOID_BIT, dtype=bool)
    cord_table[list(CORD_LABELS)] = True

    def fraction(flags: np.ndarray) -> np.ndarray:
        return np.count_nonzero(flags.reshape(-1, n_sub), axis=1) / n_sub

    for start in range(0, flat.size, chunk):
        ids = flat[start : start + chunk]
        index = np.stack(np.unravel_index(ids, shape), axis=1).astype(float)
        centres = (index @ affine[:3, :3].T + affine[:3, 3] - scene.origin).astype(np.float32)
        dx, dy, dz = ((centres[:, None, i] + offsets[None, :, i]).ravel() for i in range(3))
        codes = scene.codes_relative(dx, dy, dz)
        sub_labels = codes & (_VOID_BIT - 1)
        values = lut[sub_labels]
        if scene.has_void:
            sub_void = codes >= _VOID_BIT
            values[sub_void] = 0.0
            phase = dipole_phase_xyz(
                dx, dy, dz, scene.k_mm3, phase_threshold_rad=scene.phase_threshold_rad
            )
            phase = phase.astype(np.float32)
            real = (values * np.cos(phase)).reshape(-1, n_sub).mean(axis=1, dtype=np.float64)
            imag = (values * np.sin(phase)).reshape(-1, n_sub).mean(axis=1, dtype=np.float64)
            clean.flat[ids] = np.hypot(real, imag)
            occupancy["void"].flat[ids] = fraction(sub_void)
        else:
            clean.flat[ids] = values.reshape(-1, n_sub).mean(axis=1, dtype=np.float64)
        occupancy["cord"].flat[ids] = fraction(cord_table[sub_labels])
        occupancy["graft"].flat[ids] = fraction(sub_labels == GRAFT)
        occupancy["cyst"].flat[ids] = fraction(sub_labels == CYST)
    return clean, occupancy, factor


def render_image(
    anatomy: Anatomy,
    acquisition: AcquisitionSpec,
    *,
    motion: RigidMotion | None = None,
    bias: BiasField | None = None,
    rng: np.random.Generator | int | None = None,
    iron_moment_am2: float = 0.0,
) -> PhantomImage:
    """Render one image of one session.

    Parameters
    ----------
    anatomy : Anatomy
        The subject at this time point (see :func:`~graftimg.phantom.anatomy.anatomy_at`).
    acquisition : AcquisitionSpec
        The image to render; its grid is centred on the *first-session* injection site plus
        ``fov_offset_mm`` and does not move between sessions.
    motion : RigidMotion, optional
        Motion of the subject relative to the first session (about the injection site).
    bias : BiasField, optional
        Multiplicative bias (none: flat).
    rng : numpy.random.Generator or int, optional
        Noise source.
    iron_moment_am2 : float
        Moment of the iron deposit; a T2*w image of an ``iron`` subject blooms with it.

    Returns
    -------
    PhantomImage

    Examples
    --------
    >>> import dataclasses
    >>> from graftimg.phantom.anatomy import anatomy_at
    >>> from graftimg.phantom.spec import default_spec
    >>> spec = default_spec("human", "t2")
    >>> acq = dataclasses.replace(spec.t2w, shape=(24, 24, 32), spacing_mm=(0.5, 0.5, 0.5),
    ...                           fov_offset_mm=(0.0, 0.0, 0.0))
    >>> image = render_image(anatomy_at(spec, 7.0), acq, rng=0)
    >>> image.data.shape, image.data.dtype.name
    ((24, 32, 24), 'float32')
    >>> truth = anatomy_at(spec, 7.0).graft_volume_mm3
    >>> abs(image.occupancy_volume_mm3("graft") / truth - 1) < 0.01
    True
    """
    spec = anatomy.spec
    motion = RigidMotion() if motion is None else motion
    rng = np.random.default_rng(rng)
    site = np.asarray(spec.injection_world_mm)
    affine, shape = grid_affine(acquisition, site + np.asarray(acquisition.fov_offset_mm))
    intensities = acquisition.intensities
    lut = np.zeros(_VOID_BIT)
    for label, name in enumerate(LABEL_NAMES):
        lut[label] = 0.0 if name == "air" else getattr(intensities, name)
    lut *= spec.signal_scale

    k_mm3 = 0.0
    core = 0.0
    void_volume = None
    if acquisition.suffix == "T2starw" and spec.mode == "iron":
        k_mm3 = dipole_constant_mm3(
            iron_moment_am2, acquisition.echo_time_s, phase_threshold_rad=spec.void_phase_rad
        )
        core = anatomy.graft_semi_axes_mm[0]
        void_volume = void_volume_mm3(k_mm3, core)
    motion_matrix = motion.matrix(site)
    scene = _Scene(
        anatomy=anatomy,
        rotation=motion_matrix[:3, :3],
        origin=motion_matrix[:3, :3] @ site + motion_matrix[:3, 3],
        lut=lut,
        k_mm3=k_mm3,
        core_radius_mm=core,
        phase_threshold_rad=spec.void_phase_rad,
    )
    clean, occupancy, factor = _render_clean(
        scene, affine, shape, supersample_factors(acquisition), bias
    )
    sigma = spec.signal_scale * intensities.white_matter / acquisition.snr
    noisy = add_rician_noise(clean * factor, sigma, rng)
    data = np.rint(np.clip(noisy, 0, _INT16_MAX)).astype(np.float32)
    return PhantomImage(
        suffix=acquisition.suffix,
        data=_read_only(data),
        affine=_read_only(affine),
        clean=_read_only(clean),
        bias_field=_read_only(factor),
        occupancy=MappingProxyType({k: _read_only(v) for k, v in occupancy.items()}),
        noise_sigma=float(sigma),
        acquisition=acquisition,
        void_volume_mm3=void_volume,
        dipole_constant_mm3=k_mm3,
    )


def render_session(
    spec: PhantomSpec,
    *,
    days: float,
    seed: int | np.random.Generator | None = None,
    motion: RigidMotion | None = None,
    image_motions: Mapping[str, RigidMotion] | None = None,
) -> SessionPhantom:
    """Render every image of one session (T2w, plus T2*w for an ``iron`` subject).

    Parameters
    ----------
    spec : PhantomSpec
        The subject.
    days : float
        Days since injection (sets the graft volume and iron amount).
    seed : int or numpy.random.Generator, optional
        Seeds the bias field and the noise; the same seed gives the same arrays.
    motion : RigidMotion, optional
        Position of the subject relative to the first session (default: none).
    image_motions : mapping of suffix to RigidMotion, optional
        A different position for some images of the session (the subject moved between two
        scans); the others, and the truth's injection site, follow ``motion``.

    Returns
    -------
    SessionPhantom

    Examples
    --------
    >>> from graftimg.phantom.spec import default_spec
    >>> spec = default_spec("rodent", "iron")
    >>> small = dict(shape=(40, 40, 12), fov_offset_mm=(0.0, 0.0, 0.0), supersample=2)
    >>> spec = spec.with_acquisition("T2w", **small).with_acquisition("T2starw", **small)
    >>> session = render_session(spec, days=7.0, seed=1)
    >>> sorted(session.images), round(session.truth.iron_mass_ug, 4)
    (['T2starw', 'T2w'], 0.049)
    >>> star = session.images["T2starw"]
    >>> star.void_volume_mm3 > session.truth.graft_volume_mm3
    True
    """
    rng = np.random.default_rng(seed)
    anatomy = anatomy_at(spec, days)
    motion = RigidMotion() if motion is None else motion
    site = np.asarray(spec.injection_world_mm)
    bias = BiasField.random(
        rng,
        center_mm=site,
        scale_mm=spec.bias_scale_mm,
        order=spec.bias_order,
        amplitude=spec.bias_amplitude,
    )
    mass = iron_mass_ug(spec, days)
    moment = iron_moment_am2(mass, spec.magnetization_am2_per_kg)
    images = {}
    for acquisition in spec.acquisitions:
        moved = (image_motions or {}).get(acquisition.suffix, motion)
        images[acquisition.suffix] = render_image(
            anatomy, acquisition, motion=moved, bias=bias, rng=rng, iron_moment_am2=moment
        )
    a_u, a_v = spec.cord_semi_axes_mm
    truth = SessionTruth(
        days=float(days),
        graft_volume_mm3=anatomy.graft_volume_mm3,
        graft_semi_axes_mm=anatomy.graft_semi_axes_mm,
        cyst_volume_mm3=anatomy.cyst_volume_mm3,
        iron_mass_ug=mass,
        iron_moment_am2=moment,
        injection_site_mm=tuple(float(x) for x in motion.apply(site[None], site)[0]),
        motion=motion,
        cord_area_mm2=math.pi * a_u * a_v,
    )
    return SessionPhantom(spec=spec, truth=truth, images=MappingProxyType(images))
