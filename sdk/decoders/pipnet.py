"""PIPNet decoding: cell argmax + in-cell offsets, merged with neighbours' predictions.

Neighbour tables come from the mean face (REFERENCE.md §1) and are stored in the
model's metadata, so the runtime never needs the mean-face file.
"""
from __future__ import annotations

import numpy as np


def pipnet_neighbour_tables(meanface: np.ndarray, num_neighbours: int = 10) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Neighbour indices and padded reverse lists from a mean face.

    Returns ``(neighbours (L, nb), reverse_index1 (L, R), reverse_index2 (L, R))``: for
    landmark i, ``reverse_index1[i][r]`` is a landmark j and ``reverse_index2[i][r]`` the
    slot at which i is j's neighbour; lists are padded cyclically to the longest.
    """
    mf = np.asarray(meanface, dtype=np.float64).reshape(-1, 2)
    n_points = mf.shape[0]
    if not 0 < num_neighbours < n_points:
        raise ValueError(f"num_neighbours must be in 1..{n_points - 1}, got {num_neighbours}")
    dist = np.linalg.norm(mf[:, None, :] - mf[None, :, :], axis=2)
    np.fill_diagonal(dist, np.inf)
    neighbours = np.argsort(dist, axis=1, kind="stable")[:, :num_neighbours]
    reverse: list[list[tuple[int, int]]] = [[] for _ in range(n_points)]
    for j in range(n_points):
        for slot, i in enumerate(neighbours[j]):
            reverse[int(i)].append((j, slot))
    longest = max(len(r) for r in reverse)
    if longest == 0:
        raise ValueError("mean face gives no reverse neighbours")
    rev1, rev2 = [], []
    for i, lst in enumerate(reverse):
        if not lst:  # never anyone's neighbour: fall back to its own prediction only
            lst = [(i, -1)]
        padded = [lst[k % len(lst)] for k in range(longest)]
        rev1.append([j for j, _ in padded])
        rev2.append([s for _, s in padded])
    return neighbours.tolist(), rev1, rev2


def decode_pipnet(cls: np.ndarray, offset_x: np.ndarray, offset_y: np.ndarray, nb_x: np.ndarray, nb_y: np.ndarray, *,
                  stride: float, num_neighbours: int, reverse_index1, reverse_index2) -> tuple[np.ndarray, np.ndarray]:
    """Return landmarks in input pixels (corner origin) and each point's cell score."""
    if cls.ndim != 4:
        raise ValueError(f"cls must be (N, L, H, W), got shape {cls.shape}")
    n, l, h, w = cls.shape
    nb = int(num_neighbours)
    for name, arr, shape in (("offset_x", offset_x, (n, l, h, w)), ("offset_y", offset_y, (n, l, h, w)),
                             ("nb_x", nb_x, (n, l * nb, h, w)), ("nb_y", nb_y, (n, l * nb, h, w))):
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (num_neighbours={nb}), got {arr.shape}")
    flat_cls = cls.reshape(n, l, h * w)
    k = flat_cls.argmax(axis=2)                                   # (N, L)
    score = np.take_along_axis(flat_cls, k[..., None], axis=2)[..., 0]
    col, row = (k % w).astype(np.float64), (k // w).astype(np.float64)

    def at_cell(maps: np.ndarray, channels: int) -> np.ndarray:
        flat = maps.reshape(n, l, channels, h * w)
        return np.take_along_axis(flat, k[:, :, None, None], axis=3)[..., 0]  # (N, L, channels)

    ox = at_cell(offset_x, 1)[..., 0]
    oy = at_cell(offset_y, 1)[..., 0]
    own = np.stack([col + ox, row + oy], axis=-1)                 # (N, L, 2) in cells
    nbx = at_cell(nb_x, nb) + col[..., None]                      # (N, L, nb): j's guesses for its neighbours
    nby = at_cell(nb_y, nb) + row[..., None]
    rev1 = np.asarray(reverse_index1, dtype=np.int64)             # (L, R)
    rev2 = np.asarray(reverse_index2, dtype=np.int64)
    if rev1.ndim != 2 or rev1.shape[0] != l or rev1.shape != rev2.shape:
        raise ValueError(f"reverse indices must both be (L={l}, R), got {rev1.shape} and {rev2.shape}")
    if rev1.size and (rev1.min() < 0 or rev1.max() >= l or rev2.max() >= nb or rev2.min() < -1):
        raise ValueError("reverse indices out of range for the given num_neighbours / landmark count")
    valid = rev2 >= 0
    slot = np.where(valid, rev2, 0)
    from_nb = np.stack([nbx[:, rev1, slot], nby[:, rev1, slot]], axis=-1)   # (N, L, R, 2)
    from_nb = np.where(valid[None, :, :, None], from_nb, own[:, :, None, :])
    merged = (own + from_nb.sum(axis=2)) / (1 + rev1.shape[1])
    return (merged * stride).astype(np.float32), score.astype(np.float32)
