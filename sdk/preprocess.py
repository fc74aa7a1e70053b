"""Face box → crop region → resize → normalised tensor, and the way back.

Pixel convention: image coordinates put the centre of pixel (col, row) at (col, row),
as OpenCV's warpAffine does. A crop region has centre ``c`` and sides ``s`` (per axis);
its outer edges (not its first pixel centres) land on the network input's outer edges,
so the warp is a pure resize of that region — the same geometry ``cv2.resize`` uses.
For an input of size S, image point x maps to input pixel-centre coordinate
``u = (x - c + s/2) * S/s - 1/2``. A model whose decoded coordinates count from the
input's corner (``coordinate_origin = "pixel_corner"``) reports ``U = u + 1/2``.

Rules written from official code (``sdk.metadata.OFFICIAL_CROPS``) also clip the region,
round it to whole pixels, antialias, and add an offset to mapped-back points; see
``sample_faces`` and ``map_matrices``. Mapping back always uses the unrounded region, as
those pipelines do.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .errors import InputError
from .metadata import CropRule, InputSpec
from .resample import resize_region_antialias


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
    """Boxes as float32 (F, 4) ``[x1, y1, x2, y2]``; empty, inverted, non-finite or off-image boxes are errors.

    The test runs on Python floats, box by box: ``predict`` calls this once per image, right after the
    runtime's kernels have evicted the caches, where each small numpy call costs 5–20 µs (measured: the
    numpy form of this geometry took 0.20 ms there, the scalar form 0.04 ms). The reason for a failure
    is worked out only when it fails.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(f"boxes must be (faces, 4) [x1, y1, x2, y2], got shape {np.shape(boxes)}")
    right, bottom = (math.inf, math.inf) if image_shape is None else (image_shape[1] - 1, image_shape[0] - 1)
    for x1, y1, x2, y2 in arr.tolist():  # comparisons with NaN are False: NaN boxes fail too
        if not (x2 > x1 and y2 > y1 and x2 >= 0 and y2 >= 0 and x1 <= right and y1 <= bottom
                and max(abs(x1), abs(y1), abs(x2), abs(y2)) <= MAX_COORDINATE):
            _explain_bad_boxes(arr, image_shape)
    return arr.astype(np.float32)


def _explain_bad_boxes(arr: np.ndarray, image_shape: tuple[int, ...] | None) -> None:
    """Raise the InputError naming the first problem of boxes that failed ``validate_boxes``' test."""
    if not np.isfinite(arr).all():
        raise InputError("boxes contain NaN or infinite values")
    if np.abs(arr).max(initial=0.0) > MAX_COORDINATE:
        raise InputError(f"box coordinates beyond ±{MAX_COORDINATE:g} px ({np.abs(arr).max():.3g}): not a box in an image")
    w, h = arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1]
    bad = np.flatnonzero((w <= 0) | (h <= 0))
    if bad.size:
        raise InputError(f"box {int(bad[0])} is empty or inverted: {arr[bad[0]].tolist()} (need x2 > x1 and y2 > y1)")
    if image_shape is None:  # pragma: no cover - every other failure is named above
        raise InputError("boxes are invalid")
    ih, iw = image_shape[:2]
    off = np.flatnonzero((arr[:, 2] < 0) | (arr[:, 3] < 0) | (arr[:, 0] > iw - 1) | (arr[:, 1] > ih - 1))
    raise InputError(f"box {int(off[0])} {arr[off[0]].tolist()} lies entirely outside the {iw}x{ih} image")


def crop_regions(boxes: np.ndarray, rule: CropRule) -> np.ndarray:
    """(F, 4) float regions ``(cx, cy, side_x, side_y)`` from face boxes, per the model's crop rule.

    Square rules give ``side_x == side_y``. This is the region the model's coordinates are
    mapped back through (before any clipping or whole-pixel rounding of what is sampled).
    Python floats box by box, for the reason ``validate_boxes`` gives (F is a handful per image;
    a training set's 20k boxes take ~0.1 s).
    """
    expand_y = rule.expand if rule.expand_y is None else rule.expand_y
    out = []
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4).tolist():
        w, h = x2 - x1, y2 - y1
        if rule.side_mode == "per_axis":
            side_x, side_y = w * rule.expand, h * expand_y
        else:
            if rule.side_mode == "max_wh":
                side = max(w, h)
            elif rule.side_mode == "max_wh_plus1":
                side = max(w + 1, h + 1)
            else:  # "diag"
                side = math.hypot(w, h)
            side_x = side_y = side * rule.expand
        out.append(((x1 + x2) / 2 + rule.shift_x * side_x + rule.offset_px,
                    (y1 + y2) / 2 + rule.shift_y * side_y + rule.offset_px, side_x, side_y))
    return np.array(out, dtype=np.float64).reshape(-1, 4)


def clip_regions(regions: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Regions whose pixel span ``[first, end)`` is clipped to ``[0, W-1]`` x ``[0, H-1]``.

    ``first`` is the index of the region's first pixel (its left edge + 1/2). The bound W-1 (not
    W) is the official PIPNet code's, kept so that its checkpoints see the crop they were trained on.
    """
    ih, iw = image_shape[:2]
    r = np.asarray(regions, dtype=np.float64)
    out = r.copy()
    for axis, limit in ((0, iw - 1), (1, ih - 1)):
        first = r[:, axis] - r[:, axis + 2] / 2 + 0.5
        end = first + r[:, axis + 2]
        first, end = np.maximum(first, 0.0), np.minimum(end, float(limit))
        out[:, axis + 2] = end - first
        out[:, axis] = first - 0.5 + out[:, axis + 2] / 2
    return out


def content_spans(regions: np.ndarray, rounding: str) -> np.ndarray:
    """(F, 4) integer pixel spans ``[x0, x1) x [y0, y1)`` a rounding crop samples (``round``: half to even, as PIL)."""
    r = np.asarray(regions, dtype=np.float64)
    first = r[:, :2] - r[:, 2:] / 2 + 0.5
    end = first + r[:, 2:]
    op = np.round if rounding == "round" else np.floor
    first, end = op(first), op(end)
    return np.stack([first[:, 0], first[:, 1], end[:, 0], end[:, 1]], axis=1).astype(np.int64)


def warp_matrices(regions: np.ndarray, width: int, height: int, map_offset_px: float = 0.0) -> np.ndarray:
    """(F, 2, 3) affine matrices image → input pixel-centre coordinates (see module docstring).

    ``regions`` are ``(cx, cy, side)`` or ``(cx, cy, side_x, side_y)``. ``map_offset_px`` is the
    crop rule's offset added to mapped-back points (the inverse subtracts it). Python floats box
    by box, as ``crop_regions``.
    """
    out = []
    for r in np.asarray(regions, dtype=np.float64).tolist():
        cx, cy, side_x = r[0], r[1], r[2]
        side_y = r[3] if len(r) > 3 else side_x
        sx, sy = width / side_x, height / side_y
        out.append(((sx, 0.0, (side_x / 2 - cx - map_offset_px) * sx - 0.5),
                    (0.0, sy, (side_y / 2 - cy - map_offset_px) * sy - 0.5)))
    return np.array(out, dtype=np.float64).reshape(-1, 2, 3)


def to_image_coords(points: np.ndarray, matrices: np.ndarray, coordinate_origin: str) -> np.ndarray:
    """Map decoded input coordinates (F, L, 2) back to image pixels with the exact inverse warp."""
    m = np.asarray(matrices, dtype=np.float64)
    shift = m[:, :, 2] + (0.5 if coordinate_origin == "pixel_corner" else 0.0)
    scale = m[:, [0, 1], [0, 1]]
    return ((np.asarray(points, dtype=np.float64) - shift[:, None]) / scale[:, None]).astype(np.float32)


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


# A whole-pixel crop is materialised (bilinear) or multiplied (antialias) at full size: one
# far beyond the image is not a face in it and would only cost memory.
MAX_CONTENT_RATIO = 16


def sample_faces(image: np.ndarray, regions: np.ndarray, rule: CropRule, width: int, height: int,
                 matrices: np.ndarray | None = None) -> np.ndarray:
    """(F, H, W, 3) uint8 network crops of the regions (already clipped when ``rule.clip``) as the rule samples them.

    ``matrices``: the regions' ``warp_matrices`` (no offset) when the caller has them already.
    """
    if rule.rounding == "none" and rule.resize == "bilinear":
        if matrices is None:
            matrices = warp_matrices(regions, width, height)
        return warp_faces(image, matrices, width, height)
    if rule.rounding == "none":  # antialias over a float region: PIL's resize with a float box is not offered
        raise InputError("crop.resize 'antialias' needs whole-pixel regions (crop.rounding 'round' or 'floor')")
    spans = content_spans(regions, rule.rounding)
    ih, iw = image.shape[:2]
    crops = np.empty((len(spans), height, width, 3), dtype=np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(spans.tolist()):
        if x1 <= x0 or y1 <= y0:
            raise InputError(f"box {i}: its crop region has no whole pixel inside the image ({x1 - x0}x{y1 - y0})")
        if max(x1 - x0, y1 - y0) > MAX_CONTENT_RATIO * max(iw, ih):
            raise InputError(f"box {i}: its crop region ({x1 - x0}x{y1 - y0} px) is over {MAX_CONTENT_RATIO}x the "
                             f"{iw}x{ih} image: not a face in it")
        if rule.resize == "antialias":
            crops[i] = resize_region_antialias(image, x0, y0, x1, y1, width, height)
            continue
        ox0, oy0, ox1, oy1 = max(x0, 0), max(y0, 0), min(x1, iw), min(y1, ih)
        patch = image[oy0:oy1, ox0:ox1]
        if (ox0, oy0, ox1, oy1) != (x0, y0, x1, y1):  # black where the region leaves the image
            patch = cv2.copyMakeBorder(patch, oy0 - y0, y1 - oy1, ox0 - x0, x1 - ox1, cv2.BORDER_CONSTANT, value=0)
        cv2.resize(patch, (width, height), dst=crops[i], interpolation=cv2.INTER_LINEAR)
    return crops


def map_matrices(regions: np.ndarray, rule: CropRule, image_shape: tuple[int, ...], width: int,
                 height: int) -> np.ndarray:
    """Image → input matrices the decoded points are mapped back through (clipped, unrounded region + offset)."""
    if rule.clip:
        regions = clip_regions(regions, image_shape)
    return warp_matrices(regions, width, height, rule.map_offset_px)


def normalise(crops: np.ndarray, spec: InputSpec, image_color: str = "bgr") -> np.ndarray:
    """uint8 crops (F, H, W, 3) in ``image_color`` order → the network's float tensor and layout."""
    order = [0, 1, 2] if image_color == spec.color else [2, 1, 0]
    if spec.layout == "nhwc" and order == [0, 1, 2] and spec.scale == 1 and not any(spec.mean) \
            and all(s == 1 for s in spec.std):  # the graph normalises (converters.graph_input): cast only
        return crops.astype(np.float32)
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
    regions = crop_regions(boxes, rule)
    if rule.clip:
        regions = clip_regions(regions, image.shape)
    sampling = warp_matrices(regions, spec.width, spec.height)
    matrices = sampling if rule.map_offset_px == 0 else warp_matrices(regions, spec.width, spec.height,
                                                                      rule.map_offset_px)
    crops = sample_faces(image, regions, rule, spec.width, spec.height, sampling)
    return normalise(crops, spec, image_color), matrices
