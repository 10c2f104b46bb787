"""Rician noise of magnitude MR images."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["add_rician_noise", "rayleigh_mean"]


def add_rician_noise(signal, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Return ``|S + n_r + i·n_i|`` with ``n_r, n_i ~ N(0, σ²)`` (float32).

    Parameters
    ----------
    signal : ndarray
        Noise-free magnitude.
    sigma : float
        Standard deviation of each channel (SNR = signal / σ).
    rng : numpy.random.Generator
        Source of the noise.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> air = add_rician_noise(np.zeros(200_000), 2.0, rng)
    >>> round(float(air.mean()) / rayleigh_mean(2.0), 2)
    1.0
    """
    s = np.asarray(signal, dtype=np.float32)
    real = rng.standard_normal(s.shape, dtype=np.float32)
    real *= np.float32(sigma)
    real += s
    imag = rng.standard_normal(s.shape, dtype=np.float32)
    imag *= np.float32(sigma)
    return np.hypot(real, imag)


def rayleigh_mean(sigma: float) -> float:
    """Mean of pure noise (signal 0): ``σ·√(π/2)``, the level of a signal void."""
    return float(sigma) * math.sqrt(math.pi / 2.0)
