"""Tests of the dynamic-programming path search and the line-footprint maximum of the cord code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from graftimg.segment.cord_locate import _max_over_offsets, _ray_footprints
from graftimg.segment.cord_priors import cord_prior
from graftimg.segment.optimal_path import best_closed_paths, best_paths, disk_offsets


def _path_score(scores, path, offsets, penalties) -> float:
    cost = {tuple(o): p for o, p in zip(offsets.tolist(), penalties, strict=True)}
    total = sum(scores[(n, *path[n])] for n in range(len(path)))
    for n in range(1, len(path)):
        move = tuple(int(v) for v in np.subtract(path[n], path[n - 1]))
        if move not in cost:
            return -np.inf
        total -= cost[move]
    return float(total)


def _brute_force_best(scores, offsets, penalties) -> float:
    """Best score of a single problem (B = 1) by enumerating every path."""
    n_steps, grid = scores.shape[0], scores.shape[1:]
    cells = list(itertools.product(*(range(g) for g in grid)))
    best = -np.inf
    for path in itertools.product(cells, repeat=n_steps):
        best = max(best, _path_score(scores, np.array(path), offsets, penalties))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_best_paths_is_the_exhaustive_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dims = 1 + seed % 2
    grid = (5,) if dims == 1 else (3, 3)
    scores = rng.normal(size=(4, 3, *grid))
    if seed >= 4:
        scores[rng.random(scores.shape) < 0.25] = -np.inf  # forbidden positions
    offsets, lengths = disk_offsets(1.5, (1.0,) * dims)
    # asymmetric costs: a move and its reverse differ, so the move's direction matters
    penalties = 0.7 * lengths + 0.4 * (offsets[:, 0] > 0)
    paths = best_paths(scores, offsets, penalties)
    assert paths.shape == (4, 3, dims)
    for b in range(3):
        found = _path_score(scores[:, b], paths[:, b], offsets, penalties)
        assert found == pytest.approx(_brute_force_best(scores[:, b], offsets, penalties))


def test_best_closed_paths_close_on_a_ring() -> None:
    # a ring of radius 3 on rays, with noise: the contour must return to its start
    rng = np.random.default_rng(3)
    scores = rng.normal(scale=0.2, size=(36, 2, 8))
    scores[:, 0, 3] += 2.0
    scores[:18, 1, 5] += 2.0
    scores[18:, 1, 4] += 2.0
    offsets = np.array([[-1], [0], [1]])
    path = best_closed_paths(scores, offsets, np.array([0.3, 0.0, 0.3]))[:, :, 0]
    assert (path[:, 0] == 3).all()
    assert abs(int(path[0, 1]) - int(path[-1, 1])) <= 1
    assert set(path[:, 1].tolist()) <= {4, 5}


@pytest.mark.parametrize("mode", ["nearest", "constant"])
def test_max_over_offsets_is_scipys_maximum_filter(mode: str) -> None:
    rng = np.random.default_rng(0)
    planes = rng.random((23, 19, 4)).astype(np.float32)
    for _, offsets in _ray_footprints(cord_prior("human"), (1.0, 1.4), 12):
        half = int(np.abs(offsets).max())
        footprint = np.zeros((2 * half + 1, 2 * half + 1, 1), dtype=bool)
        footprint[half + offsets[:, 0], half + offsets[:, 1], 0] = True
        expected = ndimage.maximum_filter(planes, footprint=footprint, mode=mode)
        np.testing.assert_array_equal(_max_over_offsets(planes, offsets, mode), expected)
