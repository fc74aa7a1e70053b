"""ONNX → OpenVINO IR (FP32 or FP16 weights), edgemark metadata in the IR's ``rt_info``.

The IR is converted from the same FP32 ONNX every other format starts from, so an
ONNX-only model converts exactly like an exported checkpoint. ``compress_to_fp16``
only changes how the weights are stored: the CPU plugin computes in FP32 (the SDK
asks for it explicitly) either way.
"""
from __future__ import annotations

import logging
from pathlib import Path

from sdk.metadata import METADATA_KEY, MetadataError, ModelMetadata, OutputSpec

from .atomic import atomic_paths

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16")


def convert_onnx_to_openvino(onnx_path: str | Path, meta: ModelMetadata, xml_path: str | Path,
                             precision: str = "fp32") -> ModelMetadata:
    """Write ``xml_path`` and its ``.bin``; return the metadata actually embedded (output names reconciled)."""
    import openvino as ov

    if precision not in PRECISIONS:
        raise ValueError(f"OpenVINO precision must be one of {PRECISIONS}, got {precision!r}")
    xml_path = Path(xml_path)
    model = ov.convert_model(str(onnx_path))
    meta = reconcile_outputs(meta, [(set(o.get_names()), _static_dims(o.get_partial_shape())) for o in model.outputs])
    _drop_framework_copy(model)
    model.set_rt_info(meta.validate().to_json(), [METADATA_KEY])
    with atomic_paths(xml_path, xml_path.with_suffix(".bin")) as (tmp_xml, tmp_bin):
        # save_model puts the weights beside the .xml it is given; the IR does not name its .bin
        # (the runtime pairs x.xml with x.bin), so moving them to atomic_paths' temp .bin is enough.
        written_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=(precision == "fp16"))
            written_bin.replace(tmp_bin)
        finally:
            written_bin.unlink(missing_ok=True)
    return meta


def _drop_framework_copy(model) -> None:
    """OpenVINO copies the ONNX ``metadata_props`` into ``rt_info['framework']``; keep only one edgemark copy."""
    if not model.has_rt_info(["framework", METADATA_KEY]):
        return
    rt = model.get_rt_info()
    kept = {k: v.astype(str) for k, v in rt["framework"].items() if k != METADATA_KEY}
    del rt["framework"]
    for key, value in kept.items():
        model.set_rt_info(value, ["framework", key])


def _static_dims(shape) -> tuple[int | None, ...]:
    return tuple(d.get_length() if d.is_static else None for d in shape)


def reconcile_outputs(meta: ModelMetadata, actual: list[tuple[set[str], tuple[int | None, ...]]]) -> ModelMetadata:
    """Point each OutputSpec at the tensor name the converted model really has.

    ``actual``: (names, full shape with batch) per output. A name that survives is kept;
    otherwise the unique output with the spec's per-sample shape is taken, or the only
    output when there is one. Anything else is an error: guessing would mislabel roles.
    """
    specs = []
    taken: set[int] = set()
    for spec in meta.outputs:
        hits = [i for i, (names, _) in enumerate(actual) if spec.name in names]
        if not hits and spec.shape is not None:
            hits = [i for i, (_, shape) in enumerate(actual)
                    if i not in taken and len(shape) == len(spec.shape) + 1
                    and all(s is None or a is None or s == a for s, a in zip(spec.shape, shape[1:]))]
        if not hits and len(actual) == len(meta.outputs) == 1:
            hits = [0]
        if len(hits) != 1:
            raise MetadataError(f"cannot tell which converted output is {spec.name!r} (role {spec.role}): "
                                f"outputs are {[sorted(n) for n, _ in actual]}")
        taken.add(hits[0])
        names, _ = actual[hits[0]]
        if not names:
            raise MetadataError(f"the converted output for {spec.name!r} (role {spec.role}) has no tensor name")
        name = spec.name if spec.name in names else sorted(names)[0]
        if name != spec.name:
            log.info("output %r is called %r in the converted model", spec.name, name)
        specs.append(_renamed(spec, name))
    return meta.replace(outputs=tuple(specs))


def _renamed(spec: OutputSpec, name: str) -> OutputSpec:
    import dataclasses

    return dataclasses.replace(spec, name=name)


def write_openvino(source, out_dir: Path, precision: str) -> Path:
    """Writer for ``converters.api``: ``<name>_<precision>.xml`` (+ ``.bin``) from the source's FP32 ONNX."""
    from .api import ensure_onnx, output_path, with_precision

    target = output_path(source, out_dir, "openvino", precision)
    import openvino as ov

    meta = with_precision(source.meta, precision, openvino_version=ov.get_version().split("-")[0])
    convert_onnx_to_openvino(ensure_onnx(source), meta, target, precision)
    return target
