"""Direct regression: the network outputs coordinates, the decoder only rescales them."""
from __future__ import annotations

import numpy as np


def decode_regression(coords: np.ndarray, *, input_width: int, input_height: int, normalized: bool = True,
                      centered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2L) or (N, L, 2) interleaved x, y → (N, L, 2) input pixels.

    ``normalized``: values are fractions of the input size; ``centered``: in [-1, 1] rather than [0, 1].
    Regression carries no per-point evidence, so scores are NaN-free ones.
    """
    core = [d for d in coords.shape[1:] if d != 1]  # tolerate singleton axes, e.g. (N, 2L, 1, 1)
    if coords.ndim < 2 or not ((len(core) == 1 and core[0] % 2 == 0) or (len(core) == 2 and core[1] == 2)):
        raise ValueError(f"regression output must be (N, 2L) or (N, L, 2), got shape {coords.shape}")
    n = coords.shape[0]
    xy = coords.reshape(n, -1, 2).astype(np.float32)
    if normalized:
        if centered:
            xy = (xy + 1.0) * 0.5
        xy = xy * np.array([input_width, input_height], dtype=np.float32)
    return xy, np.ones(xy.shape[:2], dtype=np.float32)
