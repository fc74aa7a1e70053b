"""ONNX → OpenVINO IR (FP32 or FP16 weights), edgemark metadata in the IR's ``rt_info``.

The IR is converted from the same FP32 ONNX every other format starts from, so an
ONNX-only model converts exactly like an exported checkpoint. ``compress_to_fp16``
only changes how the weights are stored: the CPU plugin computes in FP32 (the SDK
asks for it explicitly) either way.
"""
from __future__ import annotations

from pathlib import Path

from sdk.backends.openvino import import_openvino
from sdk.metadata import METADATA_KEY, ModelMetadata

from sdk.atomic import atomic_paths
from .output_names import reconcile_outputs

from .source import ConversionError, ensure_onnx, output_path, with_precision

PRECISIONS = ("fp32", "fp16")  # the float files; INT8 IRs come from converters.int8.openvino


def convert_onnx_to_openvino(onnx_path: str | Path, meta: ModelMetadata, xml_path: str | Path,
                             precision: str = "fp32") -> ModelMetadata:
    """Write ``xml_path`` and its ``.bin``; return the metadata actually embedded (output names reconciled)."""
    ov = import_openvino()
    if precision not in PRECISIONS:
        raise ValueError(f"OpenVINO precision must be one of {PRECISIONS}, got {precision!r}")
    xml_path = Path(xml_path)
    try:
        with _offline():
            model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # unsupported op, bad graph: OpenVINO raises its own types
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        raise ConversionError(f"OpenVINO cannot convert {onnx_path}: {(lines or [''])[-1][:300]}") from None
    meta = stamp_ir(model, meta)
    save_ir(model, xml_path, compress_to_fp16=(precision == "fp16"))
    return meta


def stamp_ir(model, meta: ModelMetadata) -> ModelMetadata:
    """Reconcile ``meta``'s output names with the model's and put it in the model's rt_info (one copy)."""
    meta = reconcile_outputs(meta, [(set(o.get_names()), static_dims(o.get_partial_shape())) for o in model.outputs])
    _drop_framework_copy(model)
    model.set_rt_info(meta.validate().to_json(), [METADATA_KEY])
    return meta


def restamp_openvino(xml_path: str | Path, meta: ModelMetadata) -> None:
    """Replace the edgemark metadata of an IR in place (weights untouched)."""
    ov = import_openvino()
    xml_path = Path(xml_path)
    model = ov.Core().read_model(str(xml_path))
    model.set_rt_info(meta.validate().to_json(), [METADATA_KEY])
    save_ir(model, xml_path)


def save_ir(model, xml_path: str | Path, compress_to_fp16: bool = False) -> None:
    """Write an IR (.xml + .bin) atomically."""
    ov = import_openvino()
    xml_path = Path(xml_path)
    with atomic_paths(xml_path, xml_path.with_suffix(".bin")) as (tmp_xml, tmp_bin):
        # save_model puts the weights beside the .xml it is given; the IR does not name its .bin
        # (the runtime pairs x.xml with x.bin), so moving them to atomic_paths' temp .bin is enough.
        written_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
            written_bin.replace(tmp_bin)
        finally:
            written_bin.unlink(missing_ok=True)


def _offline():
    """No sockets during ``ov.convert_model``: conversion stays offline (the import helper already
    stubbed OpenVINO's usage telemetry; this also covers a process that imported openvino earlier)."""
    from .onnx2tf_runner import network_blocked

    return network_blocked()


def _drop_framework_copy(model) -> None:
    """OpenVINO copies the ONNX ``metadata_props`` into ``rt_info['framework']``; keep only one edgemark copy."""
    if not model.has_rt_info(["framework", METADATA_KEY]):
        return
    rt = model.get_rt_info()
    kept = {k: v.astype(str) for k, v in rt["framework"].items() if k != METADATA_KEY}
    del rt["framework"]
    for key, value in kept.items():
        model.set_rt_info(value, ["framework", key])


def static_dims(shape) -> tuple[int | None, ...]:
    return tuple(d.get_length() if d.is_static else None for d in shape)


def write_openvino(source, out_dir: Path, precision: str) -> Path:
    """Writer for ``converters.api``: ``<name>_<precision>.xml`` (+ ``.bin``) from the source's FP32 ONNX."""
    target = output_path(source, out_dir, "openvino", precision)
    ov = import_openvino()
    meta = with_precision(source.meta, precision, openvino_version=ov.get_version().split("-")[0])
    convert_onnx_to_openvino(ensure_onnx(source), meta, target, precision)
    return target
