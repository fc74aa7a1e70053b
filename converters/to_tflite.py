"""ONNX or torch → TFLite FP32 / FP16, edgemark metadata inside the flatbuffer.

Two converters, chosen per source (``choose_converter``):

* **onnx2tf** (ONNX → TFLite), the path for ONNX-only models. It needs a static input
  shape (a batch-1 copy of the ONNX is made), turns 4-D inputs and often 4-D outputs
  to NHWC, renames tensors, and one run writes both the FP32 and the FP16 file. It runs
  offline in a child process (``converters.onnx2tf_runner``). Measured here, it
  *silently mis-converts* H3R-MobileNetV2-128: a Concat of tensors whose channel count
  equals their spatial size (32×32×32) gets the wrong axis (heat-map error 8 logits).
* **litert-torch** (torch → TFLite), used when a torch module is at hand: keeps NCHW
  I/O; FP16 weights are made from its FP32 file with ai-edge-quantizer (float casting).

Whichever ran, every output of the written file is matched to an ONNX output
numerically (ONNX Runtime and LiteRT on a real face crop, identity or NCHW→NHWC) —
a conversion that does not reproduce the ONNX is refused, never written — renamed
back to its ONNX name, and the metadata records the input layout and each output's
layout and per-sample shape as the file really has them.

The metadata goes into ``Model.metadata`` as an entry named ``edgemark`` pointing at a
buffer that holds the JSON (written with TensorFlow's flatbuffer utilities here; the
SDK reads it with a small reader of its own).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sdk.atomic import atomic_paths
from sdk.metadata import METADATA_KEY, ModelMetadata
from sdk.preprocess import to_layout

from .onnx2tf_runner import CALIBRATION_FILE, NETWORK_EXIT_CODE
from .output_names import reconcile_outputs
from .source import ConversionError, ensure_onnx, output_path, with_precision

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "fp16")
_ONNX2TF_SUFFIX = {"fp32": "_float32.tflite", "fp16": "_float16.tflite"}
ONNX2TF_TIMEOUT_S = 1800
# A converted output must reproduce its ONNX output to this fraction of the output's range.
MATCH_TOLERANCE = 0.05


class TfliteConversionError(RuntimeError):
    """onnx2tf failed, tried the network, or wrote a file whose outputs cannot be matched to the ONNX."""


# ---------------------------------------------------------------------------------- onnx2tf
def static_batch_onnx(onnx_path: str | Path, out_path: str | Path, batch: int = 1) -> Path:
    """Copy of the ONNX with batch ``batch`` on every graph input/output and no metadata (onnx2tf needs static shapes)."""
    import onnx

    model = onnx.load(str(onnx_path))
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) and not dims[0].dim_value:
            dims[0].ClearField("dim_param")
            dims[0].dim_value = batch
    for value in list(model.graph.input):
        if any(not d.dim_value for d in value.type.tensor_type.shape.dim):
            raise TfliteConversionError(f"input {value.name!r} of {onnx_path} has dynamic dimensions other than the "
                                        "batch; TFLite conversion needs a fixed input size")
    del model.graph.value_info[:]  # re-inferred by onnx2tf from the now static input
    del model.metadata_props[:]
    out_path = Path(out_path)
    onnx.save(model, str(out_path))
    return out_path


def calibration_sample(meta: ModelMetadata, count: int = 20) -> np.ndarray:
    """(count, 128, 128, 3) float32 real face crops, normalised as the model expects, in onnx2tf's file layout."""
    from .verify import real_face_tensors

    spec = dataclasses.replace(meta.input, width=128, height=128, layout="nchw")
    return to_layout(real_face_tensors(meta.replace(input=spec), count).astype(np.float32), "nchw", "nhwc")


def run_onnx2tf(onnx_path: Path, meta: ModelMetadata, workdir: Path) -> dict[str, Path]:
    """Run onnx2tf offline in ``workdir``; return {precision: written .tflite}."""
    workdir.mkdir(parents=True, exist_ok=True)
    static = static_batch_onnx(onnx_path, workdir / "model.onnx")
    np.save(workdir / CALIBRATION_FILE, calibration_sample(meta))
    env = dict(os.environ)
    # onnx2tf calls the `onnxsim` command; it lives beside this interpreter in a virtual environment.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "converters.onnx2tf_runner", static.name, "out"]
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=ONNX2TF_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TfliteConversionError(f"onnx2tf did not finish within {ONNX2TF_TIMEOUT_S} s") from None
    log_text = (proc.stdout + proc.stderr).strip()
    (workdir / "onnx2tf.log").write_text(log_text)
    if proc.returncode == NETWORK_EXIT_CODE:
        raise TfliteConversionError("onnx2tf tried to reach the network and was stopped: "
                                    + _tail(log_text, "network"))
    produced = {p: workdir / "out" / f"{static.stem}{suffix}" for p, suffix in _ONNX2TF_SUFFIX.items()}
    if proc.returncode != 0 or not all(f.is_file() for f in produced.values()):
        raise TfliteConversionError(f"onnx2tf failed (exit {proc.returncode}); log: {workdir / 'onnx2tf.log'}\n"
                                    + _tail(log_text))
    return produced


def _tail(text: str, keyword: str | None = None, lines: int = 15) -> str:
    rows = [r for r in text.splitlines() if r.strip()]
    if keyword:
        hits = [r for r in rows if keyword in r.lower()]
        if hits:
            return hits[-1][:500]
    return "\n".join(rows[-lines:])


# ------------------------------------------------------------------------- flatbuffer edits
def _fb():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils


def _decoded_name(entry) -> str:
    name = entry.name
    return name.decode() if isinstance(name, bytes) else str(name)


def embed_tflite_metadata(model_obj, meta: ModelMetadata) -> None:
    """Put ``meta`` in ``Model.metadata`` as entry ``edgemark`` → a new buffer holding the JSON (replacing any old one)."""
    from tensorflow.lite.python import schema_py_generated as schema

    entries = [m for m in (model_obj.metadata or []) if _decoded_name(m) != METADATA_KEY]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(meta.validate().to_json().encode("utf-8"), dtype=np.uint8)
    model_obj.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model_obj.buffers) - 1
    model_obj.metadata = [*entries, entry]


def inline_external_buffers(model_obj, raw: bytes) -> None:
    """Move constants stored after the flatbuffer (Buffer.offset/size, as ai-edge-quantizer writes them)
    into the buffers themselves: re-packing the object would otherwise drop them."""
    for buffer in model_obj.buffers:
        offset, size = int(buffer.offset or 0), int(buffer.size or 0)
        if offset > 1 and size and (buffer.data is None or len(buffer.data) == 0):
            if offset + size > len(raw):
                raise TfliteConversionError(f"a constant buffer points past the end of the file ({offset}+{size})")
            buffer.data = np.frombuffer(raw[offset:offset + size], dtype=np.uint8)
            buffer.offset, buffer.size = 0, 0


def rewrite_tflite(raw: bytes, target: str | Path, edit: Callable[[Any], Any], meta: ModelMetadata,
                   check: Callable[[bytes], None] | None = None) -> bytes:
    """The one way a .tflite is edited: parse ``raw``, inline constants stored after the flatbuffer,
    ``edit(model_obj)``, embed ``meta``, re-pack, optionally ``check(bytes)`` the result, write
    ``target`` atomically. Returns the bytes written."""
    fb = _fb()
    model_obj = fb.convert_bytearray_to_object(bytearray(raw))
    inline_external_buffers(model_obj, raw)  # re-packing would otherwise drop them
    edit(model_obj)
    ensure_signature(model_obj)
    embed_tflite_metadata(model_obj, meta)
    data = bytes(fb.convert_object_to_bytearray(model_obj))
    if check is not None:
        check(data)
    with atomic_paths(target) as (tmp,):
        tmp.write_bytes(data)
    return data


def ensure_signature(model_obj: Any) -> None:
    """Give a model without a SignatureDef the ``serving_default`` one of its main graph.

    onnx2tf writes some graphs (PFLD-GhostNet, -Slim) without one, and the INT8 quantizer
    (and any LiteRT signature runner) calibrates through it; the inputs and outputs are the
    graph's own, named as its tensors are."""
    if model_obj.signatureDefs:
        return
    from tensorflow.lite.python import schema_py_generated as schema

    graph = model_obj.subgraphs[0]

    def tensor_map(index: int) -> Any:
        entry = schema.TensorMapT()
        entry.name = _decoded_name(graph.tensors[index]).encode()
        entry.tensorIndex = int(index)
        return entry

    sig = schema.SignatureDefT()
    sig.signatureKey = b"serving_default"
    sig.subgraphIndex = 0
    sig.inputs = [tensor_map(i) for i in graph.inputs]
    sig.outputs = [tensor_map(i) for i in graph.outputs]
    model_obj.signatureDefs = [sig]


def restamp_tflite(path: str | Path, meta: ModelMetadata) -> None:
    """Replace the edgemark metadata of a .tflite in place."""
    rewrite_tflite(Path(path).read_bytes(), path, lambda model_obj: None, meta)


def _match_outputs(onnx_path: Path, tflite_bytes: bytes, x_nchw: np.ndarray, input_nhwc: bool
                   ) -> dict[str, tuple[int, str]]:
    """ONNX output name → (index among the TFLite outputs, layout 'nchw'|'nhwc'|'flat'), decided numerically."""
    import onnxruntime as ort

    from sdk.backends.litert import interpreter_class

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x_nchw = np.ascontiguousarray(x_nchw[:1], dtype=np.float32)
    ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x_nchw})))
    try:
        interp = interpreter_class()(model_content=tflite_bytes)
        interp.allocate_tensors()
    except Exception as exc:  # the runtime's verifier rejects a malformed flatbuffer
        raise TfliteConversionError(f"LiteRT cannot load the converted file: {exc}") from None
    interp.set_tensor(interp.get_input_details()[0]["index"],
                      to_layout(x_nchw, "nchw", "nhwc") if input_nhwc else x_nchw)
    interp.invoke()
    got = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
    result: dict[str, tuple[int, str]] = {}
    for name, want in ref.items():
        span = float(np.ptp(want)) or 1.0
        best = None
        for i, arr in enumerate(got):
            views = [("nchw" if want.ndim == 4 else "flat", arr)]
            if want.ndim == 4 and arr.ndim == 4:
                views.append(("nhwc", to_layout(arr, "nhwc", "nchw")))
            for layout, view in views:
                if view.shape == want.shape:
                    err = float(np.abs(view - want).max()) / span
                    if best is None or err < best[0]:
                        best = (err, i, layout)
        if best is None or best[0] > MATCH_TOLERANCE:
            err = f"{best[0]:.3g}" if best else "n/a"
            raise TfliteConversionError(
                f"no output of the converted TFLite file reproduces ONNX output {name!r} (best error {err} of its "
                "range): the converter mis-converted the graph, so nothing was written. For a torch checkpoint, "
                "--tflite-converter litert-torch avoids onnx2tf")
        result[name] = (best[1], best[2])
    if len({i for i, _ in result.values()}) != len(result):
        raise TfliteConversionError(f"two ONNX outputs matched the same TFLite output: {result}")
    return result


def finalize_tflite(tflite_file: Path, onnx_file: Path, meta: ModelMetadata, face_nchw: np.ndarray,
                    target: Path) -> ModelMetadata:
    """Rename I/O back to the ONNX names, record layouts/shapes in the metadata, embed it, write atomically.

    ``face_nchw``: a real face crop (1, 3, H, W) preprocessed for this model, used to match outputs.
    """
    raw = tflite_file.read_bytes()
    graph = _fb().convert_bytearray_to_object(bytearray(raw)).subgraphs[0]
    if len(graph.inputs) != 1:
        raise TfliteConversionError(f"{tflite_file} has {len(graph.inputs)} inputs; expected one image tensor")
    in_shape = tuple(int(d) for d in graph.tensors[graph.inputs[0]].shape)
    spec = meta.input
    if in_shape[1:] == (spec.height, spec.width, 3):
        layout = "nhwc"
    elif in_shape[1:] == (3, spec.height, spec.width):
        layout = "nchw"
    else:
        raise TfliteConversionError(f"TFLite input shape {in_shape} fits neither NCHW nor NHWC {spec.width}x{spec.height}")
    matches = _match_outputs(onnx_file, raw, face_nchw, layout == "nhwc")
    outputs = []
    for out in meta.outputs:
        index, out_layout = matches[out.name]
        per_sample = tuple(int(d) for d in graph.tensors[graph.outputs[index]].shape[1:])
        outputs.append(dataclasses.replace(out, shape=per_sample,
                                           layout=out_layout if out_layout != "flat" else out.layout))
    new_meta = meta.replace(input=dataclasses.replace(spec, layout=layout), outputs=tuple(outputs)).validate()

    def rename(model_obj) -> None:
        g = model_obj.subgraphs[0]
        g.tensors[g.inputs[0]].name = spec.name
        for out in meta.outputs:  # onnx2tf calls them e.g. 'PartitionedCall:0'
            g.tensors[g.outputs[matches[out.name][0]]].name = out.name

    def recheck(data: bytes) -> None:  # the file as written, matched once more
        if _match_outputs(onnx_file, data, face_nchw, layout == "nhwc") != matches:
            raise TfliteConversionError(f"the re-packed TFLite file no longer matches {onnx_file.name}")

    rewrite_tflite(raw, target, rename, new_meta, check=recheck)
    return new_meta


# ------------------------------------------------------------------------ litert-torch
def run_litert_torch(module, meta: ModelMetadata, workdir: Path) -> dict[str, Path]:
    """torch module → FP32 TFLite (litert-torch, batch 1) and its FP16-weight copy (ai-edge-quantizer)."""
    import torch

    workdir.mkdir(parents=True, exist_ok=True)
    produced = {"fp32": workdir / "model_float32.tflite", "fp16": workdir / "model_float16.tflite"}
    spec = meta.input
    shape = (1, 3, spec.height, spec.width) if spec.layout == "nchw" else (1, spec.height, spec.width, 3)
    saved = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    try:
        import litert_torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            edge = litert_torch.convert(module.eval(), (torch.zeros(shape, dtype=torch.float32),))
        edge.export(str(produced["fp32"]))
    except Exception as exc:
        raise TfliteConversionError(f"litert-torch could not convert the model: {type(exc).__name__}: {exc}") from None
    finally:
        if saved is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = saved
    fp16_weights(produced["fp32"], produced["fp16"])
    return produced


def fp16_weights(fp32_file: Path, out_file: Path) -> None:
    """FP16 weights + DEQUANTIZE ops (compute stays float32): what TFLite calls float16 quantization."""
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                   algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a size report and progress bars
        result = quantizer.Quantizer(str(fp32_file), manager.get_quantization_recipe()).quantize()
    out_file.write_bytes(bytes(result.quantized_model))


# ------------------------------------------------------------------------------- writer
TFLITE_CONVERTERS = ("auto", "onnx2tf", "litert-torch")


def choose_converter(source, requested: str = "auto") -> str:
    """litert-torch when a torch module is at hand (onnx2tf mis-converts some graphs, see the module
    docstring), onnx2tf for ONNX-only models."""
    if requested not in TFLITE_CONVERTERS:
        raise TfliteConversionError(f"unknown TFLite converter {requested!r}; choose from {TFLITE_CONVERTERS}")
    if requested == "litert-torch" and source.torch_module is None:
        raise TfliteConversionError("litert-torch converts torch models; this source is an ONNX file (use onnx2tf)")
    if requested != "auto":
        return requested
    if source.torch_module is not None:
        try:
            import litert_torch  # noqa: F401
        except ImportError:
            log.warning("litert-torch is not installed; converting to TFLite with onnx2tf")
            return "onnx2tf"
        return "litert-torch"
    return "onnx2tf"


def float_files(source, onnx_path: Path, converter: str) -> dict[str, Path]:
    """One conversion per source and converter gives both precisions; the second writer reuses it."""
    workdir = Path(source.workdir) / f"{converter}-{onnx_path.stem}"
    produced = {p: workdir / ("out" if converter == "onnx2tf" else "") / f"model{suffix}"
                for p, suffix in _ONNX2TF_SUFFIX.items()}
    stamp = workdir / "source.txt"
    key = f"{onnx_path.resolve()} {onnx_path.stat().st_mtime_ns} {onnx_path.stat().st_size}"
    if all(f.is_file() for f in produced.values()) and stamp.is_file() and stamp.read_text() == key:
        return produced
    if converter == "onnx2tf":
        produced = run_onnx2tf(onnx_path, source.meta, workdir)
    else:
        produced = run_litert_torch(source.torch_module, source.meta, workdir)
    stamp.write_text(key)
    return produced


def write_tflite(source, out_dir: Path, precision: str) -> Path:
    """Writer for ``converters.api``: ``<name>_<precision>.tflite``, output names and layouts checked
    against the source's FP32 ONNX."""
    if precision not in PRECISIONS:
        raise ConversionError(f"TFLite precision must be one of {PRECISIONS}, got {precision!r}")
    onnx_path = ensure_onnx(source)
    try:
        converter = choose_converter(source, getattr(source, "options", {}).get("tflite_converter", "auto"))
        package = "onnx2tf" if converter == "onnx2tf" else "litert-torch"
        meta = with_precision(source.meta, precision, tflite_converter=f"{package} {_version(package)}")
        import onnx

        proto = onnx.load(str(onnx_path), load_external_data=False)
        meta = reconcile_outputs(meta, [({o.name}, tuple(d.dim_value or None for d in o.type.tensor_type.shape.dim))
                                        for o in proto.graph.output])
        files = float_files(source, onnx_path, converter)
        target = output_path(source, out_dir, "tflite", precision)
        finalize_tflite(files[precision], onnx_path, meta, face_nchw(meta), target)
    except TfliteConversionError as exc:
        raise ConversionError(str(exc)) from None
    return target


def face_nchw(meta: ModelMetadata) -> np.ndarray:
    """One real face crop preprocessed for ``meta``, in NCHW (what output matching compares on)."""
    from .verify import real_face_tensors

    return real_face_tensors(meta.replace(input=dataclasses.replace(meta.input, layout="nchw")), 1)


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


__all__ = ["PRECISIONS", "TFLITE_CONVERTERS", "TfliteConversionError", "calibration_sample", "choose_converter",
           "embed_tflite_metadata", "face_nchw", "finalize_tflite", "float_files", "fp16_weights",
           "inline_external_buffers", "restamp_tflite", "rewrite_tflite", "run_litert_torch", "run_onnx2tf",
           "static_batch_onnx", "write_tflite"]
