"""Training losses for PIPNet, H3R and SHR (REFERENCE.md §1), in torch.

Targets come from ``training.encoders`` (numpy arrays are accepted and moved to
the prediction's device and dtype). Maps are (N, L, H, W).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .encoders import SHR_TEMPERATURE, SHR_WINDOW

ArrayLike = torch.Tensor | np.ndarray


def _like(x: ArrayLike, ref: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.as_tensor(x, device=ref.device, dtype=ref.dtype if dtype is None else dtype)


def _check_maps(maps: torch.Tensor, name: str) -> tuple[int, int, int, int]:
    if maps.ndim != 4:
        raise ValueError(f"{name} must be (N, L, H, W), got shape {tuple(maps.shape)}")
    return tuple(maps.shape)  # type: ignore[return-value]


def _valid_weights(valid: ArrayLike | None, ref: torch.Tensor) -> torch.Tensor:
    """(N, L) float weights, all ones when no validity mask is given."""
    if valid is None:
        return torch.ones(ref.shape[:2], device=ref.device, dtype=ref.dtype)
    v = _like(valid, ref)
    if v.shape != ref.shape[:2]:
        raise ValueError(f"valid must be {tuple(ref.shape[:2])}, got {tuple(v.shape)}")
    return v


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean that is 0 (not NaN) when nothing is selected, so empty batches stay trainable."""
    total = weights.sum()
    return (values * weights).sum() / torch.where(total > 0, total, torch.ones_like(total))


# --------------------------------------------------------------------------- PIPNet

def pipnet_loss_terms(outputs: Mapping[str, torch.Tensor], targets: Mapping[str, ArrayLike]) -> dict[str, torch.Tensor]:
    """Unweighted terms: ``cls`` = MSE over every cell of labelled maps; ``x, y, nb_x, nb_y`` =
    L1 at the GT cell only (the only place the decoder reads offsets)."""
    cls = outputs["cls"]
    n, l, h, w = _check_maps(cls, "cls")
    valid = _valid_weights(targets.get("valid"), cls)
    cls_w = valid[..., None, None].expand(n, l, h, w)
    terms = {"cls": _masked_mean((cls - _like(targets["cls"], cls)) ** 2, cls_w)}
    mask = _like(targets["mask"], cls)
    nb_mask = _like(targets["nb_mask"], cls) if "nb_mask" in targets else None
    for key, out_key, m in (("x", "offset_x", mask), ("y", "offset_y", mask), ("nb_x", "nb_x", nb_mask),
                            ("nb_y", "nb_y", nb_mask)):
        pred = outputs[out_key]
        if m is None:  # no per-neighbour mask: every slot of landmark j at j's GT cell
            m = mask.repeat_interleave(pred.shape[1] // l, dim=1)
        if pred.shape != m.shape:
            raise ValueError(f"{out_key} shape {tuple(pred.shape)} != target shape {tuple(m.shape)}")
        terms[key] = _masked_mean((pred - _like(targets[out_key], pred)).abs(), m)
    return terms


def pipnet_loss(outputs: Mapping[str, torch.Tensor], targets: Mapping[str, ArrayLike], *, cls_weight: float = 10.0,
                reg_weight: float = 1.0) -> torch.Tensor:
    """PIPNet: ``cls_weight`` × MSE(score maps) + ``reg_weight`` × (L1 x + y + nb_x + nb_y at the GT cell).

    ``outputs`` keys: cls, offset_x, offset_y, nb_x, nb_y (raw head outputs, no sigmoid);
    ``targets`` from ``encode_pipnet``.
    """
    t = pipnet_loss_terms(outputs, targets)
    return cls_weight * t["cls"] + reg_weight * (t["x"] + t["y"] + t["nb_x"] + t["nb_y"])


# --------------------------------------------------------------------------- H3R

def h3r_loss(logits: torch.Tensor, target: ArrayLike, valid: ArrayLike | None = None) -> torch.Tensor:
    """Spatial softmax cross-entropy over each map's H·W cells, mean over labelled maps.

    CE is linear in the target, so over random draws the expected loss is the CE
    against ``h3r_expected_map``; its minimum is softmax(logits) = that map, i.e.
    logits = log(expected map) + const — what ``decode_h3r_topk`` reads. Soft targets
    (e.g. the expected map itself) are accepted. For the official two-channel head
    (N, 2, L, H, W) pass ``logits[:, 1]``.
    """
    n, l, h, w = _check_maps(logits, "logits")
    tgt = _like(target, logits)
    if tgt.shape != logits.shape:
        raise ValueError(f"target shape {tuple(tgt.shape)} != logits shape {tuple(logits.shape)}")
    logp = F.log_softmax(logits.reshape(n, l, h * w), dim=2)
    ce = -(tgt.reshape(n, l, h * w) * logp).sum(dim=2)
    return _masked_mean(ce, _valid_weights(valid, logits))


# --------------------------------------------------------------------------- SHR

def shr_heatmap_loss(pred: torch.Tensor, target: ArrayLike, valid: ArrayLike | None = None) -> torch.Tensor:
    """Pixel-wise MSE against the continuous Gaussian target (linear output, no sigmoid).

    MSE rather than BCE-with-logits: the decoder's temperature is calibrated on the
    raw Gaussian values (peak 1), which MSE makes the network output directly; BCE
    would make the outputs unbounded logits (logit(0) = −inf in the tails) that the
    decoder would have to squash first, and a sigmoid output quantized to INT8 gets
    a fixed 1/256 step that erases the sub-pixel detail (REFERENCE.md §3).
    """
    n, l, h, w = _check_maps(pred, "pred")
    tgt = _like(target, pred)
    if tgt.shape != pred.shape:
        raise ValueError(f"target shape {tuple(tgt.shape)} != pred shape {tuple(pred.shape)}")
    weights = _valid_weights(valid, pred)[..., None, None].expand(n, l, h, w)
    return _masked_mean((pred - tgt) ** 2, weights)


def local_softargmax(heatmaps: torch.Tensor, *, window: int = SHR_WINDOW,
                     temperature: float = SHR_TEMPERATURE) -> torch.Tensor:
    """Differentiable twin of ``decode_shr_local_softargmax``: (N, L, 2) (column, row) in map cells.

    The argmax cell is picked without gradient; gradients flow through the window's
    softmax weights. Window cells outside the map get zero weight, as in the decoder.
    """
    n, l, h, w = _check_maps(heatmaps, "heatmaps")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    flat = heatmaps.reshape(n, l, h * w)
    idx = flat.detach().argmax(dim=2)
    rows, cols = idx // w, idx % w
    half = window // 2
    offs = torch.arange(-half, half + 1, device=heatmaps.device)
    rr = rows[..., None, None] + offs[:, None]                        # (N, L, d, 1)
    cc = cols[..., None, None] + offs[None, :]                        # (N, L, 1, d)
    inside = ((rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)).reshape(n, l, -1)
    lin = (rr.clamp(0, h - 1) * w + cc.clamp(0, w - 1)).reshape(n, l, -1)
    vals = flat.gather(2, lin) / temperature
    weights = torch.softmax(vals.masked_fill(~inside, float("-inf")), dim=2).reshape(n, l, window, window)
    offs_f = offs.to(heatmaps.dtype)
    dx = (weights * offs_f[None, :]).sum(dim=(2, 3))
    dy = (weights * offs_f[:, None]).sum(dim=(2, 3))
    return torch.stack([cols.to(heatmaps.dtype) + dx, rows.to(heatmaps.dtype) + dy], dim=-1)


def apply_affine(points: torch.Tensor, affine: ArrayLike) -> torch.Tensor:
    """Map (N, L, 2) points with 2×3 matrices ((2, 3) shared or (N, 2, 3) per sample)."""
    a = _like(affine, points)
    if a.shape[-2:] != (2, 3) or a.ndim not in (2, 3):
        raise ValueError(f"affine must be (2, 3) or (N, 2, 3), got {tuple(a.shape)}")
    if a.ndim == 2:
        a = a.expand(points.shape[0], 2, 3)
    return points @ a[:, :, :2].transpose(1, 2) + a[:, None, :, 2]


def shr_consistency_loss(heatmaps_a: torch.Tensor, heatmaps_b: torch.Tensor, affine_b_to_a: ArrayLike, *,
                         stride: float, window: int = SHR_WINDOW, temperature: float = SHR_TEMPERATURE,
                         permutation: ArrayLike | None = None, valid: ArrayLike | None = None) -> torch.Tensor:
    """Siamese consistency: decode both batches, map the copy's points back, mean L1 in map cells.

    ``heatmaps_b`` are the predictions on a geometrically transformed copy of the
    images of ``heatmaps_a``. ``affine_b_to_a`` ((2, 3) or (N, 2, 3)) maps copy
    coordinates to original coordinates, both in network-input pixels as the
    decoders report them (``stride * (column, row)``, no +0.5). ``permutation``
    ((L,) or (N, L), for flips): original landmark i is the copy's landmark
    ``permutation[i]``. ``valid`` (N, L) masks points hidden in either view.
    Gradients reach both branches. Divided by ``stride`` so the weight does not
    depend on the input size.
    """
    if heatmaps_a.shape != heatmaps_b.shape:
        raise ValueError(f"heat-map batches differ: {tuple(heatmaps_a.shape)} vs {tuple(heatmaps_b.shape)}")
    pa = local_softargmax(heatmaps_a, window=window, temperature=temperature) * stride
    pb = apply_affine(local_softargmax(heatmaps_b, window=window, temperature=temperature) * stride, affine_b_to_a)
    if permutation is not None:
        perm = torch.as_tensor(permutation, device=pb.device, dtype=torch.long)
        perm = perm.expand(pb.shape[0], -1) if perm.ndim == 1 else perm
        pb = pb.gather(1, perm[..., None].expand(-1, -1, 2))
    err = (pa - pb).abs().sum(dim=2) / (2.0 * stride)
    return _masked_mean(err, _valid_weights(valid, heatmaps_a))


__all__ = ["apply_affine", "h3r_loss", "local_softargmax", "pipnet_loss", "pipnet_loss_terms",
           "shr_consistency_loss", "shr_heatmap_loss"]
