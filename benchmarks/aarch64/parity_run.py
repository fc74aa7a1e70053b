"""Run every bundled model file of the SDK on real faces and save the landmarks (one .npz per runtime).

Standalone on purpose: it needs only what a runtime install has (``sdk``, numpy, OpenCV and one
runtime), so the same file runs on x86 and inside the emulated arm64 root (``check.sh``).

    python parity_run.py FACES_DIR OUT.npz

FACES_DIR holds ``names.txt``, ``boxes.npy`` (N, 4) and ``images/``; OUT.npz gets one array per
bundled file that this install can run, keyed by file name, plus the machine and versions.
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import cv2
import numpy as np

from sdk import Predictor
from sdk.formats import installed_formats
from sdk.predictor import MODELS_DIR


def bundled_files() -> list[Path]:
    usable = {e for f in installed_formats() for e in f.extensions}
    return sorted(p for p in MODELS_DIR.iterdir() if p.suffix in usable)


def main(faces_dir: str, out: str) -> int:
    root = Path(faces_dir)
    names = (root / "names.txt").read_text().split()
    boxes = np.load(root / "boxes.npy")
    images = [cv2.imread(str(root / "images" / n)) for n in names]
    arrays = {}
    for path in bundled_files():
        predictor = Predictor(path, threads=1)
        arrays[path.name] = np.stack([predictor.predict(im, b[None]).landmarks[0] for im, b in zip(images, boxes)])
        print(f"{path.name}: {len(images)} faces", flush=True)
    info = {"machine": platform.machine(), "python": platform.python_version(),
            "runtimes": [f.runtime for f in installed_formats()], "numpy": np.__version__, "opencv": cv2.__version__}
    np.savez(out, info=np.array(json.dumps(info)), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
