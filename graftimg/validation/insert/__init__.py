"""Grafts of known volume inserted into real spinal cord scans, with partial-volume truth.

A *host* is a real scan with its manual cord mask (:func:`load_host`). :func:`synthesize` turns
it into one validation image:

1. **Resampling** (:func:`resample_host`). The host is carried onto an axis-aligned RAS target
   grid (any voxel size) through a rigid motion of the subject (≤ 3°, ≤ 2 mm by default), in one
   resampling: the image by cubic B-spline interpolation, the manual mask by linear
   interpolation of its 0/1 values (kept where ≥ 0.5). Where a target voxel is much thicker than
   the host's along an axis (a 3 mm slice from a 1 mm scan) each voxel averages ``⌈2·ratio⌉``
   points across that axis — the slice profile — instead of reading one point of a 3 mm slab.
   The host's own noise σ₀ is measured on the scan (:func:`graftimg.preprocess.noise
   .estimate_noise`); what is left of it after resampling, ``g·σ₀``, is found by passing white
   noise of σ = 1 through the same interpolation (``g`` is the *noise gain*, < 1: cubic
   interpolation and slice averaging smooth noise).
2. **Placement.** A centre slice is drawn on the manual cord away from the grid's ends; the
   insert is an ellipsoid elongated along the local cord axis (the line through the manual
   mask's centroids 3 slices either side), in-plane semi-axes a fraction of the local cord
   half-widths, length from the requested volume (at most 12 mm half-length and what the field
   of view allows). Its surface must lie inside the manual cord (linear interpolation of the
   mask ≥ 0.5 at 12 × 24 surface points); ``centre`` puts it on the cord's centroid,
   ``edge`` slides it in a random in-plane direction until its surface touches the cord's
   boundary, ``offcentre`` half that far. If even the centred ellipsoid does not fit, its
   in-plane axes shrink (the length grows to keep the volume) — and the volume shrinks when the
   length hits its bound; the volume inserted is always the one recorded.
3. **Insertion** (all noise-free; truth = partial-volume fractions from
   ``4 × 4 × 4`` sub-samples per voxel, up to 12 along a thick axis):

   - ``t2``: tissue at ``μ_cord + f·(μ_CSF − μ_cord)`` (:func:`cord_and_csf_levels`), times a
     smooth multiplicative texture ``1 + t·g`` (``g`` unit-variance Gaussian-smoothed white
     noise, 1.5 mm correlation, ``t`` 5–10 %). The change is *added* to the host,
     ``I + p_graft·(G·texture − μ_cord) + p_cyst·(μ_CSF − μ_cord)``: a voxel part graft and part
     cord or CSF takes the right mixture, and the host's texture and noise stay. An optional
     cyst (CSF level) is a smaller ellipsoid (35–60 % of each semi-axis) at the graft's centre
     or towards one end, clipped to the graft; the graft truth excludes it.
   - ``iron``: a deposit of radius ``a`` blooming as the dipole of
     :mod:`graftimg.phantom.iron` (``K`` sized so that the analytic void has the requested
     volume; B0 along scanner z). Each voxel's signal is multiplied by the magnitude of the
     sub-sample mean of ``0`` (in the void) or ``exp(iφ)`` (outside) — the through-voxel
     dephasing of the phantom renderer, :mod:`graftimg.phantom.render`. The truth is the
     noise-free *signal loss* ``1 − S/B`` per voxel (S with iron, B without), the definition of
     ``benchmarks/validate_phantoms.py``: its sum × voxel volume is the void as this acquisition
     sees it, a little larger than the analytic ``|φ| ≥ φc`` void.
4. **Field of view.** The grid is cropped along S-I to the requested length, the insert (every
   voxel of truth > 0.001) fully inside with a random offset.
5. **Noise** (:func:`add_noise_to_snr`). ``σ_t = median(cord)/SNR``; Rician noise
   ``|I + n_r + i·n_i|`` of ``σ_add = √(σ_t² − σ_res²)`` is added (``σ_res`` the host noise left
   after resampling, scaled by the signal kept in an iron void, so that the noise is uniform).
   When the host is noisier than the target, nothing is added and the SNR reached is recorded,
   never the target.

The host's texture, bias field, partial volume at the cord edge and noise are real; what is
synthetic is the insert. Every random choice comes from one seed.
"""

from __future__ import annotations

from graftimg.validation.insert.host import HostScan, ResampledHost, load_host, resample_host
from graftimg.validation.insert.levels import Levels, cord_and_csf_levels
from graftimg.validation.insert.noise import add_noise_to_snr
from graftimg.validation.insert.spec import InsertSpec, SyntheticImage
from graftimg.validation.insert.synthesis import MAX_HALF_LENGTH_MM as MAX_HALF_LENGTH_MM
from graftimg.validation.insert.synthesis import synthesize
from graftimg.validation.insert.truth import ellipsoid_fraction

__all__ = [
    "HostScan",
    "InsertSpec",
    "Levels",
    "ResampledHost",
    "SyntheticImage",
    "add_noise_to_snr",
    "cord_and_csf_levels",
    "ellipsoid_fraction",
    "load_host",
    "resample_host",
    "synthesize",
]
