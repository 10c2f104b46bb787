"""Best smooth path through a stack of score maps, by dynamic programming.

Both stages of the cord segmentation need the same tool: pick one position per step (per axial
slice for the cord's course, per ray angle for the cord's edge) so that the summed scores are
high and consecutive positions stay close. :func:`best_paths` solves that exactly (Viterbi
recursion) for many independent problems at once, vectorised with NumPy, and also for closed
contours (:func:`best_closed_paths`). scikit-image's minimum-cost-path tools
(``skimage.graph.MCP``) solve one problem at a time with a path-length cost only; here a batch
of hundreds of slices is solved in one sweep with an explicit transition penalty.

Examples
--------
>>> import numpy as np
>>> scores = np.zeros((4, 1, 5))
>>> scores[:, 0, 2] = 1.0  # the best position is 2 at every step
>>> offsets = np.array([[-1], [0], [1]])
>>> best_paths(scores, offsets, np.array([0.5, 0.0, 0.5]))[:, 0, 0].tolist()
[2, 2, 2, 2]
"""

from __future__ import annotations

import numpy as np

__all__ = ["best_closed_paths", "best_paths", "disk_offsets"]


def disk_offsets(radius_mm: float, step_mm: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets of a grid that lie within ``radius_mm``, with their lengths in mm.

    Parameters
    ----------
    radius_mm : float
        Largest allowed displacement, in mm.
    step_mm : tuple of float
        Grid spacing along each axis, in mm.

    Returns
    -------
    offsets : (K, D) ndarray of int
        The offsets, always including the zero offset.
    lengths_mm : (K,) ndarray of float
        Euclidean length of each offset, in mm.

    Examples
    --------
    >>> offsets, lengths = disk_offsets(1.0, (1.0, 1.0))
    >>> len(offsets), float(lengths.max())
    (5, 1.0)
    """
    step = np.asarray(step_mm, dtype=float)
    half = np.floor(radius_mm / step + 1e-9).astype(int)
    axes = [np.arange(-h, h + 1) for h in half]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(step))
    lengths = np.sqrt(((grid * step) ** 2).sum(axis=1))
    keep = lengths <= radius_mm + 1e-9
    return grid[keep], lengths[keep]


def best_paths(scores: np.ndarray, offsets: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """Highest-scoring path through each of a batch of score-map stacks.

    The path visits one grid position per step; moving by ``offsets[k]`` between consecutive
    steps costs ``penalties[k]``; other moves are not allowed. The path maximises
    ``Σ_n scores[n, b, p_n] − Σ_n penalty(p_n − p_{n−1})`` exactly. The forward pass is a grey
    dilation with a non-flat structuring element, written as one shifted view per allowed move
    (a handful of moves on small grids, where ``scipy.ndimage.grey_dilation``'s cost per call
    dominated the cord tracing of a 1 mm image); the backward pass re-evaluates the allowed
    moves at the chosen positions only, on the flattened grid.

    Parameters
    ----------
    scores : (N, B, *grid) ndarray
        Score of each position at each of ``N`` steps, for ``B`` independent problems.
        ``-inf`` forbids a position.
    offsets : (K, D) ndarray of int
        Allowed moves between consecutive steps, ``D = len(grid)``.
    penalties : (K,) ndarray
        Cost of each move (non-negative).

    Returns
    -------
    (N, B, D) ndarray of int
        Grid position of each path at each step.
    """
    scores = np.asarray(scores, dtype=np.float64)
    penalties = np.asarray(penalties, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.intp).reshape(len(penalties), -1)
    n_steps, n_batch = scores.shape[:2]
    grid = scores.shape[2:]
    pad = np.abs(offsets).max(axis=0)
    # acc[n−1] sits in a −inf frame, so that "the predecessor of p is p − offset" is a view.
    framed = np.full((n_batch, *(g + 2 * q for g, q in zip(grid, pad, strict=True))), -np.inf)
    inner = (slice(None), *(slice(q, q + g) for g, q in zip(grid, pad, strict=True)))
    views = [
        framed[(slice(None), *(slice(q - o, q - o + g) for g, q, o in zip(grid, pad, off)))]
        for off in offsets
    ]
    candidates = np.empty((len(offsets), n_batch, *grid))
    acc = np.empty_like(scores)
    acc[0] = scores[0]
    for n in range(1, n_steps):
        framed[inner] = acc[n - 1]
        for k, view in enumerate(views):
            np.subtract(view, penalties[k], out=candidates[k])
        np.max(candidates, axis=0, out=acc[n])
        acc[n] += scores[n]

    # Backward on the flattened grid: each position's predecessor under each move (clipped)
    # and that move's cost (+inf when the predecessor is off the grid).
    cells = np.indices(grid).reshape(len(grid), -1).T  # (G, D)
    before = cells[:, None, :] - offsets[None, :, :]  # (G, K, D)
    on_grid = np.all((before >= 0) & (before < np.asarray(grid)), axis=2)
    predecessor = np.ravel_multi_index(tuple(np.moveaxis(before, 2, 0)), grid, mode="clip")
    cost = np.where(on_grid, penalties[None, :], np.inf)
    flat = acc.reshape(n_steps, n_batch, -1)
    batch = np.arange(n_batch)[:, None]
    trail = np.empty((n_steps, n_batch), dtype=np.intp)
    pos = np.argmax(flat[-1], axis=1)
    trail[-1] = pos
    for n in range(n_steps - 1, 0, -1):
        # the first best move in the order of `offsets` wins ties
        values = flat[n - 1][batch, predecessor[pos]] - cost[pos]
        pos = predecessor[pos, np.argmax(values, axis=1)]
        trail[n - 1] = pos
    return np.stack(np.unravel_index(trail, grid), axis=-1)


def best_closed_paths(
    scores: np.ndarray, offsets: np.ndarray, penalties: np.ndarray, *, n_turns: int = 3
) -> np.ndarray:
    """Like :func:`best_paths` for closed contours: step ``N − 1`` is followed by step 0.

    The stack is repeated ``n_turns`` times and the middle turn of the best open path is kept,
    which closes the contour up to a rare mismatch of one move at the seam.

    Parameters
    ----------
    scores : (N, B, *grid) ndarray
        Scores per step (e.g. ray angle), batch and position (e.g. radius).
    offsets, penalties : ndarray
        As in :func:`best_paths`.
    n_turns : int, optional
        Odd number of repetitions of the stack.

    Returns
    -------
    (N, B, D) ndarray of int
        Grid position of each closed path at each step.

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.zeros((6, 1, 4))
    >>> scores[:, 0, 1] = 1.0
    >>> offsets = np.array([[-1], [0], [1]])
    >>> best_closed_paths(scores, offsets, np.array([0.2, 0.0, 0.2]))[:, 0, 0].tolist()
    [1, 1, 1, 1, 1, 1]
    """
    n_steps = scores.shape[0]
    tiled = np.concatenate([scores] * n_turns, axis=0)
    path = best_paths(tiled, offsets, penalties)
    middle = n_turns // 2
    return path[middle * n_steps : (middle + 1) * n_steps]
