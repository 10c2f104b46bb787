"""N4 bias-field correction (Tustison et al., *IEEE TMI* 2010;29:1310; docs/methods.md).

Receive-coil sensitivity makes MR intensities drift smoothly over the field of view (spine
phased arrays: a strong posterior-to-anterior fall-off of ±20–40 %). Thresholds relative to a
reference region a few centimetres away (``segment.reference``) need that drift removed.
:func:`correct_bias` runs SimpleITK's N4 (Tustison et al., *IEEE TMI* 2010;29:1310) on a shrunk
copy of the image for speed, inside a body mask, then evaluates the fitted log bias field (a
B-spline, hence defined everywhere) on the full-resolution grid — the
``GetLogBiasFieldAsImage(full_resolution_image)`` pattern of the SimpleITK examples.

Scale is kept: the multiplicative field is normalised to mean 1 inside the mask, so the
corrected image has the input's overall intensity level and a noise standard deviation that stays
comparable (on average over the mask) with the one measured on the input.

Speed: N4 costs about 2 µs per voxel of the shrunk image per iteration plus a fixed ~5 ms
(ITK's per-iteration B-spline fit and histogram sharpening), so on a small image the iteration
count sets the time. N4's convergence measure (the change of the field between iterations)
levels off near 1e-4 on spinal images and never reaches a strict threshold: the field keeps
drifting slowly, not towards the truth. On the validation phantoms with their known ±30 % field
(``benchmarks/n4_iterations.py``), the residual spread of log(N4 / truth) along the cord is, in
median over 16 cases per scale, 0.54 % (human) and 0.90 % (rat) after 10 iterations, 0.50 % and
0.87 % after 20, 0.60 % and 0.94 % after 50; 10 iterations per level is the pipeline's default.
``shrink_factor`` is the *minimum* shrink; when the shrunk grid would still exceed
``max_fit_voxels`` the factor is raised until it fits (:func:`n4_shrink_factors`). The fitted
field depends slightly on ITK's number of threads (it splits sums over threads: log field within
3e-4 rms between 1, 2 and 4 threads), so N4 runs on one thread by default and gives the same
field on every machine; the pipeline runs it beside the cord segmentation instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graftimg.errors import ConfigError, DimensionError, SegmentationError
from graftimg.preprocess.body import _check_image, body_mask

__all__ = ["BiasCorrection", "correct_bias", "n4_mesh", "n4_shrink_factors"]


@dataclass(frozen=True, eq=False)
class BiasCorrection:
    """Result of :func:`correct_bias`.

    Attributes
    ----------
    image : (X, Y, Z) ndarray of float32
        Corrected image, ``input / field``.
    field : (X, Y, Z) ndarray of float32
        Multiplicative bias field, mean 1 inside ``mask``. Outside the mask it is the B-spline
        extrapolation, clipped to the range the field takes inside the mask.
    mask : (X, Y, Z) ndarray of bool
        Voxels N4 fitted the field on (the body mask, or the mask given, restricted to
        positive intensities).
    shrink_factors : tuple of 3 int
        Shrink factor used along each axis.
    n_levels : int
        B-spline fitting levels N4 ran.
    n_iterations_last_level : int
        Iterations N4 ran at its finest fitting level (equal to the maximum when the
        convergence threshold was not reached).
    convergence_last_level : float
        N4's convergence measure at the end (coefficient-of-variation change of the field).
    """

    image: np.ndarray
    field: np.ndarray
    mask: np.ndarray
    shrink_factors: tuple[int, int, int]
    n_levels: int
    n_iterations_last_level: int
    convergence_last_level: float


def n4_shrink_factors(
    shape: Sequence[int],
    spacing: Sequence[float],
    *,
    shrink_factor: int = 2,
    max_fit_voxels: int | None = 16_384,
) -> tuple[int, int, int]:
    """Per-axis shrink factors for the N4 fit.

    The factor along each axis is ``round(s · min(spacing) / spacing[axis])`` (at least 1), so
    that the shrunk voxels are as isotropic as the grid allows: thick slices are not shrunk
    further. ``s`` starts at ``shrink_factor`` and grows until the shrunk grid holds at most
    ``max_fit_voxels`` voxels. No axis is shrunk below 4 voxels.

    Parameters
    ----------
    shape : sequence of 3 int
        Image shape.
    spacing : sequence of 3 float
        Voxel size in mm.
    shrink_factor : int, optional
        Minimum shrink factor along the finest axis.
    max_fit_voxels : int or None, optional
        Voxel budget of the shrunk image; ``None`` disables it.

    Returns
    -------
    tuple of 3 int
        Shrink factor per axis.

    Examples
    --------
    >>> n4_shrink_factors((64, 320, 320), (3.0, 0.6, 0.6), shrink_factor=2, max_fit_voxels=None)
    (1, 2, 2)
    >>> n4_shrink_factors((64, 320, 320), (3.0, 0.6, 0.6))
    (3, 13, 13)
    """
    if int(shrink_factor) < 1:
        raise ConfigError(f"shrink_factor must be ≥ 1, got {shrink_factor}")
    finest = min(spacing)
    caps = [max(1, n // 4) for n in shape]
    s = int(shrink_factor)
    while True:
        factors = tuple(
            min(cap, max(1, round(s * finest / sp))) for cap, sp in zip(caps, spacing, strict=True)
        )
        n_fit = math.prod(n // f for n, f in zip(shape, factors, strict=True))
        at_caps = all(f == cap for f, cap in zip(factors, caps, strict=True))
        if max_fit_voxels is None or n_fit <= max_fit_voxels or at_caps:
            return factors  # type: ignore[return-value]
        s += 1


def n4_mesh(
    extent_mm: Sequence[float], knot_spacing_mm: float, max_levels: int = 4
) -> tuple[int, tuple[int, int, int]]:
    """N4 fitting levels and initial control points keeping the finest knots far enough apart.

    N4's cubic B-spline mesh starts with ``control_points − 3`` spans per axis and doubles at
    every level. A mesh finer than the bias field lets N4 fit anatomy: at 4 levels over a 64 mm
    field of view the knots are 8 mm apart, the size of a graft, and N4 "corrects" the graft's
    own contrast away. This chooses the most levels (at most ``max_levels``) for which every
    axis can keep its finest knot spacing ≥ ``knot_spacing_mm``, then per-axis control points
    so that each axis ends with as many spans as that allows (at least one).

    Parameters
    ----------
    extent_mm : sequence of 3 float
        Field of view per axis (mm).
    knot_spacing_mm : float
        Smallest allowed distance between the finest level's knots (mm).
    max_levels : int, optional
        Upper bound on the number of fitting levels.

    Returns
    -------
    n_levels : int
    control_points : tuple of 3 int
        Initial control points per axis (spans + 3).

    Examples
    --------
    >>> n4_mesh((64.0, 64.0, 84.0), 30.0)
    (2, (4, 4, 4))
    >>> n4_mesh((200.0, 200.0, 400.0), 30.0)
    (3, (4, 4, 6))
    >>> n4_mesh((32.0, 32.0, 84.0), 30.0)
    (1, (4, 4, 5))
    >>> n4_mesh((20.0, 20.0, 20.0), 30.0)
    (1, (4, 4, 4))
    """
    if not knot_spacing_mm > 0:
        raise ConfigError(f"knot_spacing_mm must be > 0, got {knot_spacing_mm}")
    if max_levels < 1:
        raise ConfigError(f"max_levels must be ≥ 1, got {max_levels}")
    spans_max = [max(1, math.floor(float(e) / knot_spacing_mm)) for e in extent_mm]
    # Levels: the mesh doubles on every axis, so the shortest axis bounds the depth.
    n_levels = max(1, min(int(max_levels), 1 + math.floor(math.log2(min(spans_max)))))
    doubling = 2 ** (n_levels - 1)
    control = tuple(3 + max(1, s // doubling) for s in spans_max)
    return n_levels, control  # type: ignore[return-value]


def _to_sitk(array: np.ndarray, spacing: Sequence[float]):
    """SimpleITK image of an (X, Y, Z) array (SimpleITK index order is x fastest)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    return img


def _shrunk_sitk(array: np.ndarray, spacing: Sequence[float], factors: Sequence[int]):
    """``sitk.Shrink(_to_sitk(array, spacing), factors)`` without a transposed full-size copy.

    The C-ordered (X, Y, Z) array is handed to SimpleITK as it lies in memory, which SimpleITK
    reads with its axes reversed; ITK shrinks each axis on its own (same pixels, same origin),
    so the small result is transposed back instead of the full image.
    """
    import SimpleITK as sitk

    flipped = sitk.GetImageFromArray(np.ascontiguousarray(array))
    flipped.SetSpacing([float(s) for s in reversed(spacing)])
    small = sitk.Shrink(flipped, [int(f) for f in reversed(factors)])
    out = sitk.GetImageFromArray(
        np.ascontiguousarray(sitk.GetArrayViewFromImage(small).transpose(2, 1, 0))
    )
    out.SetSpacing(small.GetSpacing()[::-1])
    out.SetOrigin(small.GetOrigin()[::-1])
    return out


def correct_bias(
    image: np.ndarray,
    *,
    spacing: Sequence[float],
    mask: np.ndarray | None = None,
    shrink_factor: int = 2,
    n_levels: int = 4,
    n_iterations: int = 10,
    convergence: float = 1e-6,
    max_fit_voxels: int | None = 16_384,
    knot_spacing_mm: float | None = None,
    n_threads: int | None = 1,
) -> BiasCorrection:
    """Remove a smooth multiplicative bias field with N4, keeping the overall scale.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Magnitude image (non-negative).
    spacing : sequence of 3 float
        Voxel size in mm (passed to SimpleITK, so the B-spline mesh is laid out in mm).
    mask : (X, Y, Z) ndarray of bool, optional
        Where to fit the field. Default: :func:`graftimg.preprocess.body.body_mask`. Voxels with
        intensity ≤ 0 are always left out (N4 works on the log image).
    shrink_factor : int, optional
        Minimum shrink along the finest axis (2 human, 1 rodent by default); see
        :func:`n4_shrink_factors`.
    n_levels : int, optional
        Number of B-spline fitting levels (the control mesh doubles at each); with
        ``knot_spacing_mm`` the upper bound on it.
    n_iterations : int, optional
        Maximum iterations per level.
    convergence : float, optional
        N4 convergence threshold.
    max_fit_voxels : int or None, optional
        Voxel budget of the shrunk image (speed); ``None`` shrinks by ``shrink_factor`` only.
    knot_spacing_mm : float, optional
        Smallest distance between the finest B-spline knots (mm), via :func:`n4_mesh`. ``None``
        keeps ITK's default mesh (4 control points per axis) refined over ``n_levels``.
    n_threads : int or None, optional
        ITK threads for N4. The field depends slightly on the thread count (ITK splits sums
        over threads), so the default, 1, gives the same field on every machine; ``None`` uses
        ITK's global default (all cores).

    Returns
    -------
    BiasCorrection
        Corrected image, field (mean 1 in the mask), mask and the N4 run's figures.

    Raises
    ------
    DimensionError
        ``mask`` does not have the image's shape.
    SegmentationError
        The mask holds too few positive voxels to fit a field, or N4 failed.

    Examples
    --------
    >>> x = np.linspace(-1.0, 1.0, 24)
    >>> field = np.exp(0.25 * x)[:, None, None] * np.ones((24, 24, 12))
    >>> image = (100.0 * field).astype(np.float32)
    >>> mask = np.ones(image.shape, dtype=bool)
    >>> out = correct_bias(image, spacing=(1.0, 1.0, 2.0), mask=mask, n_levels=2)
    >>> bool(out.image.std() < 0.25 * image.std())
    True
    >>> round(float(out.field[out.mask].mean()), 4)
    1.0
    """
    import SimpleITK as sitk

    image, spacing_t = _check_image(image, spacing)
    if n_levels < 1 or n_iterations < 1:
        raise ConfigError(f"n_levels and n_iterations must be ≥ 1, got {n_levels}, {n_iterations}")
    data = image.astype(np.float32, copy=False)
    if mask is None:
        mask = body_mask(data, spacing=spacing_t)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != data.shape:
        raise DimensionError(
            f"mask shape {mask.shape} differs from image shape {data.shape}",
            hint="resample the mask to the image grid first",
        )
    fit_mask = mask & (data > 0)
    if int(fit_mask.sum()) < 100:
        raise SegmentationError(
            f"only {int(fit_mask.sum())} positive voxels inside the mask: too few to fit a bias "
            "field",
            hint="give a larger mask or switch bias correction off",
        )

    factors = n4_shrink_factors(
        data.shape, spacing_t, shrink_factor=shrink_factor, max_fit_voxels=max_fit_voxels
    )
    small = _shrunk_sitk(data, spacing_t, factors)
    small_mask = _shrunk_sitk(fit_mask.view(np.uint8), spacing_t, factors)
    if sitk.GetArrayViewFromImage(small_mask).sum() < 20:
        # A thin mask can vanish when subsampled: fall back to no extra shrinking.
        factors = (1, 1, 1)
        small = _to_sitk(data, spacing_t)
        small_mask = _to_sitk(fit_mask.view(np.uint8), spacing_t)
    # The field is evaluated on the full grid: only the grid's geometry is read from this.
    full = sitk.Image([int(n) for n in data.shape], sitk.sitkUInt8)
    full.SetSpacing(spacing_t)

    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    if knot_spacing_mm is not None:
        extent = [n * d for n, d in zip(data.shape, spacing_t)]
        n_levels, control = n4_mesh(extent, knot_spacing_mm, max_levels=n_levels)
        n4.SetNumberOfControlPoints([int(c) for c in control])
    n4.SetMaximumNumberOfIterations([int(n_iterations)] * int(n_levels))
    n4.SetConvergenceThreshold(float(convergence))
    if n_threads is not None:
        n4.SetNumberOfThreads(int(n_threads))
    try:
        n4.Execute(small, small_mask)
        log_field = n4.GetLogBiasFieldAsImage(full)
    except RuntimeError as err:  # ITK exceptions arrive as RuntimeError
        raise SegmentationError(
            f"N4 bias correction failed ({str(err).strip().splitlines()[-1]})",
            hint="check the mask, or switch bias correction off",
        ) from None

    # One float64 work array, updated in place (same arithmetic as out-of-place).
    field64 = np.array(sitk.GetArrayViewFromImage(log_field).transpose(2, 1, 0), np.float64)
    del log_field
    field64 -= field64[fit_mask].max()  # avoid overflow before normalising
    np.exp(field64, out=field64)
    field64 /= field64[fit_mask].mean()
    inside = field64[fit_mask]
    np.clip(field64, inside.min(), inside.max(), out=field64)
    field = field64.astype(np.float32)
    del field64, inside
    corrected = np.divide(data, field, dtype=np.float32)
    return BiasCorrection(
        image=corrected,
        field=field,
        mask=fit_mask,
        shrink_factors=tuple(int(f) for f in factors),  # type: ignore[arg-type]
        n_levels=int(n_levels),
        n_iterations_last_level=int(n4.GetElapsedIterations()),
        convergence_last_level=float(n4.GetCurrentConvergenceMeasurement()),
    )
