"""Match a backend's raw outputs to the decoder's roles using the metadata — by name, never by position."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .metadata import MetadataError, ModelMetadata, OutputSpec
from .preprocess import to_layout


def _matches_shape(spec: OutputSpec, array: np.ndarray) -> bool:
    if spec.shape is None:
        return False
    per_sample = tuple(array.shape[1:])
    want = tuple(spec.shape)
    return len(per_sample) == len(want) and all(w is None or w == p for w, p in zip(want, per_sample))


def outputs_by_role(meta: ModelMetadata, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Raw outputs keyed by tensor name → arrays keyed by role, NCHW for maps.

    Falls back to a unique per-sample shape match only when a name is absent, because
    converters rename tensors; an ambiguous fallback is an error, not a guess.
    """
    result: dict[str, np.ndarray] = {}
    for spec in meta.outputs:
        if spec.name in raw:
            array = raw[spec.name]
        else:
            candidates = [n for n, a in raw.items() if _matches_shape(spec, a)]
            if len(candidates) != 1:
                raise MetadataError(f"output {spec.name!r} (role {spec.role}) not found in the model's outputs "
                                    f"{sorted(raw)} and its shape {spec.shape} matches {len(candidates)} of them")
            array = raw[candidates[0]]
        if spec.layout == "nhwc" and array.ndim == 4:
            array = to_layout(array, "nhwc", "nchw")
        result[spec.role] = array
    return result
