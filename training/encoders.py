"""Training-target encoders, the exact inverses of ``sdk.decoders`` (REFERENCE.md §1).

Points are (N, L, 2) arrays of (x, y) in network-input pixels. Every heat-map
decoder returns ``stride * (column, row)`` with no +0.5 term, so a point p lies
at map coordinate ``t = p / stride`` and cell (column c, row r) sits at t = (c, r).
Non-finite points (missing labels) give all-zero targets and ``valid = False``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sdk.decoders.heatmap import SHR_TEMPERATURE, SHR_WINDOW

# SHR target Gaussian sigma in map cells. The decoder's window and temperature (sdk.decoders)
# were searched for this sigma: at sigma <= 1.7 no temperature gets below 0.013 cells because
# softmax(G/T) of a Gaussian G is not itself Gaussian-shaped and its integer-grid mean is biased.
SHR_SIGMA = 2.0


def _as_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[2] != 2:
        raise ValueError(f"points must be (N, L, 2), got shape {pts.shape}")
    return pts


def _map_hw(map_size: Sequence[int]) -> tuple[int, int]:
    h, w = (int(v) for v in map_size)
    if h < 1 or w < 1:
        raise ValueError(f"map size must be positive (H, W), got {tuple(map_size)}")
    return h, w


def _map_coords(points: np.ndarray, stride: float) -> tuple[np.ndarray, np.ndarray]:
    """(t, finite): map coordinates p / stride and which points are labelled."""
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    pts = _as_points(points)
    finite = np.isfinite(pts).all(axis=2)
    t = np.where(finite[..., None], pts, 0.0) / float(stride)
    return t, finite


def _one_hot(cols: np.ndarray, rows: np.ndarray, on: np.ndarray, h: int, w: int, dtype) -> np.ndarray:
    """(N, L, H, W) maps with a 1 at (rows, cols) wherever ``on``."""
    n, l = on.shape
    maps = np.zeros((n, l, h, w), dtype=dtype)
    ni, li = np.nonzero(on)
    maps[ni, li, rows[ni, li], cols[ni, li]] = 1
    return maps


def encode_h3r(points: np.ndarray, map_size: Sequence[int], stride: float, rng: np.random.Generator, *,
               dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """H3R randomized rounding: per axis q = floor(t) + Bernoulli(t − floor(t)), one-hot map at q.

    E[q] = t, so a network trained on many draws learns the unbiased position.
    Returns ``(maps (N, L, H, W), valid (N, L) bool)``; a point whose rounded cell
    falls outside the map (or is unlabelled) gets an all-zero map and valid False —
    mask it out of the loss.
    """
    h, w = _map_hw(map_size)
    t, finite = _map_coords(points, stride)
    base = np.floor(t)
    q = (base + (rng.random(t.shape) < (t - base))).astype(np.int64)
    cols, rows = q[..., 0], q[..., 1]
    valid = finite & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    return _one_hot(cols, rows, valid, h, w, dtype), valid


def h3r_expected_map(points: np.ndarray, map_size: Sequence[int], stride: float) -> np.ndarray:
    """E[encode_h3r(...)]: bilinear split of unit mass over the 4 cells around t (float64).

    Mass of cells outside the map is dropped, exactly as the random encoder drops
    those draws. ``log`` of this is what a perfectly trained H3R net outputs (up to
    a constant per map) under the spatial softmax cross-entropy loss.
    """
    h, w = _map_hw(map_size)
    t, finite = _map_coords(points, stride)
    n, l = finite.shape
    base = np.floor(t).astype(np.int64)
    frac = t - base
    maps = np.zeros((n, l, h, w), dtype=np.float64)
    ni, li = np.meshgrid(np.arange(n), np.arange(l), indexing="ij")
    for dx in (0, 1):
        for dy in (0, 1):
            c, r = base[..., 0] + dx, base[..., 1] + dy
            wgt = (frac[..., 0] if dx else 1 - frac[..., 0]) * (frac[..., 1] if dy else 1 - frac[..., 1])
            keep = finite & (c >= 0) & (c < w) & (r >= 0) & (r < h) & (wgt > 0)
            maps[ni[keep], li[keep], r[keep], c[keep]] += wgt[keep]
    return maps


def encode_shr(points: np.ndarray, map_size: Sequence[int], stride: float, sigma: float = SHR_SIGMA) -> np.ndarray:
    """SHR continuous encoding: Gaussian of peak 1 centred at the unrounded t (sigma in cells).

    No rounding, so the target itself carries the sub-pixel position. Points off
    the map keep their visible tail; unlabelled points give zero maps. float32.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    h, w = _map_hw(map_size)
    t, finite = _map_coords(points, stride)
    inv = 1.0 / (2.0 * sigma * sigma)
    gx = np.exp(-((np.arange(w) - t[..., 0, None]) ** 2) * inv)     # (N, L, W)
    gy = np.exp(-((np.arange(h) - t[..., 1, None]) ** 2) * inv)     # (N, L, H)
    maps = gy[..., :, None] * gx[..., None, :] * finite[..., None, None]
    return maps.astype(np.float32)


def encode_pipnet(points: np.ndarray, grid: Sequence[int], stride: float,
                  neighbours: np.ndarray) -> dict[str, np.ndarray]:
    """PIPNet targets, the inverse of ``decode_pipnet`` (float32 maps unless noted).

    cell = floor(p / stride), **clipped to the grid** for points outside it; offsets
    are measured from that (clipped) cell, so they may leave [0, 1) but the decoder
    still recovers the exact point. Neighbour offsets of landmark j are written at
    j's own cell: ``t_neighbour − cell_j``, channel ``j * nb + slot``.

    Keys: ``cls``, ``offset_x``, ``offset_y``, ``mask`` (N, L, H, W; mask = GT cell);
    ``nb_x``, ``nb_y``, ``nb_mask`` (N, L·nb, H, W; nb_mask = j's GT cell where both j
    and its neighbour are labelled); ``valid`` (N, L) bool.
    """
    h, w = _map_hw(grid)
    t, finite = _map_coords(points, stride)
    nbrs = np.asarray(neighbours, dtype=np.int64)
    n, l = finite.shape
    if nbrs.ndim != 2 or nbrs.shape[0] != l:
        raise ValueError(f"neighbours must be (L={l}, nb), got shape {nbrs.shape}")
    if nbrs.size and (nbrs.min() < 0 or nbrs.max() >= l):
        raise ValueError("neighbour indices out of range")
    nb = nbrs.shape[1]
    cols = np.clip(np.floor(t[..., 0]), 0, w - 1).astype(np.int64)
    rows = np.clip(np.floor(t[..., 1]), 0, h - 1).astype(np.int64)
    mask = _one_hot(cols, rows, finite, h, w, np.float32)

    def at_cell(values: np.ndarray, c: np.ndarray, r: np.ndarray, on: np.ndarray) -> np.ndarray:
        k = values.shape[1]
        out = np.zeros((n, k, h, w), dtype=np.float32)
        ni, ki = np.nonzero(on)
        out[ni, ki, r[ni, ki], c[ni, ki]] = values[ni, ki]
        return out

    off = t - np.stack([cols, rows], axis=-1)                         # (N, L, 2)
    nb_t = t[:, nbrs.reshape(-1), :]                                   # (N, L·nb, 2), order j*nb+slot
    cell_rep = np.repeat(np.stack([cols, rows], axis=-1), nb, axis=1)  # j's cell for each (j, slot)
    nb_off = nb_t - cell_rep
    nb_on = np.repeat(finite, nb, axis=1) & finite[:, nbrs.reshape(-1)]
    c_rep, r_rep = cell_rep[..., 0], cell_rep[..., 1]
    return {
        "cls": mask.copy(),
        "offset_x": at_cell(off[..., 0], cols, rows, finite),
        "offset_y": at_cell(off[..., 1], cols, rows, finite),
        "nb_x": at_cell(nb_off[..., 0], c_rep, r_rep, nb_on),
        "nb_y": at_cell(nb_off[..., 1], c_rep, r_rep, nb_on),
        "mask": mask,
        "nb_mask": _one_hot(c_rep, r_rep, nb_on, h, w, np.float32),
        "valid": finite,
    }


def pipnet_meanface(landmarks_normalised: np.ndarray) -> np.ndarray:
    """Mean face (L, 2) of normalised training landmarks (N, L, 2), ignoring NaN labels.

    Feed it to ``sdk.decoders.pipnet_neighbour_tables`` for the neighbour lists.
    """
    pts = _as_points(landmarks_normalised)
    labelled = np.isfinite(pts).all(axis=2)
    counts = labelled.sum(axis=0)
    if pts.shape[0] == 0 or (counts == 0).any():
        raise ValueError(f"landmarks never labelled: {np.flatnonzero(counts == 0).tolist()}")
    total = np.where(labelled[..., None], pts, 0.0).sum(axis=0)
    return total / counts[:, None]


__all__ = ["SHR_SIGMA", "SHR_TEMPERATURE", "SHR_WINDOW", "encode_h3r", "encode_pipnet", "encode_shr",
           "h3r_expected_map", "pipnet_meanface"]
