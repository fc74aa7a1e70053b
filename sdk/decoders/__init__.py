"""Decoders: pure, vectorised numpy functions from raw network outputs to landmarks.

Every decoder takes ``outputs`` (a mapping from output role to a float array with
the batch first, NCHW for maps) plus its parameters from the model metadata, and
returns ``(landmarks, scores)``: landmarks float32 (N, L, 2) in network-input
pixels (origin given by the metadata's crop rule), scores float32 (N, L) — the
decoder's own evidence for each point (peak height, cell score, …).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .heatmap import decode_argmax, decode_argmax_quarter, decode_h3r_topk, decode_shr_local_softargmax
from .pipnet import decode_pipnet, pipnet_neighbour_tables
from .regression import decode_regression

DecodeFn = Callable[..., tuple[np.ndarray, np.ndarray]]


class DecoderParamError(ValueError):
    """A decoder was given parameters it cannot work with."""


@dataclass(frozen=True)
class DecoderEntry:
    fn: DecodeFn
    roles: tuple[str, ...]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    def check_params(self, params: Mapping[str, Any]) -> None:
        from ..metadata import MetadataError

        missing = [p for p in self.required if p not in params]
        if missing:
            raise MetadataError(f"decoder parameters missing: {missing}")
        unknown = set(params) - set(self.required) - set(self.optional)
        if unknown:
            raise MetadataError(f"unknown decoder parameters: {sorted(unknown)}")

    def __call__(self, outputs: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        args = [np.asarray(outputs[r], dtype=np.float32) for r in self.roles]
        return self.fn(*args, **params)


DECODERS: dict[str, DecoderEntry] = {
    "h3r_topk": DecoderEntry(decode_h3r_topk, ("heatmap",), ("stride",), ("topk",)),
    "shr_local_softargmax": DecoderEntry(decode_shr_local_softargmax, ("heatmap",), ("stride",), ("window", "temperature")),
    "argmax": DecoderEntry(decode_argmax, ("heatmap",), ("stride",)),
    "argmax_quarter": DecoderEntry(decode_argmax_quarter, ("heatmap",), ("stride",)),
    "pipnet": DecoderEntry(decode_pipnet, ("cls", "offset_x", "offset_y", "nb_x", "nb_y"),
                           ("stride", "num_neighbours", "reverse_index1", "reverse_index2")),
    "regression": DecoderEntry(decode_regression, ("landmarks",), ("input_width", "input_height"), ("normalized", "centered")),
}

# Decoders that read a plain heat map and so can stand in for one another (baselines).
HEATMAP_DECODERS = ("h3r_topk", "shr_local_softargmax", "argmax", "argmax_quarter")


def decode(name: str, outputs: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Run decoder ``name`` on outputs keyed by role."""
    try:
        entry = DECODERS[name]
    except KeyError:
        raise DecoderParamError(f"unknown decoder {name!r}; known: {sorted(DECODERS)}") from None
    return entry(outputs, params)


__all__ = ["DECODERS", "HEATMAP_DECODERS", "DecoderEntry", "DecoderParamError", "decode", "decode_argmax",
           "decode_argmax_quarter", "decode_h3r_topk", "decode_shr_local_softargmax", "decode_pipnet",
           "decode_regression", "pipnet_neighbour_tables"]
