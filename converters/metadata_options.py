"""Metadata for an ONNX-only model from command-line style options, optionally on top of a JSON file.

Users who bring a bare ONNX file know its decoder, input normalisation and crop
rule but should not have to write the full schema: what the ONNX graph already
says (input name and size, output names and shapes) is read from it, and the
options fill in the rest. Options given together with ``--metadata`` override
the matching fields of that file.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from sdk.decoders import DECODERS
from sdk.metadata import (OFFICIAL_CROPS, CropRule, DecoderSpec, InputSpec, MetadataError, ModelMetadata, OutputSpec, Provenance)
from sdk.schemes import SCHEMES, get_scheme, scheme_for_points


def parse_key_values(items: Sequence[str] | None, what: str = "decoder parameter") -> dict[str, Any]:
    """``["stride=4", "normalized=true"]`` → ``{"stride": 4, "normalized": True}`` (values parsed as JSON when they can be)."""
    result: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MetadataError(f"{what} {item!r} must look like KEY=VALUE")
        try:
            result[key] = json.loads(value)
        except json.JSONDecodeError:
            result[key] = {"True": True, "False": False}.get(value, value)
    return result


def _onnx_io(onnx_path: Path) -> tuple[tuple[str, tuple[int | None, ...]], list[tuple[str, tuple[int | None, ...]]]]:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def dims(value) -> tuple[int | None, ...]:
        return tuple(d.dim_value or None for d in value.type.tensor_type.shape.dim)

    inputs = [(i.name, dims(i)) for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise MetadataError(f"{onnx_path} has {len(inputs)} inputs; a landmark model takes one image tensor")
    return inputs[0], [(o.name, dims(o)) for o in graph.output]


def metadata_from_options(onnx_path: str | Path, base: ModelMetadata | None = None, *,
                          decoder: str | None = None, decoder_params: Mapping[str, Any] | None = None,
                          points: int | None = None, scheme: str | None = None, input_size: int | None = None,
                          mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                          scale: float | None = None, color: str | None = None, crop_expand: float | None = None,
                          crop_side_mode: str | None = None, crop_origin: str | None = None,
                          crop_preset: str | None = None, outputs: Mapping[str, str] | None = None) -> ModelMetadata:
    """Build (or amend ``base``) metadata for ``onnx_path``; raises MetadataError naming what is missing.

    ``outputs``: tensor name → role. Without it, a decoder that reads one role takes the
    model's only output. Decoder ``input_width``/``input_height`` parameters (regression)
    default to the input size.
    """
    onnx_path = Path(onnx_path)
    (in_name, in_dims), onnx_outputs = _onnx_io(onnx_path)
    if base is None and decoder is None:
        raise MetadataError(f"{onnx_path.name} carries no edgemark metadata: give --metadata FILE.json or at least "
                            f"--decoder (one of {sorted(DECODERS)}) with the preprocessing options")

    # input
    nchw = len(in_dims) == 4 and in_dims[1] == 3
    h_w = (in_dims[2], in_dims[3]) if nchw else (in_dims[1], in_dims[2]) if len(in_dims) == 4 else (None, None)
    if base is not None:
        spec = base.input
    else:
        size_h, size_w = (input_size, input_size) if input_size else h_w
        if not size_h or not size_w:
            raise MetadataError(f"the input of {onnx_path.name} has no fixed size: give --input-size")
        spec = InputSpec(name=in_name, width=int(size_w), height=int(size_h), layout="nchw" if nchw else "nhwc")
    changes: dict[str, Any] = {}
    if input_size:
        changes.update(width=input_size, height=input_size)
    for key, value in (("mean", mean), ("std", std)):
        if value is not None:
            values = tuple(float(v) for v in value)
            changes[key] = values * 3 if len(values) == 1 else values
    if scale is not None:
        changes["scale"] = float(scale)
    if color is not None:
        changes["color"] = color
    spec = dataclasses.replace(spec, **changes)

    # crop
    if crop_preset is not None:
        if crop_preset not in OFFICIAL_CROPS:
            raise MetadataError(f"--crop-preset {crop_preset!r} is unknown; known: {sorted(OFFICIAL_CROPS)}")
        crop = OFFICIAL_CROPS[crop_preset]
    else:
        crop = base.crop if base is not None else CropRule()
    crop_changes = {k: v for k, v in (("expand", crop_expand), ("side_mode", crop_side_mode),
                                      ("coordinate_origin", crop_origin)) if v is not None}
    crop = dataclasses.replace(crop, **crop_changes)

    # decoder
    name = decoder or base.decoder.name
    if name not in DECODERS:
        raise MetadataError(f"unknown decoder {name!r}; known: {sorted(DECODERS)}")
    params = dict(base.decoder.params) if base is not None and base.decoder.name == name else {}
    params.update(decoder_params or {})
    entry = DECODERS[name]
    for key, value in (("input_width", spec.width), ("input_height", spec.height)):
        if key in entry.required and key not in params:
            params[key] = value

    # outputs
    if outputs:
        by_name = dict(onnx_outputs)
        unknown = sorted(set(outputs) - set(by_name))
        if unknown:
            raise MetadataError(f"{onnx_path.name} has no outputs {unknown}; it has {sorted(by_name)}")
        specs = tuple(OutputSpec(name=n, role=r, shape=by_name[n][1:] if by_name[n] else None,
                                 layout="flat" if len(by_name[n]) == 2 else "nchw") for n, r in outputs.items())
    elif base is not None and (decoder is None or decoder == base.decoder.name):
        specs = base.outputs
    elif len(entry.roles) == 1 and len(onnx_outputs) == 1:
        out_name, out_dims = onnx_outputs[0]
        specs = (OutputSpec(name=out_name, role=entry.roles[0], shape=out_dims[1:],
                            layout="flat" if len(out_dims) == 2 else "nchw"),)
    else:
        raise MetadataError(f"decoder {name!r} reads roles {list(entry.roles)} and {onnx_path.name} has outputs "
                            f"{[n for n, _ in onnx_outputs]}: say which is which with --output NAME=ROLE")

    # scheme
    if scheme is not None:
        landmark_scheme = get_scheme(scheme)
    elif base is not None and points in (None, base.scheme.num_points):
        landmark_scheme = base.scheme
    else:
        n = points or _points_from_outputs(specs)
        if n is None:
            raise MetadataError(f"cannot tell the number of landmarks of {onnx_path.name}: give --points or "
                                f"--scheme (one of {sorted(SCHEMES)})")
        landmark_scheme = scheme_for_points(n)
    if points is not None and landmark_scheme.num_points != points:
        raise MetadataError(f"--points {points} contradicts scheme {landmark_scheme.name} "
                            f"({landmark_scheme.num_points} points)")

    provenance = base.provenance if base is not None else Provenance(architecture="onnx", source=onnx_path.name)
    return ModelMetadata(scheme=landmark_scheme, input=spec, crop=crop, decoder=DecoderSpec(name, params),
                         outputs=specs, provenance=provenance).validate()


def _points_from_outputs(specs: Sequence[OutputSpec]) -> int | None:
    for spec in specs:
        if spec.shape and all(d is not None for d in spec.shape):
            if spec.role == "landmarks":
                total = 1
                for d in spec.shape:
                    total *= d
                return total // 2
            if spec.role in ("heatmap", "cls"):
                return int(spec.shape[0])
    return None


def has_metadata_options(args: Any) -> bool:
    """Whether an argparse namespace carries any option that shapes ONNX metadata."""
    names = ("decoder", "decoder_param", "scheme", "mean", "std", "scale", "color", "crop_expand",
             "crop_side_mode", "crop_origin", "crop_preset", "output")
    return any(getattr(args, n, None) not in (None, []) for n in names)
