"""Training augmentation that keeps landmarks exact.

Geometry is ONE affine per sample: the crop the Predictor would take (``sdk.preprocess``
crop rule and pixel convention) followed by an augmentation affine in network-input
pixels (flip, rotation, scale, translation about the input centre). The image is warped
once with the composed matrix and the landmarks are mapped with the very same matrix, so
labels and pixels cannot drift apart (no rounding, no second resampling). A flip also
re-orders the points with the scheme's mirror permutation, so point i stays "left eye
corner" rather than becoming the right one.

Photometric changes (colour jitter, blur, occlusion patches) act on the warped crop and
never move a landmark.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from sdk.metadata import CropRule
from sdk.preprocess import crop_regions, warp_matrices


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random augmentation (all off = the Predictor's exact crop)."""

    flip: float = 0.5                 # probability of a horizontal flip
    rotate_deg: float = 30.0          # uniform in ±rotate_deg
    scale: tuple[float, float] = (0.9, 1.1)  # zoom factor (>1 magnifies the face)
    translate: float = 0.05           # uniform shift in ±translate · input side, per axis
    brightness: float = 0.25          # additive, fraction of 255
    contrast: float = 0.25            # multiplicative 1 ± contrast around the mean
    saturation: float = 0.25          # blend with grey, 1 ± saturation
    blur: float = 0.2                 # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    occlusion: float = 0.3            # probability of one occluding rectangle
    occlusion_size: tuple[float, float] = (0.1, 0.35)  # side as a fraction of the input

    @classmethod
    def off(cls) -> "AugmentConfig":
        return cls(flip=0.0, rotate_deg=0.0, scale=(1.0, 1.0), translate=0.0, brightness=0.0, contrast=0.0,
                   saturation=0.0, blur=0.0, occlusion=0.0)


@dataclass(frozen=True)
class GeometricParams:
    """One draw of the geometric augmentation."""

    flip: bool = False
    angle_deg: float = 0.0
    scale: float = 1.0
    tx: float = 0.0  # input pixels
    ty: float = 0.0


def _h(m: np.ndarray) -> np.ndarray:
    """2×3 → 3×3 homogeneous."""
    return np.vstack([np.asarray(m, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def augmentation_matrix(params: GeometricParams, width: int, height: int) -> np.ndarray:
    """3×3 affine on network-input pixel-centre coordinates.

    Order: mirror (u → W − 1 − u, exact in the pixel-centre convention), then rotate by
    ``angle_deg`` (counter-clockwise on screen) and scale about the input centre
    ((W − 1)/2, (H − 1)/2), then translate.
    """
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if params.flip else np.eye(3)
    a = math.radians(params.angle_deg)
    c, s = math.cos(a) * params.scale, math.sin(a) * params.scale
    # Rotation on screen (y down): counter-clockwise for positive angles.
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    to_c = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, cx + params.tx], [0.0, 1.0, cy + params.ty], [0.0, 0.0, 1.0]])
    return back @ rot @ to_c @ flip


def crop_matrix(box: Sequence[float], rule: CropRule, width: int, height: int) -> np.ndarray:
    """3×3 image → input pixel-centre matrix, exactly the Predictor's (``sdk.preprocess``)."""
    region = crop_regions(np.asarray(box, dtype=np.float64).reshape(1, 4), rule)
    return _h(warp_matrices(region, width, height)[0])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 or 3×3 affine to (..., 2) points (NaN stays NaN)."""
    m = np.asarray(matrix, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:2, :2].T + m[:2, 2]


def permute_for_flip(points: np.ndarray, permutation: Sequence[int]) -> np.ndarray:
    """After mirroring, point i of the new image is the mirror partner of point i: new[i] = old[perm[i]]."""
    return np.asarray(points)[..., list(permutation), :]


def draw_geometry(cfg: AugmentConfig, rng: np.random.Generator, width: int, height: int) -> GeometricParams:
    side = float(min(width, height))
    return GeometricParams(
        flip=bool(rng.random() < cfg.flip),
        angle_deg=float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)),
        scale=float(rng.uniform(*cfg.scale)),
        tx=float(rng.uniform(-cfg.translate, cfg.translate) * side),
        ty=float(rng.uniform(-cfg.translate, cfg.translate) * side),
    )


def warp_sample(image: np.ndarray, points: np.ndarray, box: Sequence[float], rule: CropRule, width: int, height: int,
                params: GeometricParams, flip_permutation: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop + augment in one warp.

    Returns ``(crop uint8 (H, W, 3), points (L, 2) in input pixel-centre coordinates,
    matrix 3×3 image → input)``. Points come back in scheme order (re-ordered on a flip).
    """
    m = augmentation_matrix(params, width, height) @ crop_matrix(box, rule, width, height)
    crop = cv2.warpAffine(image, m[:2], (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))
    pts = transform_points(points, m)
    if params.flip:
        pts = permute_for_flip(pts, flip_permutation)
    return crop, pts, m


def to_model_origin(points: np.ndarray, coordinate_origin: str) -> np.ndarray:
    """Pixel-centre input coordinates → the model's decoded-coordinate origin (corner adds ½)."""
    return np.asarray(points) + (0.5 if coordinate_origin == "pixel_corner" else 0.0)


def photometric(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter, blur and one occlusion patch on a uint8 crop; geometry untouched."""
    x = crop.astype(np.float32)
    if cfg.saturation:
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
    if cfg.contrast:
        x = (x - x.mean()) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + x.mean()
    if cfg.brightness:
        x = x + rng.uniform(-cfg.brightness, cfg.brightness) * 255.0
    out = np.clip(x, 0, 255).astype(np.uint8)
    if cfg.blur and rng.random() < cfg.blur:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(*cfg.blur_sigma)))
    if cfg.occlusion and rng.random() < cfg.occlusion:
        h, w = out.shape[:2]
        ph = max(1, int(rng.uniform(*cfg.occlusion_size) * h))
        pw = max(1, int(rng.uniform(*cfg.occlusion_size) * w))
        y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        if rng.random() < 0.5:
            out[y0:y0 + ph, x0:x0 + pw] = rng.integers(0, 256, 3, dtype=np.uint8)
        else:
            out[y0:y0 + ph, x0:x0 + pw] = rng.integers(0, 256, (ph, pw, 3), dtype=np.uint8)
    return out


def augment(image: np.ndarray, points: np.ndarray, box: Sequence[float], rule: CropRule, width: int, height: int,
            cfg: AugmentConfig, rng: np.random.Generator, flip_permutation: Sequence[int]
            ) -> tuple[np.ndarray, np.ndarray]:
    """One training sample: (crop uint8 (H, W, 3), points (L, 2) in the model's decoded coordinates)."""
    params = draw_geometry(cfg, rng, width, height)
    crop, pts, _ = warp_sample(image, points, box, rule, width, height, params, flip_permutation)
    return photometric(crop, cfg, rng), to_model_origin(pts, rule.coordinate_origin)


__all__ = ["AugmentConfig", "GeometricParams", "augment", "augmentation_matrix", "crop_matrix", "draw_geometry",
           "permute_for_flip", "photometric", "to_model_origin", "transform_points", "warp_sample"]
