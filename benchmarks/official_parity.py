"""Parity of edgemark with the official H3R and PIPNet pipelines, face by face.

The *reference* side re-creates each official pipeline from its published conventions with
the tools it used — PIL crop + PIL bilinear resize for H3R, slicing + ``cv2.resize`` for PIPNet,
torch for the network, the decoding and mapping-back formulas of REFERENCE.md §1 — and shares
no geometry code with ``sdk`` (which uses its own numpy resampler and crop rules). The edgemark
side is the converted file through ``sdk.Predictor``. Reported: NME of each on both label sets
and the mean landmark difference per face.

``python -m benchmarks.official_parity h3r --sizes 128 160 256 --out benchmarks/results/official_parity.json``
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from converters.api import convert, load_source
from landmarkdata.datasets import LABEL_SETS, LandmarkDataset, load_aflw2000_3d
from landmarkdata.evaluate import predict_dataset, score_predictions
from landmarkdata.paths import shared_root
from sdk.atomic import write_text
from sdk.predictor import Predictor

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _to_tensor(rgb_crops: Sequence[np.ndarray]) -> torch.Tensor:
    arr = (np.stack(rgb_crops).astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(arr.transpose(0, 3, 1, 2).copy())


# ----------------------------------------------------------------------------------------- H3R
def h3r_official_crop(image_bgr: np.ndarray, box: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """PIL crop of the square max(w+1, h+1) x 1.25 box about ((x1+x2+1)/2, (y1+y2+1)/2), PIL bilinear resize.

    Returns the RGB crop and (left, top, side) of the float box the points are mapped back with.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1 + 1, y2 - y1 + 1) * 1.25
    left = (x1 + x2 + 1) / 2 - side / 2
    top = (y1 + y2 + 1) / 2 - side / 2
    pil = Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1]))
    crop = pil.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(crop), left, top, side


def h3r_decode(heatmaps: torch.Tensor, topk: int = 9, stride: int = 4) -> torch.Tensor:
    """(N, L, H, W) → (N, L, 2) input coordinates: softmax over each map's top-k, weighted index mean × stride."""
    n, l, h, w = heatmaps.shape
    scores, index = heatmaps.reshape(n, l, h * w).topk(topk, dim=-1)
    weights = torch.softmax(scores, dim=-1)
    cols = (index % w).to(weights.dtype)
    rows = torch.div(index, w, rounding_mode="floor").to(weights.dtype)
    return torch.stack([(weights * cols).sum(-1), (weights * rows).sum(-1)], dim=-1) * stride


def h3r_official_predict(module: torch.nn.Module, data: LandmarkDataset, size: int, batch: int = 32) -> np.ndarray:
    """The official H3R pipeline on every face (no flip): x = u * s / S + left."""
    out = []
    for start in tqdm(range(0, len(data), batch), desc=f"official H3R {size}", leave=False):
        idx = range(start, min(start + batch, len(data)))
        crops, frames = [], []
        for i in idx:
            crop, left, top, side = h3r_official_crop(data.load_image(i), data.boxes[i], size)
            crops.append(crop)
            frames.append((left, top, side))
        with torch.no_grad():
            u = h3r_decode(module(_to_tensor(crops))).double().numpy()
        f = np.array(frames, dtype=np.float64)
        pts = u * (f[:, 2] / size)[:, None, None] + f[:, None, :2]
        out.append(pts.astype(np.float32))
    return np.concatenate(out)


# -------------------------------------------------------------------------------------- PIPNet
def pipnet_official_crop(image_bgr: np.ndarray, box: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float, float]:
    """PIPNet's test crop: box x 1.2 per axis, clipped to [0, W-1], int() slicing, cv2.resize (RGB out)."""
    ih, iw = image_bgr.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    xmin, ymin, xmax, ymax = x1 - 0.1 * w, y1 - 0.1 * h, x2 + 0.1 * w, y2 + 0.1 * h
    xmin, ymin = max(xmin, 0.0), max(ymin, 0.0)
    xmax, ymax = min(xmax, iw - 1.0), min(ymax, ih - 1.0)
    crop = image_bgr[int(ymin):int(ymax), int(xmin):int(xmax)]
    crop = cv2.resize(crop, (size, size))
    return crop[:, :, ::-1], xmin, ymin, xmax - xmin, ymax - ymin


def pipnet_official_decode(outputs: Sequence[torch.Tensor], reverse1: np.ndarray, reverse2: np.ndarray,
                           num_neighbours: int) -> torch.Tensor:
    """Argmax cell + offsets per landmark, merged with its reverse neighbours' votes → (N, L, 2) in [0, 1)."""
    cls, off_x, off_y, nb_x, nb_y = outputs
    n, l, h, w = cls.shape
    k = cls.reshape(n, l, h * w).argmax(-1)                                            # (N, L)
    col, row = (k % w).to(cls.dtype), torch.div(k, w, rounding_mode="floor").to(cls.dtype)

    def at(t: torch.Tensor, m: int) -> torch.Tensor:                                  # value at each own cell
        return t.reshape(n, l, m, h * w).gather(-1, k[:, :, None, None].expand(n, l, m, 1))[..., 0]

    x = (col + at(off_x, 1)[..., 0]) / w
    y = (row + at(off_y, 1)[..., 0]) / h
    nbx = (col[..., None] + at(nb_x, num_neighbours)) / w                              # (N, L, nb)
    nby = (row[..., None] + at(nb_y, num_neighbours)) / h
    votes_x = nbx[:, reverse1, reverse2].reshape(n, l, -1)
    votes_y = nby[:, reverse1, reverse2].reshape(n, l, -1)
    mx = torch.cat([x[..., None], votes_x], -1).mean(-1)
    my = torch.cat([y[..., None], votes_y], -1).mean(-1)
    return torch.stack([mx, my], -1)


def reverse_neighbour_index(meanface: np.ndarray, num_neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """PIPNet's reverse lists from the mean face (REFERENCE.md §1), padded cyclically, flattened."""
    pts = np.asarray(meanface, dtype=np.float64).reshape(-1, 2)
    l = len(pts)
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    neighbours = [list(np.argsort(dist[i], kind="stable")[1:num_neighbours + 1]) for i in range(l)]
    reverse: list[list[tuple[int, int]]] = [[] for _ in range(l)]
    for j in range(l):
        for slot, i in enumerate(neighbours[j]):
            reverse[i].append((j, slot))
    longest = max(len(r) for r in reverse)
    padded = [[r[t % len(r)] for t in range(longest)] for r in reverse]
    r1 = np.array([[p[0] for p in row] for row in padded]).reshape(-1)
    r2 = np.array([[p[1] for p in row] for row in padded]).reshape(-1)
    return r1, r2


def pipnet_official_predict(module: torch.nn.Module, data: LandmarkDataset, size: int, meanface: np.ndarray,
                            num_neighbours: int, batch: int = 16) -> np.ndarray:
    r1, r2 = reverse_neighbour_index(meanface, num_neighbours)
    out = []
    for start in range(0, len(data), batch):
        idx = range(start, min(start + batch, len(data)))
        crops, frames = [], []
        for i in idx:
            crop, xmin, ymin, width, height = pipnet_official_crop(data.load_image(i), data.boxes[i], size)
            crops.append(crop)
            frames.append((xmin, ymin, width, height))
        with torch.no_grad():
            p = pipnet_official_decode(module(_to_tensor(crops)), r1, r2, num_neighbours).double().numpy()
        f = np.array(frames, dtype=np.float64)
        out.append((f[:, None, :2] + p * f[:, None, 2:]).astype(np.float32))
    return np.concatenate(out)


# ------------------------------------------------------------------------------------ the table
def per_face_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean point-to-point distance (px) per face."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1).mean(-1)


def h3r_parity(size: int, workdir: Path, limit: int | None = None, threads: int | None = None) -> dict[str, Any]:
    ckpt = shared_root() / "weights" / "h3r" / f"wflw_mobilenetv2_{size}" / "model.pth"
    source = load_source(ckpt, arch="h3r_mobilenetv2", input_size=size)
    with source:
        (result,) = convert(source, ["onnx"], workdir, verify=False)
        module = source.torch_module
        row: dict[str, Any] = {"model": f"H3R-{size}", "file": result.path.name,
                               "crop": source.meta.crop.__dict__}
        predictor = Predictor(result.path, threads=threads)
        for labels in LABEL_SETS:
            data = load_aflw2000_3d(labels=labels, limit=limit)
            ref = h3r_official_predict(module, data, size)
            ours = predict_dataset(predictor, data, desc=f"edgemark H3R {size}")
            scheme = predictor.metadata.scheme.name
            diff = per_face_difference(ours, ref)
            row[labels] = {"official_nme": score_predictions(ref, data, scheme)["nme"],
                           "edgemark_nme": score_predictions(ours, data, scheme)["nme"],
                           "mean_diff_px": float(diff.mean()), "max_face_diff_px": float(diff.max()),
                           "faces": len(data)}
    return row


def pipnet_layout_checkpoint(path: Path, calibration: LandmarkDataset, size: int = 256, seed: int = 0) -> Path:
    """An official-layout PIPNet ResNet-18 (stride 32, WFLW 98, nb 10) with random weights whose
    BatchNorm statistics come from real crops, saved as a plain state dict like ``epoch59.pth``.

    Random heads with the official N(0, 0.001) init give nearly flat score maps, where a 1e-6
    runtime difference can move an argmax; heads drawn at 0.05 and real-crop statistics give maps
    whose best cells are well separated, so parity measures the geometry, not tie-breaking.
    """
    from converters.architectures import get_arch

    torch.manual_seed(seed)
    model = get_arch("pipnet_resnet18").build(98, size, num_neighbours=10, net_stride=32)
    for name in ("cls_layer", "x_layer", "y_layer", "nb_x_layer", "nb_y_layer"):
        torch.nn.init.normal_(getattr(model, name).weight, std=0.05)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration crops
    crops = [pipnet_official_crop(calibration.load_image(i), calibration.boxes[i], size)[0]
             for i in range(len(calibration))]
    model.train()
    with torch.no_grad():
        for start in range(0, len(crops), 8):
            model(_to_tensor(crops[start:start + 8]))
    model.eval()
    torch.save(model.state_dict(), path)
    return path


def pipnet_parity(workdir: Path, faces: int = 50, threads: int | None = None) -> dict[str, Any]:
    """Official-layout checkpoint → ``edgemark convert`` → Predictor vs the official PIPNet pipeline."""
    from converters.architectures import load_meanface
    from landmarkdata.datasets import load_aflw_faces

    meanface_file = shared_root() / "weights" / "pipnet-meanface" / "WFLW.txt"
    ckpt = pipnet_layout_checkpoint(workdir / "epoch59.pth", load_aflw_faces(limit=32))
    source = load_source(ckpt, arch="pipnet_resnet18", meanface=meanface_file)
    with source:
        (result,) = convert(source, ["onnx"], workdir, verify=False)
        module = source.torch_module
    data = load_aflw2000_3d(limit=faces)
    ref = pipnet_official_predict(module, data, 256, load_meanface(meanface_file), 10)
    predictor = Predictor(result.path, threads=threads)
    ours = predict_dataset(predictor, data, progress=False)
    diff = per_face_difference(ours, ref)
    # the same file read with schema 1's square rule, for comparison
    from converters.architectures.pipnet import PIPNET_TRAINING_CROP
    from sdk.backends import open_backend

    square = Predictor(open_backend(result.path, metadata=predictor.metadata.replace(crop=PIPNET_TRAINING_CROP)))
    old = per_face_difference(predict_dataset(square, data, progress=False), ref)
    return {"model": "PIPNet-R18 official layout (random weights, real BN statistics)", "faces": len(data),
            "mean_diff_px": float(diff.mean()), "max_face_diff_px": float(diff.max()),
            "max_point_diff_px": float(np.linalg.norm(ours - ref, axis=-1).max()),
            "square_rule_mean_diff_px": float(old.mean())}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("family", choices=["h3r", "pipnet"], help="official pipeline to compare with")
    p.add_argument("--faces", type=int, default=200, help="PIPNet: faces compared")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 256])
    p.add_argument("--limit", type=int, help="first N faces only")
    p.add_argument("--threads", type=int)
    p.add_argument("--out", help="JSON results file")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.family == "pipnet":
            row = pipnet_parity(Path(tmp), args.faces, args.threads)
            print(json.dumps(row))
            if args.out:
                write_text(args.out, json.dumps(row, indent=1) + "\n")
            return 0
        for size in args.sizes:
            row = h3r_parity(size, Path(tmp), args.limit, args.threads)
            rows.append(row)
            for labels in LABEL_SETS:
                r = row[labels]
                print(f"{row['model']} {labels}: official {r['official_nme']:.3f} edgemark {r['edgemark_nme']:.3f} "
                      f"mean diff {r['mean_diff_px']:.4f} px (worst face {r['max_face_diff_px']:.3f})", flush=True)
    if args.out:
        write_text(args.out, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
