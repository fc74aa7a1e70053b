"""The file's metadata checked against its own graph, at load: a mismatch is a MetadataError naming both
values, never a wrong answer (or a runtime's raw error) at the first predict.

Checked, wherever the graph states the dimension (dynamic dimensions are skipped): the input's
layout and size; for every output the decoder reads, its channel count against the scheme's point
count (heat maps and PIPNet's cls/offset maps: points; PIPNet's neighbour maps: points × neighbours;
a regression output: 2 × points values; points decoded in the graph: points) and its map size × the decoder's stride against the input.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from .errors import MetadataError
from .metadata import ModelMetadata

Shape = Sequence["int | None"]


def _channels_and_map(shape: Shape, layout: str) -> tuple["int | None", "int | None", "int | None"]:
    if len(shape) != 3:
        return None, None, None
    return (shape[0], shape[1], shape[2]) if layout == "nchw" else (shape[2], shape[0], shape[1])


def check_model(meta: ModelMetadata, input_shape: Shape | None, output_shapes: Mapping[str, Shape]) -> None:
    """Raise MetadataError when ``meta`` contradicts the graph's per-sample input / output shapes."""
    spec = meta.input
    if input_shape is not None and len(input_shape) == 3:
        want = (3, spec.height, spec.width) if spec.layout == "nchw" else (spec.height, spec.width, 3)
        if any(g is not None and g != w for g, w in zip(input_shape, want)):
            raise MetadataError(f"the metadata says the input is {spec.layout.upper()} {spec.width}x{spec.height} "
                                f"(per-sample shape {want}) but the graph's input is {tuple(input_shape)}")
    points = meta.scheme.num_points
    params = meta.decoder.params
    stride = params.get("stride")
    per_channel = {"heatmap": points, "cls": points, "offset_x": points, "offset_y": points}
    if "num_neighbours" in params:
        per_channel.update(nb_x=points * int(params["num_neighbours"]), nb_y=points * int(params["num_neighbours"]))
    for out in meta.outputs:
        shape = output_shapes.get(out.name)
        if shape is None:
            continue
        if out.role == "landmarks":
            dims = [d for d in shape if d is not None]
            if len(dims) == len(shape) and _prod(dims) != 2 * points:
                raise MetadataError(f"output {out.name!r} holds {_prod(dims)} values per face but the scheme "
                                    f"{meta.scheme.name} has {points} points ({2 * points} coordinates)")
            continue
        if out.role == "face_confidence":  # mapped back in the graph: one value per face
            if shape:
                raise MetadataError(f"output {out.name!r} (face_confidence) must hold one value per face, got "
                                    f"per-face shape {tuple(shape)}")
            continue
        if out.role in ("points", "point_scores", "mapped_points", "point_confidence"):  # decoded in the graph
            if shape and shape[0] is not None and shape[0] != points:
                raise MetadataError(f"output {out.name!r} ({out.role}) holds {shape[0]} points but the scheme "
                                    f"{meta.scheme.name} has {points}")
            continue
        want = per_channel.get(out.role)
        channels, h, w = _channels_and_map(shape, out.layout if out.layout != "flat" else "nchw")
        if want is not None and channels is not None and channels != want:
            raise MetadataError(f"output {out.name!r} ({out.role}) has {channels} channels but the metadata implies "
                                f"{want} ({meta.scheme.name}: {points} points, decoder {meta.decoder.name})")
        if stride is not None and h is not None and w is not None:
            if abs(h * float(stride) - spec.height) > 1e-6 or abs(w * float(stride) - spec.width) > 1e-6:
                raise MetadataError(f"output {out.name!r} is a {w}x{h} map: with the decoder's stride {stride} it "
                                    f"covers {w * float(stride):g}x{h * float(stride):g} px, not the "
                                    f"{spec.width}x{spec.height} input")


def _prod(values: Sequence[int]) -> int:
    n = 1
    for v in values:
        n *= int(v)
    return n


__all__ = ["check_model"]
