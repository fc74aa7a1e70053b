"""Face box → square crop → affine warp → normalised tensor, and the exact way back.

Pixel convention: image coordinates put the centre of pixel (col, row) at (col, row),
as OpenCV's warpAffine does. A crop region is a square of side ``s`` centred at ``c``;
its outer edges (not its first pixel centres) land on the network input's outer edges,
so the warp is a pure resize of that region — the same geometry ``cv2.resize`` uses.
For an input of size S, image point x maps to input pixel-centre coordinate
``u = (x - c + s/2) * S/s - 1/2``. A model whose decoded coordinates count from the
input's corner (``coordinate_origin = "pixel_corner"``) reports ``U = u + 1/2``.
"""
from __future__ import annotations

import cv2
import numpy as np

from .errors import InputError
from .metadata import CropRule, InputSpec


def validate_image(image: np.ndarray) -> np.ndarray:
    """Accept HxWx3 uint8 only: anything else would silently give wrong landmarks."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"image must be uint8 (as cv2.imread returns), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be HxWx3, got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"image is too small: {image.shape[1]}x{image.shape[0]}")
    return image


# Far beyond any image, still exact in float32 arithmetic (a box of 1e39 px overflowed to inf there).
MAX_COORDINATE = 1e7


def validate_boxes(boxes: np.ndarray | list, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Boxes as float32 (F, 4) ``[x1, y1, x2, y2]``; empty, inverted, non-finite or off-image boxes are errors."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(f"boxes must be (faces, 4) [x1, y1, x2, y2], got shape {np.shape(boxes)}")
    if not np.isfinite(arr).all():
        raise InputError("boxes contain NaN or infinite values")
    if np.abs(arr).max(initial=0.0) > MAX_COORDINATE:
        raise InputError(f"box coordinates beyond ±{MAX_COORDINATE:g} px ({np.abs(arr).max():.3g}): not a box in an image")
    w, h = arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1]
    bad = np.flatnonzero((w <= 0) | (h <= 0))
    if bad.size:
        raise InputError(f"box {int(bad[0])} is empty or inverted: {arr[bad[0]].tolist()} (need x2 > x1 and y2 > y1)")
    if image_shape is not None:
        ih, iw = image_shape[:2]
        off = np.flatnonzero((arr[:, 2] < 0) | (arr[:, 3] < 0) | (arr[:, 0] > iw - 1) | (arr[:, 1] > ih - 1))
        if off.size:
            raise InputError(f"box {int(off[0])} {arr[off[0]].tolist()} lies entirely outside the {iw}x{ih} image")
    return arr.astype(np.float32)


def crop_regions(boxes: np.ndarray, rule: CropRule) -> np.ndarray:
    """(F, 3) array of square regions ``(cx, cy, side)`` from face boxes, per the model's crop rule."""
    b = np.asarray(boxes, dtype=np.float64)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    if rule.side_mode == "max_wh":
        side = np.maximum(w, h)
    elif rule.side_mode == "max_wh_plus1":
        side = np.maximum(w + 1, h + 1)
    else:  # "diag"
        side = np.hypot(w, h)
    side = side * rule.expand
    cx = (b[:, 0] + b[:, 2]) / 2 + rule.shift_x * side
    cy = (b[:, 1] + b[:, 3]) / 2 + rule.shift_y * side
    return np.stack([cx, cy, side], axis=1)


def warp_matrices(regions: np.ndarray, width: int, height: int) -> np.ndarray:
    """(F, 2, 3) affine matrices image → input pixel-centre coordinates (see module docstring)."""
    cx, cy, side = regions[:, 0], regions[:, 1], regions[:, 2]
    sx, sy = width / side, height / side
    m = np.zeros((len(regions), 2, 3), dtype=np.float64)
    m[:, 0, 0] = sx
    m[:, 0, 2] = (side / 2 - cx) * sx - 0.5
    m[:, 1, 1] = sy
    m[:, 1, 2] = (side / 2 - cy) * sy - 0.5
    return m


def to_image_coords(points: np.ndarray, matrices: np.ndarray, coordinate_origin: str) -> np.ndarray:
    """Map decoded input coordinates (F, L, 2) back to image pixels with the exact inverse warp."""
    pts = np.asarray(points, dtype=np.float64)
    if coordinate_origin == "pixel_corner":
        pts = pts - 0.5
    sx, sy = matrices[:, 0, 0][:, None], matrices[:, 1, 1][:, None]
    tx, ty = matrices[:, 0, 2][:, None], matrices[:, 1, 2][:, None]
    x = (pts[..., 0] - tx) / sx
    y = (pts[..., 1] - ty) / sy
    return np.stack([x, y], axis=-1).astype(np.float32)


def to_input_coords(points: np.ndarray, matrices: np.ndarray, coordinate_origin: str) -> np.ndarray:
    """Image pixels (F, L, 2) → network-input coordinates in the model's origin (training targets)."""
    pts = np.asarray(points, dtype=np.float64)
    u = pts[..., 0] * matrices[:, 0, 0][:, None] + matrices[:, 0, 2][:, None]
    v = pts[..., 1] * matrices[:, 1, 1][:, None] + matrices[:, 1, 2][:, None]
    out = np.stack([u, v], axis=-1)
    if coordinate_origin == "pixel_corner":
        out = out + 0.5
    return out.astype(np.float32)


def warp_faces(image: np.ndarray, matrices: np.ndarray, width: int, height: int) -> np.ndarray:
    """(F, H, W, 3) uint8 crops; parts of the region outside the image are black."""
    crops = np.empty((len(matrices), height, width, 3), dtype=np.uint8)
    for i, m in enumerate(matrices):
        cv2.warpAffine(image, m, (width, height), dst=crops[i], flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crops


def normalise(crops: np.ndarray, spec: InputSpec, image_color: str = "bgr") -> np.ndarray:
    """uint8 crops (F, H, W, 3) in ``image_color`` order → the network's float tensor and layout."""
    order = [0, 1, 2] if image_color == spec.color else [2, 1, 0]
    scale = np.float32(spec.scale) / np.asarray(spec.std, dtype=np.float32)
    offset = np.asarray(spec.mean, dtype=np.float32) / np.asarray(spec.std, dtype=np.float32)
    f, h, w, _ = crops.shape
    if spec.layout == "nchw":  # one pass per plane straight into the output: no temporaries
        t = np.empty((f, 3, h, w), dtype=np.float32)
        for c, src in enumerate(order):
            np.multiply(crops[..., src], scale[c], out=t[:, c], dtype=np.float32)
            t[:, c] -= offset[c]
        return t
    t = crops[..., order].astype(np.float32)
    t *= scale
    t -= offset
    return t


_LAYOUT_AXES = {("nchw", "nhwc"): (0, 2, 3, 1), ("nhwc", "nchw"): (0, 3, 1, 2)}


def to_layout(tensors: np.ndarray, source: str, target: str) -> np.ndarray:
    """A 4-D batch moved between ``nchw`` and ``nhwc`` (contiguous; the same array when they agree)."""
    arr = np.asarray(tensors)
    if arr.ndim != 4:
        raise ValueError(f"a layout change needs a 4-D batch (N, C, H, W) or (N, H, W, C), got {arr.shape}")
    if source == target:
        return arr
    if (source, target) not in _LAYOUT_AXES:
        raise ValueError(f"cannot convert layout {source!r} to {target!r}; layouts: nchw, nhwc")
    return np.ascontiguousarray(arr.transpose(_LAYOUT_AXES[(source, target)]))


def prepare_batch(image: np.ndarray, boxes: np.ndarray, spec: InputSpec, rule: CropRule,
                  image_color: str = "bgr") -> tuple[np.ndarray, np.ndarray]:
    """One image, F boxes → (tensor, image→input matrices). Calibration uses this very function."""
    validate_image(image)
    boxes = validate_boxes(boxes, image.shape)
    matrices = warp_matrices(crop_regions(boxes, rule), spec.width, spec.height)
    crops = warp_faces(image, matrices, spec.width, spec.height)
    return normalise(crops, spec, image_color), matrices
