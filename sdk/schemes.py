"""Landmark schemes: point counts, mirror pairs and mappings between schemes.

Indices are 0-based. The WFLW-98 → 68 mapping and the NME normalisers follow
REFERENCE.md §2; mirror pairs follow each dataset's published point order.
"""
from __future__ import annotations

import numpy as np

from .metadata import LandmarkScheme

# 68-point iBUG/300W mirror pairs.
IBUG68_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    tuple((i, 16 - i) for i in range(8))
    + ((17, 26), (18, 25), (19, 24), (20, 23), (21, 22))
    + ((31, 35), (32, 34))
    + ((36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46))
    + ((48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67))
)

# 98-point WFLW mirror pairs.
WFLW98_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    tuple((i, 32 - i) for i in range(16))
    + ((33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47))
    + ((55, 59), (56, 58))
    + ((60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73))
    + ((76, 82), (77, 81), (78, 80), (83, 87), (84, 86), (88, 92), (89, 91), (93, 95), (96, 97))
)

# WFLW index of each of the 68 iBUG points (REFERENCE.md §2).
WFLW98_TO_68: tuple[int, ...] = (
    tuple(range(0, 33, 2))
    + (33, 34, 35, 36, 37, 42, 43, 44, 45, 46)
    + tuple(range(51, 60))
    + (60, 61, 63, 64, 65, 67, 68, 69, 71, 72, 73, 75)
    + tuple(range(76, 96))
)

# AFLW 21-point scheme in the order of shared/data/aflw-faces: 6 brow, 6 eye, left ear (12),
# nostril/tip/nostril (13-15), right ear (16), mouth corner/centre/corner (17-19), chin (20).
# Pairs checked against the mean of near-frontal faces.
AFLW21_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (0, 5), (1, 4), (2, 3),          # brows
    (6, 11), (7, 10), (8, 9),        # eyes
    (12, 16),                        # ears
    (13, 15),                        # nostrils (14 = nose tip)
    (17, 19),                        # mouth corners (18 = centre; 20 = chin)
)

# A mapped subset for scoring WFLW-98 predictions on AFLW-21 labels (the calibration faces' own):
# AFLW point j ↔ the WFLW point nearest to it on average, measured on 400 AFLW training faces
# with the bundled model (mean distance 2.7-7.3 % of the box size; the rest is definitional:
# AFLW's brow and nostril points sit between WFLW's). Ears (12, 16) have no WFLW point: None.
WFLW98_TO_AFLW21: tuple[int | None, ...] = (
    33, 35, 37, 42, 44, 46,          # brows: outer, centre, inner per side
    60, 96, 64, 68, 97, 72,          # eyes: corner, pupil, corner per side
    None, 55, 54, 59, None,          # left ear, nostril, nose tip, nostril, right ear
    88, 94, 92, 16,                  # mouth corner, centre, corner; chin
)

SCHEMES: dict[str, LandmarkScheme] = {
    "ibug68": LandmarkScheme("ibug68", 68, IBUG68_FLIP_PAIRS, tuple(range(68))),
    "wflw98": LandmarkScheme("wflw98", 98, WFLW98_FLIP_PAIRS, WFLW98_TO_68),
    "aflw21": LandmarkScheme("aflw21", 21, AFLW21_FLIP_PAIRS, None),
}

# Point pairs whose distance is the usual inter-ocular normaliser, per scheme.
INTEROCULAR: dict[str, tuple[int, int]] = {"ibug68": (36, 45), "wflw98": (60, 72), "cofw29": (8, 9)}


def scheme_for_points(num_points: int) -> LandmarkScheme:
    """Default scheme for a point count (98 → WFLW, 68 → iBUG, 21 → AFLW)."""
    for scheme in SCHEMES.values():
        if scheme.num_points == num_points:
            return scheme
    return LandmarkScheme(f"custom{num_points}", num_points)


def get_scheme(name: str) -> LandmarkScheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown landmark scheme {name!r}; known: {sorted(SCHEMES)}") from None


def _scheme_name(scheme: str | LandmarkScheme) -> str:
    return scheme.name if isinstance(scheme, LandmarkScheme) else str(scheme)


def map_landmarks(pred: np.ndarray, from_scheme: str | LandmarkScheme, to_scheme: str | LandmarkScheme) -> np.ndarray:
    """Re-express ``pred`` ((N, L, 2) or (L, 2)) in another scheme, e.g. WFLW-98 → iBUG-68.

    Lets a 98-point model be scored on a 68-point test set (REFERENCE.md §2 mapping).
    """
    src, dst = _scheme_name(from_scheme), _scheme_name(to_scheme)
    arr = np.asarray(pred)
    if arr.ndim < 2 or arr.shape[-1] != 2:
        raise ValueError(f"landmarks must have shape (..., L, 2), got {arr.shape}")
    src_scheme = from_scheme if isinstance(from_scheme, LandmarkScheme) else SCHEMES.get(src)
    if src_scheme is not None and arr.shape[-2] != src_scheme.num_points:
        raise ValueError(f"{arr.shape[-2]} points given but scheme {src!r} has {src_scheme.num_points}")
    if src == dst:
        return arr
    if dst == "ibug68" and src_scheme is not None and src_scheme.to68 is not None:
        return arr[..., list(src_scheme.to68), :]
    if (src, dst) == ("wflw98", "aflw21"):  # approximate subset; unmapped points are NaN (not scored)
        out = np.full(arr.shape[:-2] + (len(WFLW98_TO_AFLW21), 2), np.nan, dtype=np.float64)
        have = [j for j, i in enumerate(WFLW98_TO_AFLW21) if i is not None]
        out[..., have, :] = arr[..., [WFLW98_TO_AFLW21[j] for j in have], :]
        return out
    raise ValueError(f"no landmark mapping from scheme {src!r} to {dst!r} "
                     f"(known: any scheme with a 68-point mapping → 'ibug68', 'wflw98' → 'aflw21' (subset), "
                     f"or identity)")
