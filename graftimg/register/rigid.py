"""Rigid (6-DOF) registration of one image to another, optionally around the cord.

A SimpleITK ``Euler3DTransform`` is fitted with Mattes mutual information (32 bins) or
normalised correlation, a 3-level pyramid (shrink 4/2/1, Gaussian smoothing 2/1/0 voxels of the
fixed image's finest axis, applied in millimetres so thick slices are not over-smoothed) and an
optional metric mask; with a mask, both images are cropped around it first. Rotations are about
``center_mm`` (the injection site) when given. Sampling is deterministic: either every voxel of
the mask, or a fixed percentage drawn with a fixed seed, so the same inputs give the same
transform. :func:`graftimg.register.session.register_session` builds the mask (the cord, its
CSF and a rim near the injection site) and chooses the settings for sessions of one subject;
docs/registration.md describes the method. Registration only moves masks and anchors between
sessions; volumes are always measured in each session's native grid.

Geometry: graftimg arrays come with a 4×4 affine from voxel index to scanner RAS millimetres.
SimpleITK works in LPS, so :func:`to_sitk_image` negates the x and y rows of the affine to get
SimpleITK's origin and direction (``spacing`` = column norms). The result is returned in RAS:
:attr:`RigidRegistration.world_matrix` maps a point of the fixed image's world to the
corresponding point of the moving image's world — the matrix
:func:`graftimg.register.resample.resample_to_grid` takes to pull the moving image (or its masks)
into the fixed grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from graftimg.arrays import bounding_box
from graftimg.errors import ConfigError, DimensionError, NonFiniteDataError, SegmentationError
from graftimg.register.resample import _check_affine, resample_to_grid

__all__ = [
    "RigidRegistration",
    "register_rigid",
    "to_sitk_image",
    "world_matrix_from_sitk",
]

#: Flips between RAS (nibabel, graftimg) and LPS (ITK, SimpleITK) world coordinates.
_RAS_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True, eq=False)
class RigidRegistration:
    """Result of :func:`register_rigid`.

    Attributes
    ----------
    world_matrix : (4, 4) ndarray
        Maps a point of the fixed image's world (RAS mm) to the corresponding point of the
        moving image's world. Pass it as ``world_transform`` to
        :func:`graftimg.register.resample.resample_to_grid` to bring the moving image into the
        fixed grid.
    center_mm : tuple of 3 float
        Centre of rotation (fixed world, RAS mm).
    rotation_deg : float
        Total rotation angle of the transform, in degrees.
    translation_mm : tuple of 3 float
        Displacement of ``center_mm``: ``world_matrix · center − center`` (RAS mm).
    metric : {"mattes", "correlation"}
        Metric optimised.
    metric_value : float
        Final metric value at full resolution (SimpleITK's sign: lower is better; Mattes is
        minus the mutual information, correlation is minus the squared normalised correlation).
    correlation : float
        Pearson correlation of the fixed image and the registered moving image inside the mask
        (or the whole overlap without one), at full resolution. Meaningful for same-contrast
        sessions; below ``min_correlation`` the flag ``poor_registration`` is raised.
    n_iterations : int
        Optimizer iterations at the last (full-resolution) level.
    stop_condition : str
        SimpleITK's description of why the optimizer stopped.
    flags : tuple of str
        ``poor_registration`` when ``correlation`` is below the threshold.
    """

    world_matrix: np.ndarray
    center_mm: tuple[float, float, float]
    rotation_deg: float
    translation_mm: tuple[float, float, float]
    metric: Literal["mattes", "correlation"]
    metric_value: float
    correlation: float
    n_iterations: int
    stop_condition: str
    flags: tuple[str, ...] = ()

    def map_points(self, points_mm: np.ndarray) -> np.ndarray:
        """Map fixed-world points (RAS mm) to the moving image's world.

        Parameters
        ----------
        points_mm : (3,) or (N, 3) array_like
            Points in the fixed image's world.

        Returns
        -------
        ndarray
            Same shape, in the moving image's world.

        Examples
        --------
        >>> shift = np.eye(4)
        >>> shift[:3, 3] = 1.0, 2.0, 3.0
        >>> reg = RigidRegistration(shift, (0, 0, 0), 0.0, (1, 2, 3), "mattes", -1.0, 1.0, 1, "")
        >>> reg.map_points([0.0, 0.0, 0.0]).tolist()
        [1.0, 2.0, 3.0]
        """
        points = np.asarray(points_mm, dtype=np.float64)
        return points @ self.world_matrix[:3, :3].T + self.world_matrix[:3, 3]


def to_sitk_image(array: np.ndarray, affine: np.ndarray, *, dtype=np.float32):
    """SimpleITK image of an (X, Y, Z) array with a voxel → RAS mm affine.

    Parameters
    ----------
    array : (X, Y, Z) ndarray
        Voxel data, indexed as the affine expects.
    affine : (4, 4) ndarray
        Voxel index → scanner RAS mm. Any orientation (flips, permutations, obliquity).
    dtype : numpy dtype, optional
        Pixel type of the SimpleITK image.

    Returns
    -------
    SimpleITK.Image
        Same physical space in SimpleITK's LPS convention: spacing = the affine's column norms,
        direction = LPS-flipped unit columns, origin = LPS-flipped translation.

    Examples
    --------
    >>> affine = np.array([[-2.0, 0, 0, 10], [0, 1, 0, -5], [0, 0, 3, 7], [0, 0, 0, 1]])
    >>> img = to_sitk_image(np.zeros((4, 5, 6)), affine)
    >>> img.GetSize(), img.GetSpacing(), img.GetOrigin()
    ((4, 5, 6), (2.0, 1.0, 3.0), (-10.0, 5.0, 7.0))
    >>> img.TransformIndexToPhysicalPoint((1, 0, 0))  # LPS of RAS (8, -5, 7)
    (-8.0, 5.0, 7.0)
    """
    import SimpleITK as sitk

    array = np.asarray(array)
    if array.ndim != 3:
        raise DimensionError(f"expected a 3D array, got shape {array.shape}")
    affine = _check_affine(affine, "affine")
    lps = _RAS_LPS @ affine
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0), dtype=dtype))
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    img.SetDirection(direction.ravel().tolist())
    return img


def world_matrix_from_sitk(transform) -> np.ndarray:
    """RAS 4×4 matrix of a SimpleITK affine-family transform (fixed → moving points).

    Parameters
    ----------
    transform : SimpleITK.Transform
        A transform with ``GetMatrix``, ``GetTranslation`` and ``GetCenter`` (Euler3D,
        Versor, Affine…), which maps LPS points as ``R·(x − c) + c + t``.

    Returns
    -------
    (4, 4) ndarray
        The same mapping in RAS millimetres.

    Examples
    --------
    >>> import SimpleITK as sitk
    >>> tx = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.0, 0.0, 0.0, (1.0, 2.0, 3.0))
    >>> world_matrix_from_sitk(tx)[:3, 3].tolist()  # LPS (1, 2, 3) is RAS (-1, -2, 3)
    [-1.0, -2.0, 3.0]
    """
    rotation = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    center = np.asarray(transform.GetCenter(), dtype=np.float64)
    translation = np.asarray(transform.GetTranslation(), dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = rotation
    lps[:3, 3] = center + translation - rotation @ center
    return _RAS_LPS @ lps @ _RAS_LPS


def _spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))  # type: ignore[return-value]


def _box_affine(affine: np.ndarray, box: Sequence[slice]) -> np.ndarray:
    """Affine of ``array[box]``: the same voxel size, its first voxel as origin."""
    offset = np.array([s.start for s in box], dtype=np.float64)
    out = np.array(affine, dtype=np.float64)
    out[:3, 3] = affine[:3, :3] @ offset + affine[:3, 3]
    return out


def _moving_box(
    box_affine: np.ndarray,
    box_shape: Sequence[int],
    moving_affine: np.ndarray,
    moving_shape: Sequence[int],
    world: np.ndarray,
    margin_mm: float,
) -> tuple[slice, ...]:
    """The part of the moving grid within ``margin_mm`` of the fixed box seen through ``world``."""
    corners = np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in box_shape], indexing="ij"))
    corners = corners.reshape(3, -1)
    points = world[:3, :3] @ (box_affine[:3, :3] @ corners + box_affine[:3, 3:4]) + world[:3, 3:4]
    inverse = np.linalg.inv(moving_affine)
    index = inverse[:3, :3] @ points + inverse[:3, 3:4]
    pad = margin_mm / np.asarray(_spacing_of(moving_affine))
    low = np.floor(index.min(axis=1) - pad).astype(int)
    high = np.ceil(index.max(axis=1) + pad).astype(int) + 1
    box = []
    for lo, hi, n in zip(low, high, moving_shape, strict=True):
        start = int(np.clip(lo, 0, n - 1))
        box.append(slice(start, int(np.clip(hi, start + 1, n))))
    return tuple(box)


def register_rigid(
    fixed: np.ndarray,
    fixed_affine: np.ndarray,
    moving: np.ndarray,
    moving_affine: np.ndarray,
    *,
    fixed_mask: np.ndarray | None = None,
    center_mm: Sequence[float] | None = None,
    metric: Literal["mattes", "correlation"] = "mattes",
    n_bins: int = 32,
    initialization: Literal["identity", "geometry"] = "identity",
    initial_world_matrix: np.ndarray | None = None,
    shrink_factors: Sequence[int] = (4, 2, 1),
    smoothing_voxels: Sequence[float] = (2.0, 1.0, 0.0),
    n_iterations: int = 200,
    max_samples: int = 100_000,
    seed: int = 1,
    n_threads: int | None = 1,
    min_correlation: float = 0.8,
    moving_margin_mm: float | None = 20.0,
    learning_rate_voxels: float = 1.0,
    min_step_voxels: float = 1e-3,
    relaxation: float = 0.8,
    moving_gradient_filter: bool = True,
) -> RigidRegistration:
    """Rigidly register a moving image to a fixed one (e.g. a session to the baseline).

    Parameters
    ----------
    fixed, moving : (X, Y, Z) ndarray
        Images (any orientation; each is read through its affine).
    fixed_affine, moving_affine : (4, 4) ndarray
        Voxel → scanner RAS mm affines.
    fixed_mask : (X, Y, Z) ndarray of bool, optional
        Metric mask in the fixed grid (see
        :func:`graftimg.register.session.site_metric_mask`). The fixed image is cropped
        to the mask's bounding box, which also makes the registration fast.
    center_mm : sequence of 3 float, optional
        Centre of rotation, fixed world RAS mm (the injection site). Default: the centroid of
        ``fixed_mask``, else the centre of the fixed image.
    metric : {"mattes", "correlation"}, optional
        Mattes mutual information (any contrasts) or normalised correlation (same contrast).
    n_bins : int, optional
        Histogram bins of Mattes MI.
    initialization : {"identity", "geometry"}, optional
        Starting translation: none (sessions share a scanner frame closely enough), or the one
        that lines up the two images' centres.
    initial_world_matrix : (4, 4) ndarray, optional
        Start from this rigid fixed-world → moving-world transform instead (overrides
        ``initialization``).
    shrink_factors : sequence of int, optional
        Pyramid shrink factors, coarse to fine. SimpleITK shrinks every axis by the same
        factor, thick-slice axes included.
    smoothing_voxels : sequence of float, optional
        Gaussian smoothing per level in voxels of the fixed image's finest axis; applied in mm,
        so thick-slice axes are smoothed less in voxel terms.
    n_iterations : int, optional
        Maximum optimizer iterations per level (regular-step gradient descent).
    max_samples : int, optional
        At most about this many metric samples per level: levels with more mask voxels are
        subsampled at random with ``seed``; the others use every voxel.
    seed : int, optional
        Seed of the metric sampling (fixed: results are reproducible).
    n_threads : int or None, optional
        Threads SimpleITK may use. The default, 1, makes the result bit-for-bit reproducible;
        with more threads the order of floating-point sums varies between runs and the
        transform differs in the 10th decimal (about 1e-10 mm). ``None``: SimpleITK's default.
    min_correlation : float, optional
        Below this post-registration correlation the flag ``poor_registration`` is set.
    moving_margin_mm : float or None, optional
        With a ``fixed_mask``, the moving image is cropped to the fixed box (mapped through the
        starting transform) grown by this margin plus room for the smoothing, so that the
        pyramid filters only the part the metric can reach. It bounds how far the optimiser
        may move the box (default 20 mm); ``None`` keeps the whole moving image.
    learning_rate_voxels, min_step_voxels : float, optional
        First and smallest optimizer step, in voxels of the fixed image's finest axis.
    relaxation : float, optional
        Factor by which the optimizer shortens its step when the gradient turns back.
    moving_gradient_filter : bool, optional
        Precompute the moving image's gradient at each level (ITK's default). Off, the metric
        takes central differences at its samples instead: cheaper when the samples are few
        next to the moving image's voxels (ITK smooths the moving image but does not shrink
        it, so the filter costs a full-resolution pass per level).

    Returns
    -------
    RigidRegistration

    Raises
    ------
    DimensionError
        Arrays are not 3D or the mask's shape differs from the fixed image's.
    NonFiniteDataError
        An image holds NaN or infinite values.
    SpacingError
        An affine is not a finite, invertible 4×4 matrix.
    SegmentationError
        The mask is empty, or SimpleITK fails (e.g. the images do not overlap).

    Examples
    --------
    Three blobs moved by 2 mm along x (RAS) are found again:

    >>> grid = np.mgrid[:32, :32, :32].astype(np.float32)
    >>> def blobs(shift_x):
    ...     out = np.zeros(grid.shape[1:], dtype=np.float32)
    ...     for x, y, z in [(15, 16, 17), (20, 10, 12), (10, 12, 22)]:
    ...         d2 = (grid[0] - x - shift_x) ** 2 + (grid[1] - y) ** 2 + (grid[2] - z) ** 2
    ...         out += np.exp(-d2 / 20)
    ...     return out
    >>> reg = register_rigid(blobs(0.0), np.eye(4), blobs(2.0), np.eye(4))
    >>> np.round(reg.map_points([15.0, 16.0, 17.0]), 1).tolist(), reg.flags
    ([17.0, 16.0, 17.0], ())
    """
    import SimpleITK as sitk

    fixed = np.asarray(fixed)
    moving = np.asarray(moving)
    if fixed.ndim != 3 or moving.ndim != 3:
        raise DimensionError(
            f"expected 3D images, got shapes {fixed.shape} and {moving.shape}",
            hint="pass one volume of each session",
        )
    if not (np.all(np.isfinite(fixed)) and np.all(np.isfinite(moving))):
        raise NonFiniteDataError(
            "an image to register holds NaN or infinite values",
            hint="replace them (e.g. np.nan_to_num) first",
        )
    fixed_affine = _check_affine(fixed_affine, "fixed_affine")
    moving_affine = _check_affine(moving_affine, "moving_affine")
    if metric not in ("mattes", "correlation"):
        raise ConfigError(f"metric must be 'mattes' or 'correlation', got {metric!r}")
    if len(shrink_factors) != len(smoothing_voxels) or not shrink_factors:
        raise ConfigError("shrink_factors and smoothing_voxels need one entry per pyramid level")
    if initialization not in ("identity", "geometry"):
        raise ConfigError(
            f"initialization must be 'identity' or 'geometry', got {initialization!r}"
        )
    fixed_spacing = _spacing_of(fixed_affine)
    finest = min(fixed_spacing)
    smoothing_mm = [float(s) * finest for s in smoothing_voxels]

    # Crop the fixed image to the mask (plus room for smoothing): the metric only looks there.
    if fixed_mask is not None:
        fixed_mask = np.asarray(fixed_mask, dtype=bool)
        if fixed_mask.shape != fixed.shape:
            raise DimensionError(
                f"fixed_mask shape {fixed_mask.shape} differs from fixed image shape "
                f"{fixed.shape}",
                hint="build the mask in the fixed image's grid",
            )
        if not fixed_mask.any():
            raise SegmentationError("the registration mask is empty", hint="check the cord mask")
        pad_mm = 3.0 * max(smoothing_mm) + 2.0 * max(shrink_factors) * finest
        pad = [math.ceil(pad_mm / s) + 1 for s in fixed_spacing]
        box = bounding_box(fixed_mask, pad)
    else:
        box = tuple(slice(0, n) for n in fixed.shape)
    box_affine = _box_affine(fixed_affine, box)
    fixed_box = fixed[box]
    mask_box = None if fixed_mask is None else fixed_mask[box]

    sitk_fixed = to_sitk_image(fixed_box, box_affine)

    # Centre of rotation (RAS), then the initial transform in LPS.
    if center_mm is not None:
        centre_ras = np.asarray(center_mm, dtype=np.float64).reshape(3)
    elif mask_box is not None:
        centroid = np.array(ndimage.center_of_mass(mask_box))
        centre_ras = box_affine[:3, :3] @ centroid + box_affine[:3, 3]
    else:
        mid = (np.array(fixed_box.shape, dtype=np.float64) - 1.0) / 2.0
        centre_ras = box_affine[:3, :3] @ mid + box_affine[:3, 3]
    transform = sitk.Euler3DTransform()
    transform.SetCenter((_RAS_LPS[:3, :3] @ centre_ras).tolist())
    if initial_world_matrix is not None:
        init_lps = (
            _RAS_LPS @ _check_affine(initial_world_matrix, "initial_world_matrix") @ _RAS_LPS
        )
        rotation = init_lps[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4):
            raise ConfigError("initial_world_matrix must be rigid (a rotation and a translation)")
        c = _RAS_LPS[:3, :3] @ centre_ras
        transform.SetMatrix(rotation.ravel().tolist(), 1e-4)
        transform.SetTranslation((init_lps[:3, 3] + rotation @ c - c).tolist())
    elif initialization == "geometry":
        mid_m = (np.array(moving.shape, dtype=np.float64) - 1.0) / 2.0
        centre_m = moving_affine[:3, :3] @ mid_m + moving_affine[:3, 3]
        mid_f = (np.array(fixed.shape, dtype=np.float64) - 1.0) / 2.0
        centre_f = fixed_affine[:3, :3] @ mid_f + fixed_affine[:3, 3]
        transform.SetTranslation((_RAS_LPS[:3, :3] @ (centre_m - centre_f)).tolist())

    if fixed_mask is not None and moving_margin_mm is not None:
        # The mask's own box (not the padded one) seen through the start, grown by the motion
        # allowed and the smoothing's reach: the moving image is smoothed but not shrunk.
        mask_only = bounding_box(fixed_mask)
        margin = float(moving_margin_mm) + 3.0 * max(smoothing_mm) + 2.0 * finest
        moving_box = _moving_box(
            _box_affine(fixed_affine, mask_only),
            [s.stop - s.start for s in mask_only],
            moving_affine,
            moving.shape,
            world_matrix_from_sitk(transform),
            margin,
        )
    else:
        moving_box = tuple(slice(0, n) for n in moving.shape)
    sitk_moving = to_sitk_image(moving[moving_box], _box_affine(moving_affine, moving_box))

    # Metric samples per level: every mask voxel unless there are more than max_samples.
    n_region = int(mask_box.sum()) if mask_box is not None else int(fixed_box.size)
    percentages = [
        min(1.0, max_samples / max(1.0, n_region / float(f) ** 3)) for f in shrink_factors
    ]

    reg = sitk.ImageRegistrationMethod()
    if n_threads is not None:
        reg.SetNumberOfThreads(int(n_threads))
        reg.SetNumberOfWorkUnits(int(n_threads))
    if metric == "mattes":
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=int(n_bins))
    else:
        reg.SetMetricAsCorrelation()
    if not moving_gradient_filter:
        reg.MetricUseMovingImageGradientFilterOff()
        reg.MetricUseFixedImageGradientFilterOff()
    if all(p >= 1.0 for p in percentages):
        reg.SetMetricSamplingStrategy(reg.NONE)
    else:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentagePerLevel(percentages, int(seed))
    if mask_box is not None:
        reg.SetMetricFixedMask(to_sitk_image(mask_box, box_affine, dtype=np.uint8))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=float(learning_rate_voxels) * finest,
        minStep=float(min_step_voxels) * finest,
        numberOfIterations=int(n_iterations),
        relaxationFactor=float(relaxation),
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([int(f) for f in shrink_factors])
    reg.SetSmoothingSigmasPerLevel(smoothing_mm)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(transform, inPlace=True)
    try:
        reg.Execute(sitk_fixed, sitk_moving)
    except RuntimeError as err:  # ITK exceptions arrive as RuntimeError
        raise SegmentationError(
            f"rigid registration failed ({str(err).strip().splitlines()[-1]})",
            hint="check that the two images overlap in scanner space, or try "
            "initialization='geometry'",
        ) from None

    world = world_matrix_from_sitk(transform)
    resampled = resample_to_grid(
        moving.astype(np.float32, copy=False),
        moving_affine,
        box_affine,
        fixed_box.shape,
        world_transform=world,
        order=1,
        cval=np.nan,
    )
    region = np.isfinite(resampled)
    if mask_box is not None:
        region &= mask_box
    correlation = float("nan")
    if region.sum() > 2:
        a = fixed_box[region].astype(np.float64)
        b = resampled[region].astype(np.float64)
        if a.std() > 0 and b.std() > 0:
            correlation = float(np.corrcoef(a, b)[0, 1])
    flags = () if correlation >= min_correlation else ("poor_registration",)
    rotation = world[:3, :3]
    angle = math.degrees(math.acos(float(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))))
    moved_centre = rotation @ centre_ras + world[:3, 3]
    return RigidRegistration(
        world_matrix=world,
        center_mm=tuple(float(c) for c in centre_ras),  # type: ignore[arg-type]
        rotation_deg=angle,
        translation_mm=tuple(float(t) for t in moved_centre - centre_ras),  # type: ignore[arg-type]
        metric=metric,
        metric_value=float(reg.GetMetricValue()),
        correlation=correlation,
        n_iterations=int(reg.GetOptimizerIteration()),
        stop_condition=str(reg.GetOptimizerStopConditionDescription()),
        flags=flags,
    )
