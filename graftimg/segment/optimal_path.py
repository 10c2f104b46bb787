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
    scores : (N, B, ...) ndarray
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
    # Each problem's grid sits in a frame of −inf scores wide enough for every move, and the
    # batch is flattened: "the predecessor of p is p − offset" is then one contiguous slice of
    # the whole batch per move (moves that leave a grid land on the frame, or on a neighbour's
    # frame, whose −inf scores keep them out of every path).
    framed_shape = tuple(int(g + 2 * q) for g, q in zip(grid, pad, strict=True))
    inner = tuple(slice(int(q), int(q + g)) for g, q in zip(grid, pad, strict=True))
    acc = np.full((n_steps, n_batch, *framed_shape), -np.inf)
    acc[(slice(None), slice(None), *inner)] = scores
    acc = acc.reshape(n_steps, -1)  # scores now; best path sums once the forward pass is done
    size = acc.shape[1]
    strides = np.cumprod((1, *framed_shape[:0:-1]))[::-1]
    shift = offsets @ strides  # (K,) move along the flattened batch
    m = int(np.abs(shift).max())
    body = slice(m, size - m)
    length = size - 2 * m
    reach = np.empty(length)
    if len(shift) > 1 and np.all(np.diff(shift) == 1):
        # Consecutive moves (a 1D grid): the K shifted copies are K rows of one sliding-window
        # view, so each step is three array operations whatever K is.
        # moved[n, k, j] = acc[n, m − shift[k] + j]; shift[k] = shift[0] + k, so the rows of
        # one step start one element apart, backwards (read-only view, never out of acc).
        step, item = acc.strides
        moved = np.lib.stride_tricks.as_strided(
            acc[:, m - shift[0] :],
            shape=(n_steps, len(shift), length),
            strides=(step, -item, item),
            writeable=False,
        )
        candidates = np.empty((len(shift), length))
        costs = penalties[:, None]
        for n in range(1, n_steps):
            np.subtract(moved[n - 1], costs, out=candidates)
            np.max(candidates, axis=0, out=reach)
            acc[n, body] += reach
    else:
        trial = np.empty_like(reach)
        for n in range(1, n_steps):
            previous = acc[n - 1]
            for k, move in enumerate(shift):
                moved = previous[m - move : size - m - move]
                if k == 0:
                    np.subtract(moved, penalties[0], out=reach)
                else:
                    np.subtract(moved, penalties[k], out=trial)
                    np.maximum(reach, trial, out=reach)
            acc[n, body] += reach

    # Backward: re-evaluate the moves into the chosen positions; the first best move in the
    # order of `offsets` wins ties.
    block = size // n_batch
    pos = np.argmax(acc[-1].reshape(n_batch, block), axis=1) + np.arange(n_batch) * block
    trail = np.empty((n_steps, n_batch), dtype=np.intp)
    trail[-1] = pos
    rows = np.arange(n_batch)
    before = np.empty((n_batch, len(shift)), dtype=np.intp)
    for n in range(n_steps - 1, 0, -1):
        np.subtract(pos[:, None], shift[None, :], out=before)  # (B, K)
        # (kept on the array: a problem without any finite path may wander off its grid)
        np.maximum(before, 0, out=before)
        np.minimum(before, size - 1, out=before)
        pos = before[rows, np.argmax(acc[n - 1][before] - penalties, axis=1)]
        trail[n - 1] = pos
    cells = np.stack(np.unravel_index(trail % block, framed_shape), axis=-1) - pad
    return np.clip(cells, 0, np.asarray(grid) - 1)


def best_closed_paths(
    scores: np.ndarray, offsets: np.ndarray, penalties: np.ndarray, *, n_turns: int = 3
) -> np.ndarray:
    """Like :func:`best_paths` for closed contours: step ``N − 1`` is followed by step 0.

    The stack is repeated ``n_turns`` times and the middle turn of the best open path is kept,
    which closes the contour up to a rare mismatch of one move at the seam.

    Parameters
    ----------
    scores : (N, B, ...) ndarray
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
