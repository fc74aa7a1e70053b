"""Heat-map decoders: plain argmax, argmax + ¼ px, H3R top-k softmax, SHR local soft-argmax.

Map coordinates are cell indices (column, row); they are multiplied by ``stride``
to give network-input pixels. None of these adds a +0.5 pixel-centre term: the
model's crop rule (``coordinate_origin``) says how to read the result.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import cv2
import numpy as np


def _check_maps(heatmaps: np.ndarray) -> tuple[int, int, int, int]:
    if heatmaps.ndim != 4:
        raise ValueError(f"heat maps must be (N, L, H, W), got shape {heatmaps.shape}")
    return heatmaps.shape  # type: ignore[return-value]


def _argmax_cells(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, l, h, w = _check_maps(heatmaps)
    flat = heatmaps.reshape(n, l, h * w)
    idx = flat.argmax(axis=2)
    peak = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    return idx // w, idx % w, peak


def decode_argmax(heatmaps: np.ndarray, *, stride: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer peak location: the baseline every sub-pixel decoder must beat."""
    rows, cols, peak = _argmax_cells(heatmaps)
    xy = np.stack([cols, rows], axis=-1).astype(np.float32) * np.float32(stride)
    return xy, peak.astype(np.float32)


def decode_argmax_quarter(heatmaps: np.ndarray, *, stride: float) -> tuple[np.ndarray, np.ndarray]:
    """Argmax moved ¼ cell towards the higher neighbour on each axis (the classic refinement)."""
    n, l, h, w = _check_maps(heatmaps)
    rows, cols, peak = _argmax_cells(heatmaps)
    maps = heatmaps.reshape(n * l, h, w)
    r, c = rows.reshape(-1), cols.reshape(-1)
    k = np.arange(n * l)
    right = maps[k, r, np.minimum(c + 1, w - 1)]
    left = maps[k, r, np.maximum(c - 1, 0)]
    down = maps[k, np.minimum(r + 1, h - 1), c]
    up = maps[k, np.maximum(r - 1, 0), c]
    dx = 0.25 * np.sign(right - left)
    dy = 0.25 * np.sign(down - up)
    xy = np.stack([c + dx, r + dy], axis=-1).reshape(n, l, 2)
    return (xy * stride).astype(np.float32), peak.astype(np.float32)


def _softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    z = scores - scores.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


TOPK_WINDOW = 7  # side of the window around the peak searched first (top_cells)
EXP_SAFE = 60.0  # |peak| up to which float32 e^v of every cell <= the peak is finite and the peak's is normal


def top_cells(flat: np.ndarray, k: int, h: int, w: int) -> np.ndarray:
    """(M, k) indices of each row's k largest cells (any order).

    Equal values at the k-th place (quantized INT8 maps have them) go to the lower cell index, as
    ONNX's and OpenVINO's TopK order them, so the in-graph decoder (``converters.graph_decode``) and
    this one read the same cells. Fast path: a peaked heat map keeps its k largest cells near the peak, so the k largest of the
    7×7 window around each row's argmax are taken, and kept only where they provably are the
    row's k largest (every cell outside the window is below the window's k-th value); ties at the
    k-th value are settled in the window by index. Other rows (flat or multi-modal maps) fall back
    to a full stable sort.
    """
    return _top_cells(flat, k, h, w, flat.argmax(axis=1), _map_tables(len(flat), h, w))[0]


class _MapTables(NamedTuple):
    """Index tables of an (M, h*w) batch of maps, built once per shape (read-only: shared by every call and thread)."""

    corner: np.ndarray       # (h*w,) the first cell of the 7×7 window around each cell (clamped inside the map)
    offsets: np.ndarray      # (1, 49) the window's cells relative to its first, in index order
    row_start: np.ndarray    # (M, 1) each row's first element in the flattened batch
    coordinates: np.ndarray  # (h*w, 2) float64 (column, row) of each cell


@functools.lru_cache(maxsize=32)
def _map_tables(m: int, h: int, w: int) -> _MapTables:
    win = TOPK_WINDOW
    rows, cols = np.divmod(np.arange(h * w), w)
    corner = np.clip(rows - win // 2, 0, max(h - win, 0)) * w + np.clip(cols - win // 2, 0, max(w - win, 0))
    offs = np.arange(win)
    tables = _MapTables(corner, (offs[:, None] * w + offs).reshape(1, win * win), (np.arange(m) * (h * w))[:, None],
                        np.stack([cols, rows], axis=1).astype(np.float64))
    for table in tables:
        table.flags.writeable = False
    return tables


def _top_cells(flat: np.ndarray, k: int, h: int, w: int, peak_index: np.ndarray, tables: _MapTables
               ) -> tuple[np.ndarray, np.ndarray]:
    """``top_cells`` given each row's argmax, and the (M, k) values of those cells (float32)."""
    win = TOPK_WINDOW
    if k > win * win or h < win or w < win:
        idx = _stable_top(flat, k)
        return idx, np.take_along_axis(flat, idx, axis=1)
    m = flat.shape[0]
    # np.take, not fancy indexing: the same gather at a sixth of the call's cost on these small arrays
    cand = np.take(tables.corner, peak_index)[:, None] + tables.offsets  # (M, 49) window cells in index order
    linear = cand + tables.row_start  # into the flattened batch: one gather, one scatter
    vals = np.take(flat, linear)
    kth = np.sort(vals, axis=1)[:, win * win - k, None]
    chosen = vals >= kth
    if np.count_nonzero(chosen) != m * k:  # ties at the k-th value: as many of them as are missing, lowest index first
        above = vals > kth
        level = vals == kth
        chosen = above | (level & (np.cumsum(level, axis=1) <= k - np.count_nonzero(above, axis=1)[:, None]))
    idx = cand[chosen].reshape(m, k)
    top = vals[chosen].reshape(m, k)
    outside = flat.copy()
    np.put(outside, linear, -np.inf)
    unsure = np.flatnonzero(outside.max(axis=1) >= kth[:, 0])  # a cell outside the window could be among the k
    if unsure.size:
        idx[unsure] = _stable_top(flat[unsure], k)
        top[unsure] = np.take_along_axis(flat[unsure], idx[unsure], axis=1)
    return idx, top


def _stable_top(flat: np.ndarray, k: int) -> np.ndarray:
    """(M, k) indices of the k largest cells per row, ties to the lower index (ONNX TopK's rule)."""
    return np.argsort(-flat, axis=1, kind="stable")[:, :k]


def _exp_sums(flat: np.ndarray) -> np.ndarray:
    """(M,) float64 Σ e^v of each row (every |v| small enough not to overflow). OpenCV's exp and row sum
    take a third of numpy's time on a 98-map batch (22 vs 60 µs); the sum accumulates in float64."""
    if flat.dtype == np.float32 and flat.ndim == 2 and flat.flags.c_contiguous and 0 < flat.shape[0] < 2 ** 31:
        return cv2.reduce(cv2.exp(flat), 1, cv2.REDUCE_SUM, dtype=cv2.CV_64F)[:, 0]
    return np.exp(flat).sum(axis=1, dtype=np.float64)


def decode_h3r_topk(heatmaps: np.ndarray, *, stride: float, topk: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """H3R: softmax over each map's top-k scores, weighted mean of their (column, row).

    The score is the spatial-softmax mass of those k cells (Σ_topk e^v / Σ_all e^v): H3R trains a
    spatial softmax, so this is the model's own probability that the point lies where it is read.
    About 30 numpy calls per batch (index tables cached per map shape): right after a network call
    each costs its cold price, so their count, more than the three passes over the maps, sets the time.
    """
    n, l, h, w = _check_maps(heatmaps)
    k = int(min(topk, h * w))
    if k < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    flat = heatmaps.reshape(n * l, h * w)
    tables = _map_tables(n * l, h, w)
    idx, top_values = _top_cells(flat, k, h, w, flat.argmax(axis=1), tables)
    vals = top_values.astype(np.float64)
    peak = vals.max(axis=1, keepdims=True)
    top = np.exp(vals - peak)
    top_sum = top.sum(axis=1)
    xy = np.einsum("mk,mkc->mc", top, np.take(tables.coordinates, idx, axis=0)) * (stride / top_sum)[:, None]
    if np.abs(peak).max(initial=0.0) <= EXP_SAFE:  # e^v neither overflows nor vanishes: no shift pass
        mass = (top_sum * np.exp(peak[:, 0])) / _exp_sums(flat)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            shifted = np.subtract(flat, peak.astype(np.float32))
            total = np.exp(shifted, out=shifted).sum(axis=1)  # in place: this is the map-sized part
            mass = top_sum / total
    return xy.reshape(n, l, 2).astype(np.float32), mass.reshape(n, l).astype(np.float32)


# SHR decoder defaults, found by a search on perfect encodings (tests/test_decoders.py): with the
# encoder's Gaussian of sigma 2 cells, a 5×5 local soft-argmax at temperature 0.09 recovers
# sub-pixel points to ~0.008 cells (0.033 px at stride 4). The paper publishes no temperature:
# models store theirs in the metadata, these are the values used when they do not.
SHR_WINDOW = 5
SHR_TEMPERATURE = 0.09


def decode_shr_local_softargmax(heatmaps: np.ndarray, *, stride: float, window: int = SHR_WINDOW,
                                temperature: float = SHR_TEMPERATURE) -> tuple[np.ndarray, np.ndarray]:
    """SHR: softmax (values / temperature) over the d×d window around the argmax, expected offset added.

    Windows that cross the map border are clipped: cells outside get zero weight.
    """
    n, l, h, w = _check_maps(heatmaps)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    rows, cols, peak = _argmax_cells(heatmaps)
    half = window // 2
    offs = np.arange(-half, half + 1)
    rr = rows[..., None, None] + offs[:, None]            # (N, L, d, 1)
    cc = cols[..., None, None] + offs[None, :]            # (N, L, 1, d)
    inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)  # (N, L, d, d)
    flat = heatmaps.reshape(n, l, h * w).astype(np.float64)
    lin = (np.clip(rr, 0, h - 1) * w + np.clip(cc, 0, w - 1)).reshape(n, l, -1)
    vals = np.take_along_axis(flat, lin, axis=2).reshape(n, l, window, window) / temperature
    vals = np.where(inside, vals, -np.inf)
    weights = _softmax(vals.reshape(n, l, -1), axis=2).reshape(n, l, window, window)
    dy = (weights * offs[:, None]).sum(axis=(2, 3))
    dx = (weights * offs[None, :]).sum(axis=(2, 3))
    xy = np.stack([cols + dx, rows + dy], axis=-1) * stride
    return xy.astype(np.float32), peak.astype(np.float32)
