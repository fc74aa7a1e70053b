"""Model metadata: the versioned schema every stage of the pipeline reads.

A model file is self-describing: the landmark scheme, the input tensor contract,
the crop rule, the decoder and its parameters and the output roles all travel
inside the file. Nothing downstream may hard-code a number that belongs here.
The schema is serialised as compact JSON under the key ``edgemark`` of each
format's own metadata store (ONNX ``metadata_props``, OpenVINO ``rt_info``,
TFLite metadata buffer).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from .decoders import DECODERS
from .errors import MetadataError

SCHEMA_VERSION = 2
# Versions this SDK reads. Version 1 files differ only in their crop rule, which had no
# rounding, clipping, resize-filter, per-axis or offset fields; read as version 2 with those
# at their neutral defaults they describe exactly the geometry they were written with.
READABLE_SCHEMA_VERSIONS = (1, 2)
METADATA_KEY = "edgemark"

# "points" / "point_scores": the decoder's own result, computed inside the graph (decoder param in_graph).
OUTPUT_ROLES = ("heatmap", "cls", "offset_x", "offset_y", "nb_x", "nb_y", "landmarks", "points", "point_scores",
                "mapped_points", "point_confidence", "face_confidence")
COORDINATE_ORIGINS = ("pixel_center", "pixel_corner")
SIDE_MODES = ("max_wh", "max_wh_plus1", "diag", "per_axis")
ROUNDINGS = ("none", "round", "floor")
RESIZE_FILTERS = ("bilinear", "antialias")
COLOR_ORDERS = ("rgb", "bgr")


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise MetadataError(message)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(field_name: str, values: Any, count: int | None = None) -> None:
    """Every value a real number (not a string, not a bool), and ``count`` of them when given."""
    seq = values if isinstance(values, (tuple, list)) else (values,)
    _require(all(_is_number(v) for v in seq), f"{field_name} must be numbers, got {values!r}")
    _require(count is None or len(seq) == count, f"{field_name} needs {count} values, got {len(seq)}")


@dataclass(frozen=True)
class LandmarkScheme:
    """Which points the model predicts and how they relate to other schemes."""

    name: str
    num_points: int
    flip_pairs: tuple[tuple[int, int], ...] = ()
    # Indices into this scheme that give the 68-point iBUG order (None: no mapping).
    to68: tuple[int, ...] | None = None

    def validate(self) -> None:
        _require(isinstance(self.name, str) and self.name != "", "scheme.name must be a non-empty string")
        _require(isinstance(self.num_points, int) and self.num_points > 0, "scheme.num_points must be a positive integer")
        for pair in self.flip_pairs:
            _require(isinstance(pair, (tuple, list)) and len(pair) == 2
                     and all(isinstance(i, int) and not isinstance(i, bool) for i in pair),
                     f"scheme.flip_pairs entry {pair!r} is not a pair of integer point indices")
            _require(all(0 <= int(i) < self.num_points for i in pair),
                     f"scheme.flip_pairs entry {pair!r} is not a pair of point indices < {self.num_points}")
        if self.to68 is not None:
            _require(len(self.to68) == 68, f"scheme.to68 must list 68 indices, got {len(self.to68)}")
            _require(all(isinstance(i, int) and not isinstance(i, bool) for i in self.to68),
                     "scheme.to68 must list integer point indices")
            _require(all(0 <= int(i) < self.num_points for i in self.to68), "scheme.to68 has an index out of range")

    def flip_permutation(self) -> list[int]:
        """Permutation that maps each point to its mirror partner (identity when unpaired)."""
        perm = list(range(self.num_points))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


@dataclass(frozen=True)
class InputSpec:
    """The tensor the network expects: ``(pixel * scale - mean) / std`` per channel."""

    name: str
    width: int
    height: int
    color: str = "rgb"  # channel order the network was trained on
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layout: str = "nchw"
    dtype: str = "float32"  # 'float32', 'float16', 'uint8' or 'int8' (quantised input)
    quant_scale: float | None = None
    quant_zero_point: int | None = None

    def validate(self) -> None:
        _require(isinstance(self.name, str) and self.name != "", "input.name must be a non-empty string")
        _require(isinstance(self.width, int) and self.width > 0 and isinstance(self.height, int) and self.height > 0,
                 f"input size must be positive integers, got {self.width}x{self.height}")
        _require(self.color in COLOR_ORDERS, f"input.color must be one of {COLOR_ORDERS}, got {self.color!r}")
        _require(self.layout in ("nchw", "nhwc"), f"input.layout must be 'nchw' or 'nhwc', got {self.layout!r}")
        _numbers("input.scale", self.scale)
        _numbers("input.mean", self.mean, 3)
        _numbers("input.std", self.std, 3)
        _require(all(s > 0 for s in self.std), "input.std values must be positive")
        _require(self.dtype in ("float32", "float16", "uint8", "int8"), f"input.dtype {self.dtype!r} is not supported")
        if self.dtype in ("uint8", "int8"):
            _require(self.quant_scale is not None and self.quant_zero_point is not None,
                     "a quantised input needs quant_scale and quant_zero_point")


@dataclass(frozen=True)
class CropRule:
    """How a face box ``[x1, y1, x2, y2]`` becomes the region fed to the network, and back.

    Coordinates are edgemark's pixel-centre ones (pixel (c, r) has its centre at (c, r)).
    Region sides: ``expand * f(w, h)`` square (``side_mode`` max_wh / max_wh_plus1 / diag), or
    per axis (``per_axis``: ``expand * w`` by ``expand_y * h``, ``expand_y`` defaulting to
    ``expand``). Centre: box centre + ``shift`` × side (per axis) + ``offset_px``.

    What the network sees (the *content*): with ``clip`` the region's pixel span
    ``[first, end)`` is clipped to ``[0, W-1]`` first (as PIPNet's code does); ``rounding``
    (``round`` half-to-even as PIL's crop, ``floor`` as ``int()`` on clipped values) makes the
    span whole pixels; ``resize`` ``bilinear`` samples like ``cv2.resize``/``warpAffine``,
    ``antialias`` like PIL's bilinear filter, which widens its support when it shrinks.

    The way back: decoded input coordinates (counted from ``coordinate_origin``) map through
    the region *before* rounding (after clipping), then ``map_offset_px`` is added — the
    official H3R and PIPNet code report corner-origin image coordinates, i.e. +0.5 px.
    Defaults are neutral: a version-1 rule reads unchanged.
    """

    expand: float = 1.25
    side_mode: str = "max_wh"
    shift_x: float = 0.0
    shift_y: float = 0.0
    coordinate_origin: str = "pixel_center"
    expand_y: float | None = None
    offset_px: float = 0.0
    clip: bool = False
    rounding: str = "none"
    resize: str = "bilinear"
    map_offset_px: float = 0.0

    def validate(self) -> None:
        _numbers("crop.expand", self.expand)
        _numbers("crop.shift_x / shift_y", (self.shift_x, self.shift_y))
        _numbers("crop.offset_px / map_offset_px", (self.offset_px, self.map_offset_px))
        _require(self.expand > 0, f"crop.expand must be positive, got {self.expand}")
        if self.expand_y is not None:
            _numbers("crop.expand_y", self.expand_y)
            _require(self.expand_y > 0, f"crop.expand_y must be positive, got {self.expand_y}")
            _require(self.side_mode == "per_axis", "crop.expand_y needs side_mode 'per_axis'")
        _require(self.side_mode in SIDE_MODES, f"crop.side_mode must be one of {SIDE_MODES}, got {self.side_mode!r}")
        _require(self.coordinate_origin in COORDINATE_ORIGINS,
                 f"crop.coordinate_origin must be one of {COORDINATE_ORIGINS}, got {self.coordinate_origin!r}")
        _require(isinstance(self.clip, bool), f"crop.clip must be true or false, got {self.clip!r}")
        _require(self.rounding in ROUNDINGS, f"crop.rounding must be one of {ROUNDINGS}, got {self.rounding!r}")
        _require(self.resize in RESIZE_FILTERS, f"crop.resize must be one of {RESIZE_FILTERS}, got {self.resize!r}")

    @property
    def is_plain(self) -> bool:
        """No clipping, rounding or antialiasing: the content is the exact float region (one warp)."""
        return not self.clip and self.rounding == "none" and self.resize == "bilinear"


# The official pipelines' geometry, read from their code (see docs/geometry.md):
# H3R (commit 52a8bde): square max(w+1, h+1) x 1.25 about the box centre, PIL crop (rounded)
# and PIL bilinear resize, map back x = u*s/S + (x1+x2+1)/2 - s/2 (corner reading + 0.5 px).
# PIPNet (commit b9eab58, WFLW test crop): box x 1.2 per axis with the box read as corner
# coordinates, clipped to [0, W-1], int() truncation, cv2.resize, x = xmin + p * width.
# Its demo (detector boxes) keeps the height and moves the box down by 0.1 h.
OFFICIAL_CROPS: dict[str, CropRule] = {
    "h3r": CropRule(expand=1.25, side_mode="max_wh_plus1", coordinate_origin="pixel_corner",
                    rounding="round", resize="antialias", map_offset_px=0.5),
    "pipnet": CropRule(expand=1.2, side_mode="per_axis", coordinate_origin="pixel_corner", offset_px=-0.5,
                       clip=True, rounding="floor", map_offset_px=0.5),
    "pipnet_detector": CropRule(expand=1.2, expand_y=1.0, side_mode="per_axis", shift_y=0.1,
                                coordinate_origin="pixel_corner", offset_px=-0.5, clip=True, rounding="floor",
                                map_offset_px=0.5),
}


@dataclass(frozen=True)
class OutputSpec:
    """One output tensor, found by ``name`` (converters may rename; ``shape`` is the fallback)."""

    name: str
    role: str
    shape: tuple[int | None, ...] | None = None  # per-sample shape, batch excluded, in the model's layout
    layout: str = "nchw"
    quant_scale: float | None = None
    quant_zero_point: int | None = None

    def validate(self) -> None:
        _require(isinstance(self.name, str) and self.name != "", "output.name must be a non-empty string")
        _require(self.role in OUTPUT_ROLES, f"output role {self.role!r} is not one of {OUTPUT_ROLES}")
        _require(self.layout in ("nchw", "nhwc", "flat"), f"output.layout {self.layout!r} is not supported")


@dataclass(frozen=True)
class DecoderSpec:
    """Decoder registered in ``sdk.decoders`` and the parameters it is called with."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(self.name in DECODERS, f"decoder {self.name!r} is unknown; known: {sorted(DECODERS)}")
        DECODERS[self.name].check_params(self.params)


@dataclass(frozen=True)
class FaceConfidenceSpec:
    """What this model's face confidence is worth as a face / no-face gate (``calibration.confidence``).

    ``threshold``: detected faces below it are dropped (None: ``PredictorOptions``' 0.5);
    ``informative`` False: the confidence carries no evidence (e.g. coordinate regression), so
    detected faces are not gated on it and the detector's own score decides. ``measured`` says
    on what and how well it separated faces from face-free boxes.
    """

    informative: bool = True
    threshold: float | None = None
    measured: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _require(isinstance(self.informative, bool), f"face_confidence.informative must be true or false, "
                                                     f"got {self.informative!r}")
        if self.threshold is not None:
            _numbers("face_confidence.threshold", self.threshold)
            _require(0.0 <= self.threshold <= 1.0, f"face_confidence.threshold must be in [0, 1], got {self.threshold}")


@dataclass(frozen=True)
class Provenance:
    architecture: str = "unknown"
    source: str = ""
    source_sha256: str = ""
    converter: str = "edgemark"
    converter_version: str = ""
    precision: str = "fp32"
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelMetadata:
    """Everything needed to run and decode a landmark model, stored inside the model file."""

    scheme: LandmarkScheme
    input: InputSpec
    crop: CropRule
    decoder: DecoderSpec
    outputs: tuple[OutputSpec, ...]
    provenance: Provenance = field(default_factory=Provenance)
    schema_version: int = SCHEMA_VERSION
    face_confidence: FaceConfidenceSpec = field(default_factory=FaceConfidenceSpec)

    def validate(self) -> "ModelMetadata":
        _require(self.schema_version == SCHEMA_VERSION,
                 f"metadata schema version {self.schema_version} is not supported (this edgemark reads "
                 f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))})")
        self.scheme.validate()
        self.input.validate()
        self.crop.validate()
        self.decoder.validate()
        self.face_confidence.validate()
        _require(len(self.outputs) > 0, "metadata lists no outputs")
        for out in self.outputs:
            out.validate()
        roles = [o.role for o in self.outputs]
        _require(len(set(roles)) == len(roles), f"output roles repeat: {roles}")
        missing = set(DECODERS[self.decoder.name].roles_for(self.decoder.params)) - set(roles)
        _require(not missing, f"decoder {self.decoder.name!r} needs outputs with roles {sorted(missing)}")
        return self

    def output_for(self, role: str) -> OutputSpec:
        for out in self.outputs:
            if out.role == role:
                return out
        raise MetadataError(f"metadata has no output with role {role!r}")

    def replace(self, **changes: Any) -> "ModelMetadata":
        return dataclasses.replace(self, **changes)

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelMetadata":
        _require(isinstance(data, Mapping), "metadata must be a JSON object")
        data = upgrade_metadata_dict(data)
        try:
            meta = cls(
                schema_version=int(data.get("schema_version", -1)),
                scheme=_build(LandmarkScheme, data["scheme"], tuples=("flip_pairs", "to68")),
                input=_build(InputSpec, data["input"], tuples=("mean", "std")),
                crop=_build(CropRule, data["crop"]),
                decoder=_build(DecoderSpec, data["decoder"]),
                outputs=tuple(_build(OutputSpec, o, tuples=("shape",)) for o in data["outputs"]),
                provenance=_build(Provenance, data.get("provenance", {})),
                face_confidence=_build(FaceConfidenceSpec, data.get("face_confidence", {})),
            )
        except KeyError as exc:
            raise MetadataError(f"metadata is missing the field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, MetadataError):
                raise
            raise MetadataError(f"metadata is malformed: {exc}") from None
        return meta.validate()

    @classmethod
    def from_json(cls, text: str | bytes | None) -> "ModelMetadata":
        if text is None or (isinstance(text, (str, bytes)) and len(text) == 0):
            raise MetadataError("the model file carries no edgemark metadata "
                                "(convert it with `edgemark convert`, or pass the metadata explicitly)")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MetadataError(f"edgemark metadata is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def upgrade_metadata_dict(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A stored metadata object in the current schema. Version 1 → 2 is a pure relabel: every
    new crop field takes its neutral default, so the geometry a v1 file was written with is kept.
    Files are upgraded on disk by ``edgemark convert FILE --restamp`` (or any re-conversion)."""
    version = data.get("schema_version")
    if version == 1:
        return {**data, "schema_version": 2}
    return data


def _plain(value: Any) -> Any:
    """Turn tuples/mappings into JSON-friendly lists/dicts, numpy scalars into Python ones."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _build(cls: type, data: Any, tuples: tuple[str, ...] = ()) -> Any:
    _require(isinstance(data, Mapping), f"metadata section for {cls.__name__} must be an object")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    _require(not unknown, f"unknown fields in {cls.__name__}: {sorted(unknown)}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    absent = [k for k in required if k not in data]
    _require(not absent, f"metadata section {cls.__name__} is missing the field(s) {absent}")
    kwargs = {k: (_freeze(v) if k in tuples else v) for k, v in data.items()}
    return cls(**kwargs)
