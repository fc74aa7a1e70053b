"""PIL-compatible antialiased bilinear resize of a whole-pixel image region, in numpy.

Official H3R checkpoints were trained and evaluated on crops resized by PIL's bilinear filter,
which — unlike ``cv2.resize``/``warpAffine`` — widens its triangle kernel by the shrink factor
(antialiasing). Reproducing their accuracy needs the same pixels, without PIL on the device.

The arithmetic follows the filter's published definition: for output pixel ``j`` the kernel is
centred at ``(j + 1/2) * in/out`` (corner coordinates), taps are input pixels whose centres
fall within ``support = max(in/out, 1)`` of it, weights ``1 - |d| / support`` normalised to one
and held in 22-bit fixed point; each pass (horizontal, then vertical) rounds to uint8. Integer
weights times uint8 pixels sum exactly in float64, so BLAS does the work and the result matches
PIL's to the last bit except for rare half-way ties (tested against Pillow).
"""
from __future__ import annotations

import numpy as np

_PRECISION_BITS = 22
_ONE = float(1 << _PRECISION_BITS)
_HALF = float(1 << (_PRECISION_BITS - 1))


def antialias_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) fixed-point weights (integer-valued float64) of one resize pass."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = filter_scale  # the bilinear (triangle) filter has support 1 before widening
    inv = 1.0 / filter_scale
    centers = (np.arange(out_size) + 0.5) * scale
    first = np.maximum((centers - support + 0.5).astype(np.int64), 0)
    end = np.minimum((centers + support + 0.5).astype(np.int64), in_size)
    x = np.arange(in_size)
    w = np.maximum(1.0 - np.abs((x[None, :] - centers[:, None] + 0.5) * inv), 0.0)
    w[(x[None, :] < first[:, None]) | (x[None, :] >= end[:, None])] = 0.0
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total != 0)
    return np.floor(0.5 + w * _ONE)


def _fixed_point_pass(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = weights @ values
    out += _HALF
    np.floor(out / _ONE, out=out)
    return np.clip(out, 0, 255, out=out)


def resize_region_antialias(image: np.ndarray, x0: int, y0: int, x1: int, y1: int,
                            out_width: int, out_height: int) -> np.ndarray:
    """Pixels ``[x0, x1) x [y0, y1)`` of ``image`` (black outside it) → (out_height, out_width, 3) uint8.

    Outside pixels are zero, so only the overlap is multiplied: a region far larger than the
    image costs no more than the image itself.
    """
    h, w = image.shape[:2]
    kx = antialias_weights(x1 - x0, out_width)
    ky = antialias_weights(y1 - y0, out_height)
    ox0, ox1 = max(x0, 0), min(x1, w)
    oy0, oy1 = max(y0, 0), min(y1, h)
    if ox1 <= ox0 or oy1 <= oy0:
        return np.zeros((out_height, out_width, image.shape[2]), dtype=np.uint8)
    src = image[oy0:oy1, ox0:ox1].astype(np.float64)                     # (h', w', C)
    kx = kx[:, ox0 - x0: ox1 - x0]
    ky = ky[:, oy0 - y0: oy1 - y0]
    rows, cols, channels = src.shape
    horizontal = _fixed_point_pass(kx, src.transpose(1, 0, 2).reshape(cols, rows * channels))  # (out_w, h'*C)
    horizontal = horizontal.reshape(out_width, rows, channels).transpose(1, 0, 2).reshape(rows, out_width * channels)
    vertical = _fixed_point_pass(ky, horizontal)                          # (out_h, out_w*C)
    return vertical.reshape(out_height, out_width, channels).astype(np.uint8)
