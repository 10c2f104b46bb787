"""Rician noise added to reach a target SNR over the noise a host already holds."""

from __future__ import annotations

import math

import numpy as np

from graftimg.errors import ConfigError

__all__ = ["add_noise_to_snr"]


def add_noise_to_snr(
    image: np.ndarray,
    *,
    signal: float,
    snr: float,
    residual_sigma: float,
    rng: np.random.Generator,
    residual_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Add Rician noise so that ``signal / σ_total`` reaches ``snr`` (if the image allows).

    Parameters
    ----------
    image : ndarray
        Image that already holds noise of σ ``residual_sigma`` (times ``residual_scale``).
    signal : float
        The signal the SNR refers to (median of the cord).
    snr : float
        Target SNR.
    residual_sigma : float
        σ of the noise already in the image.
    rng : numpy.random.Generator
        Noise source.
    residual_scale : ndarray, optional
        Per-voxel factor on the residual noise (the signal kept in an iron void); the added σ
        makes every voxel's total σ the same.

    Returns
    -------
    noisy : ndarray of float64
        ``|I + n_r + i·n_i|``.
    info : dict
        ``sigma_target``, ``sigma_added`` (where the residual is unscaled), ``sigma_residual``,
        ``snr_target``, ``snr_reached`` and ``signal``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noisy, info = add_noise_to_snr(np.full(50_000, 200.0), signal=200.0, snr=20.0,
    ...                                residual_sigma=6.0, rng=rng)
    >>> round(info["sigma_added"], 2), round(float(noisy.std()), 1)
    (8.0, 8.0)
    >>> info = add_noise_to_snr(np.full(10, 200.0), signal=200.0, snr=40.0,
    ...                         residual_sigma=6.0, rng=rng)[1]
    >>> info["sigma_added"], round(info["snr_reached"], 2)
    (0.0, 33.33)
    """
    if not (snr > 0 and math.isfinite(snr)):
        raise ConfigError(f"snr must be positive and finite, got {snr}")
    target = float(signal) / float(snr)
    residual = float(residual_sigma)
    scale = 1.0 if residual_scale is None else np.asarray(residual_scale, dtype=float)
    added = np.sqrt(np.clip(target**2 - (scale * residual) ** 2, 0.0, None))
    image = np.asarray(image, dtype=np.float64)
    real = image + rng.standard_normal(image.shape) * added
    imag = rng.standard_normal(image.shape) * added
    added_plain = math.sqrt(max(target**2 - residual**2, 0.0))
    total = math.hypot(residual, added_plain)
    info = {
        "signal": float(signal),
        "snr_target": float(snr),
        "sigma_target": target,
        "sigma_residual": residual,
        "sigma_added": added_plain,
        "snr_reached": float(signal) / total if total > 0 else math.inf,
    }
    return np.hypot(real, imag), info
