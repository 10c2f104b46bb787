"""Injection window and proposed injection site (graftimg.segment.injection)."""

from __future__ import annotations

import numpy as np
import pytest

from graftimg.errors import ConfigError, SegmentationError, SpacingError
from graftimg.segment.injection import center_on_site, injection_window, propose_injection_site

ISO = (0.5, 0.5, 0.5)
ANISO = (0.5, 0.5, 3.0)
SPACINGS = [pytest.param(ISO, id="iso0.5"), pytest.param(ANISO, id="0.5x0.5x3")]

LEVELS = {  # relative intensities (CSF on T2w = 1), docs/phantom.md
    "iron": {"background": 0.25, "csf": 0.9, "cord": 0.4, "graft": 0.0},
    "t2": {"background": 0.3, "csf": 1.0, "cord": 0.35, "graft": 0.6},
}


def cord_phantom(*, spacing, mode, blob_centre_mm=None, blob_semi_mm=(2.0, 1.8, 5.0), seed=0):
    """Straight elliptical cord in CSF, ±30 % bias, Rician noise (SNR 20), optional blob.

    Positions are in mm from the centre of the field of view; voxel i is centred on
    ``(i + 0.5)·spacing``. The blob is rendered with 4× supersampled partial volume.
    """
    shape = (round(24 / spacing[0]), round(24 / spacing[1]), round(84 / spacing[2]))
    coords = [(np.arange(n) + 0.5) * s - n * s / 2 for n, s in zip(shape, spacing, strict=True)]
    x, y, z = np.meshgrid(*coords, indexing="ij")
    lev = LEVELS[mode]
    r_cord = (x / 6.25) ** 2 + (y / 4.25) ** 2
    r_dura = (x / 9.25) ** 2 + (y / 7.25) ** 2
    signal = np.where(r_cord <= 1, lev["cord"], np.where(r_dura <= 1, lev["csf"], 0.0))
    signal = np.where(r_dura > 1, lev["background"], signal)
    truth = np.zeros(shape)
    if blob_centre_mm is not None:
        offsets = (np.arange(4) + 0.5) / 4 - 0.5
        for dx in offsets:
            for dy in offsets:
                for dz in offsets:
                    u = [
                        (c + d * s - m) / r
                        for c, d, s, m, r in zip(
                            (x, y, z), (dx, dy, dz), spacing, blob_centre_mm, blob_semi_mm,
                            strict=True,
                        )
                    ]  # fmt: skip
                    truth += (u[0] ** 2 + u[1] ** 2 + u[2] ** 2 <= 1) / 64.0
        signal = signal * (1 - truth) + lev["graft"] * truth
    field = 1 + 0.3 * (0.6 * y / 12 + 0.2 * x / 12 + 0.2 * z / 42)
    rng = np.random.default_rng(seed)
    sigma = lev["cord"] / 20
    noisy = np.hypot(signal + rng.normal(0, sigma, shape), rng.normal(0, sigma, shape))
    return (noisy * field).astype(np.float32), r_cord <= 1, truth


def centroid_voxel(weights):
    idx = np.indices(weights.shape)
    return np.array([np.average(idx[a], weights=weights) for a in range(3)])


# --- propose_injection_site ------------------------------------------------------------------


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("mode", ["iron", "t2"])
def test_proposes_an_off_centre_graft(mode, spacing):
    image, cord, truth = cord_phantom(
        spacing=spacing, mode=mode, blob_centre_mm=(1.5, 0.8, 14.3), seed=3
    )
    site, score = propose_injection_site(image, cord, spacing=spacing, mode=mode)
    assert site is not None and site.shape == (3,)
    error_mm = np.linalg.norm((site - centroid_voxel(truth)) * np.asarray(spacing))
    assert error_mm < 0.5
    volume_mm3 = 4 / 3 * np.pi * 2.0 * 1.8 * 5.0
    assert score > 3 * volume_mm3  # Σ z·v over a graft many σ from normal


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("mode", ["iron", "t2"])
def test_clean_cord_proposes_nothing(mode, spacing):
    image, cord, _ = cord_phantom(spacing=spacing, mode=mode, seed=4)
    assert propose_injection_site(image, cord, spacing=spacing, mode=mode) == (None, 0.0)


def test_the_mode_decides_the_polarity():
    image, cord, _ = cord_phantom(spacing=ANISO, mode="iron", blob_centre_mm=(0, 0, -10))
    assert propose_injection_site(image, cord, spacing=ANISO, mode="t2") == (None, 0.0)
    site, _ = propose_injection_site(image, cord, spacing=ANISO, mode="iron")
    assert site is not None


def test_proposal_score_threshold_and_gain():
    image, cord, _ = cord_phantom(spacing=ANISO, mode="t2", blob_centre_mm=(0, 0, 0))
    site, score = propose_injection_site(image, cord, spacing=ANISO, mode="t2")
    none, same = propose_injection_site(image, cord, spacing=ANISO, mode="t2", min_score=2 * score)
    assert none is None and same == pytest.approx(score)
    site2, score2 = propose_injection_site(image * 7.3, cord, spacing=ANISO, mode="t2")
    np.testing.assert_allclose(site2, site, atol=1e-6)
    assert score2 == pytest.approx(score, rel=1e-5)


def test_proposal_refuses_bad_input():
    image, cord, _ = cord_phantom(spacing=ANISO, mode="t2")
    with pytest.raises(ConfigError, match="mode must be"):
        propose_injection_site(image, cord, spacing=ANISO, mode="flair")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k_sigma must be positive"):
        propose_injection_site(image, cord, spacing=ANISO, mode="t2", k_sigma=0)
    with pytest.raises(SegmentationError, match="cord mask is empty"):
        propose_injection_site(image, np.zeros_like(cord), spacing=ANISO, mode="t2")
    with pytest.raises(SpacingError):
        propose_injection_site(image, cord, spacing=(1, 1), mode="t2")


# --- injection_window ------------------------------------------------------------------------


def test_window_is_the_cord_dilated_in_plane_within_l():
    cord = np.zeros((9, 9, 21), bool)
    cord[3:6, 3:6, 2:19] = True  # slices 2..18 hold cord
    s = np.where(cord.any(axis=(0, 1)), (np.arange(21) - 10) * 2.0, np.nan)
    window = injection_window(cord, s, half_length_mm=6, spacing=(1, 1, 2))
    np.testing.assert_array_equal(np.flatnonzero(window.any(axis=(0, 1))), np.arange(7, 14))
    # 3×3 square dilated by a one-voxel cross: 9 + 4·3 = 21 voxels per slice, none through-plane.
    assert window[..., 10].sum() == 21
    assert window.sum() == 7 * 21
    cord_only = injection_window(cord, s, half_length_mm=6, dilate_inplane_voxels=0)
    assert cord_only.sum() == 7 * 9
    assert not (cord_only & ~window).any()


def test_window_never_dilates_across_thick_axes():
    cord = np.zeros((9, 9, 5), bool)
    cord[4, 4, :] = True
    s = np.zeros(5)
    # Thick sagittal slices (3 mm in x): dilation only along y.
    window = injection_window(cord, s, half_length_mm=1, spacing=(3.0, 0.5, 0.5))
    assert window[..., 2].sum() == 3 and window[4, 3:6, 2].all()
    window = injection_window(cord, s, half_length_mm=1, dilate_inplane_voxels=2)
    assert window[..., 2].sum() == 13  # a diamond of radius 2


def test_window_skips_slices_without_cord_and_validates():
    cord = np.ones((3, 3, 4), bool)
    s = np.array([np.nan, 0.0, 1.0, np.nan])
    window = injection_window(cord, s, half_length_mm=5, dilate_inplane_voxels=0)
    assert window.any(axis=(0, 1)).tolist() == [False, True, True, False]
    with pytest.raises(ConfigError, match="half_length_mm must be positive"):
        injection_window(cord, s, half_length_mm=0)
    with pytest.raises(SegmentationError, match="do not match"):
        injection_window(cord, s[:3], half_length_mm=5)


# --- center_on_site --------------------------------------------------------------------------


def test_center_on_site():
    s = np.array([np.nan, 0.0, 3.0, 6.0, np.nan])
    np.testing.assert_allclose(center_on_site(s, 2), [np.nan, -3, 0, 3, np.nan])
    np.testing.assert_allclose(center_on_site(s, 2.5), [np.nan, -4.5, -1.5, 1.5, np.nan])
    # A site half a slice past the last cord slice snaps to it.
    np.testing.assert_allclose(center_on_site(s, 3.4), [np.nan, -6, -3, 0, np.nan])
    with pytest.raises(SegmentationError, match="holds no cord"):
        center_on_site(s, 0.2)
    with pytest.raises(SegmentationError, match="outside the 5 slices"):
        center_on_site(s, 4.5)
