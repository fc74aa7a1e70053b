"""Decoders: pure, vectorised numpy functions from raw network outputs to landmarks.

Every decoder takes ``outputs`` (a mapping from output role to a float array with
the batch first, NCHW for maps) plus its parameters from the model metadata, and
returns ``(landmarks, scores)``: landmarks float32 (N, L, 2) in network-input
pixels (origin given by the metadata's crop rule), scores float32 (N, L) — the
decoder's own evidence for each point (peak height, cell score, …).

``DECODERS`` is the one table of decoders: each entry owns its output roles, its
required and optional parameters with their defaults, and its confidence rule
(``sdk.confidence``), so metadata validation, the Predictor, the converters and the
CLI all read the same facts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..confidence import clipped_confidence, constant_confidence, softmax_mass_confidence, unit_interval
from ..errors import DecoderParamError, MetadataError
from .heatmap import (SHR_TEMPERATURE, SHR_WINDOW, decode_argmax, decode_argmax_quarter, decode_h3r_topk,
                      decode_shr_local_softargmax)
from .pipnet import decode_pipnet, pipnet_neighbour_tables
from .regression import decode_regression

DecodeFn = Callable[..., tuple[np.ndarray, np.ndarray]]
ConfidenceRule = Callable[[np.ndarray], np.ndarray]

# A file whose graph already ends in its decoder (``converters.graph_decode``) says so with this decoder
# parameter and returns the decoder's result as outputs with these roles: (N, L, 2) points in input
# pixels and (N, L) scores, identical to what the numpy function would compute from its maps.
IN_GRAPH = "in_graph"
IN_GRAPH_ROLES = ("points", "point_scores")
# A file whose graph also maps its points back to image pixels and computes the confidence
# (``converters.graph_map_back``) adds ``maps_back: true`` to that, takes a second input
# ``TO_IMAGE_INPUT`` — (N, 2, 2) float32: per face the x/y scale (row 0) and offset (row 1), image = input
# x scale + offset — and returns these roles: the points in image pixels, the decoder's scores, the
# point confidence in [0, 1] (non-finite → 0) and the face confidence (their mean). Given the identity
# map the points are the input coordinates the other files return, so code that knows no map still works.
MAPS_BACK = "maps_back"
MAPPED_ROLES = ("mapped_points", "point_scores", "point_confidence", "face_confidence")
TO_IMAGE_INPUT = "edgemark_to_image"


@dataclass(frozen=True)
class DecoderEntry:
    """One decoder: its function, the output roles it reads (in argument order), its parameters
    (``required``; ``defaults`` for the optional ones) and how its scores become a confidence."""

    fn: DecodeFn
    roles: tuple[str, ...]
    required: tuple[str, ...]
    confidence: ConfidenceRule
    defaults: Mapping[str, Any] = field(default_factory=dict)
    informative: bool = True  # False: the confidence carries no evidence (callers must not gate on it)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(self.defaults)

    def check_params(self, params: Mapping[str, Any]) -> None:
        missing = [p for p in self.required if p not in params]
        if missing:
            raise MetadataError(f"decoder parameters missing: {missing}")
        unknown = set(params) - set(self.required) - set(self.optional) - {IN_GRAPH, MAPS_BACK}
        if unknown:
            raise MetadataError(f"unknown decoder parameters: {sorted(unknown)}")
        for flag in (IN_GRAPH, MAPS_BACK):
            if flag in params and not isinstance(params[flag], bool):
                raise MetadataError(f"decoder parameter {flag!r} must be true or false, got {params[flag]!r}")
        if params.get(MAPS_BACK) and not params.get(IN_GRAPH):
            raise MetadataError(f"decoder parameter {MAPS_BACK!r} needs {IN_GRAPH!r}: a graph maps back points it decoded")

    def roles_for(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The output roles a file with these parameters must have."""
        if params.get(MAPS_BACK):
            return MAPPED_ROLES
        return IN_GRAPH_ROLES if params.get(IN_GRAPH) else self.roles

    def __call__(self, outputs: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if params.get(MAPS_BACK):  # points mapped by the map input the backend was given (identity: input pixels)
            return tuple(np.asarray(outputs[r], dtype=np.float32) for r in MAPPED_ROLES[:2])  # type: ignore[return-value]
        if params.get(IN_GRAPH):  # the runtime already decoded, in native code
            return tuple(np.asarray(outputs[r], dtype=np.float32) for r in IN_GRAPH_ROLES)  # type: ignore[return-value]
        args = [np.asarray(outputs[r], dtype=np.float32) for r in self.roles]
        return self.fn(*args, **{**self.defaults, **params})

    def point_confidence(self, scores: np.ndarray) -> np.ndarray:
        """(N, L) float32 in [0, 1] from this decoder's scores (rules: ``sdk.confidence``)."""
        return unit_interval(self.confidence(scores))


DECODERS: dict[str, DecoderEntry] = {
    "h3r_topk": DecoderEntry(decode_h3r_topk, ("heatmap",), ("stride",), softmax_mass_confidence, {"topk": 9}),
    "shr_local_softargmax": DecoderEntry(decode_shr_local_softargmax, ("heatmap",), ("stride",), clipped_confidence,
                                         {"window": SHR_WINDOW, "temperature": SHR_TEMPERATURE}),
    "argmax": DecoderEntry(decode_argmax, ("heatmap",), ("stride",), clipped_confidence),
    "argmax_quarter": DecoderEntry(decode_argmax_quarter, ("heatmap",), ("stride",), clipped_confidence),
    "pipnet": DecoderEntry(decode_pipnet, ("cls", "offset_x", "offset_y", "nb_x", "nb_y"),
                           ("stride", "num_neighbours", "reverse_index1", "reverse_index2"), clipped_confidence),
    "regression": DecoderEntry(decode_regression, ("landmarks",), ("input_width", "input_height"),
                               constant_confidence, {"normalized": True, "centered": False}, informative=False),
}

# Decoders that read a plain heat map and so can stand in for one another (baselines).
HEATMAP_DECODERS = tuple(name for name, e in DECODERS.items() if e.roles == ("heatmap",))


def decoder_entry(name: str) -> DecoderEntry:
    try:
        return DECODERS[name]
    except KeyError:
        raise DecoderParamError(f"unknown decoder {name!r}; known: {sorted(DECODERS)}") from None


def decode(name: str, outputs: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Run decoder ``name`` on outputs keyed by role."""
    return decoder_entry(name)(outputs, params)


def point_confidence(name: str, scores: np.ndarray) -> np.ndarray:
    """(N, L) confidence in [0, 1] of decoder ``name``'s scores."""
    return decoder_entry(name).point_confidence(scores)


__all__ = ["DECODERS", "HEATMAP_DECODERS", "IN_GRAPH", "IN_GRAPH_ROLES", "MAPPED_ROLES", "MAPS_BACK", "TO_IMAGE_INPUT",
           "DecoderEntry", "DecoderParamError", "decode", "decode_argmax",
           "decode_argmax_quarter", "decode_h3r_topk", "decode_shr_local_softargmax", "decode_pipnet",
           "decode_regression", "decoder_entry", "pipnet_neighbour_tables", "point_confidence"]
