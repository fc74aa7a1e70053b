"""One objective per encoding: points → targets (``training.encoders``) → loss (``training.losses``).

The objective is chosen from the architecture's decoder, so a model is always trained for
the decoder that will read it: ``h3r_topk`` → randomized-rounding one-hot maps + spatial
softmax CE; ``shr_local_softargmax`` → continuous Gaussians + MSE; ``pipnet`` → cell
one-hot + in-cell and neighbour offsets.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from sdk.decoders import pipnet_neighbour_tables
from sdk.metadata import ModelMetadata

from .encoders import SHR_SIGMA, encode_h3r, encode_pipnet, encode_shr
from .losses import h3r_loss, pipnet_loss_terms, shr_heatmap_loss


def outputs_dict(outputs: torch.Tensor | Sequence[torch.Tensor], roles: Sequence[str]) -> dict[str, torch.Tensor]:
    """Model forward result → {role: tensor} in the architecture's output order."""
    outs = (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)
    if len(outs) != len(roles):
        raise ValueError(f"model returned {len(outs)} outputs for roles {list(roles)}")
    return dict(zip(roles, outs))


class Objective:
    """``loss(outputs by role, points (N, L, 2) model coordinates, rng) -> (loss, terms)``."""

    def __init__(self, meta: ModelMetadata, options: Mapping[str, Any] | None = None) -> None:
        self.meta = meta
        self.options = dict(options or {})
        self.stride = float(meta.decoder.params["stride"])

    def _map_size(self, outputs: Mapping[str, torch.Tensor], role: str) -> tuple[int, int]:
        return tuple(outputs[role].shape[-2:])  # type: ignore[return-value]

    def loss(self, outputs: Mapping[str, torch.Tensor], points: np.ndarray,
             rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError


class H3RObjective(Objective):
    def loss(self, outputs, points, rng):
        logits = outputs["heatmap"]
        maps, valid = encode_h3r(points, self._map_size(outputs, "heatmap"), self.stride, rng)
        value = h3r_loss(logits, maps, valid)
        return value, {"ce": float(value.detach())}


class SHRObjective(Objective):
    def loss(self, outputs, points, rng):
        pred = outputs["heatmap"]
        sigma = float(self.options.get("sigma", SHR_SIGMA))
        target = encode_shr(points, self._map_size(outputs, "heatmap"), self.stride, sigma)
        valid = np.isfinite(points).all(axis=2)
        # Scaled so the numbers in the log are readable; Adam is invariant to the scale.
        value = float(self.options.get("loss_scale", 100.0)) * shr_heatmap_loss(pred, target, valid)
        return value, {"mse": float(value.detach())}


class PIPNetObjective(Objective):
    def __init__(self, meta: ModelMetadata, options: Mapping[str, Any] | None = None,
                 meanface: np.ndarray | None = None) -> None:
        super().__init__(meta, options)
        if meanface is None:
            raise ValueError("PIPNet training needs the mean face of the training landmarks")
        nb = int(meta.decoder.params["num_neighbours"])
        self.neighbours = np.asarray(pipnet_neighbour_tables(meanface, nb)[0], dtype=np.int64)
        self.cls_weight = float(self.options.get("cls_weight", 10.0))
        self.reg_weight = float(self.options.get("reg_weight", 1.0))

    def loss(self, outputs, points, rng):
        targets = encode_pipnet(points, self._map_size(outputs, "cls"), self.stride, self.neighbours)
        renamed = {"cls": outputs["cls"], "offset_x": outputs["offset_x"], "offset_y": outputs["offset_y"],
                   "nb_x": outputs["nb_x"], "nb_y": outputs["nb_y"]}
        t = pipnet_loss_terms(renamed, targets)
        value = self.cls_weight * t["cls"] + self.reg_weight * (t["x"] + t["y"] + t["nb_x"] + t["nb_y"])
        return value, {k: float(v.detach()) for k, v in t.items()}


def make_objective(meta: ModelMetadata, options: Mapping[str, Any] | None = None,
                   meanface: np.ndarray | None = None) -> Objective:
    name = meta.decoder.name
    if name == "h3r_topk":
        return H3RObjective(meta, options)
    if name == "shr_local_softargmax":
        return SHRObjective(meta, options)
    if name == "pipnet":
        return PIPNetObjective(meta, options, meanface)
    raise ValueError(f"no training objective for decoder {name!r} (known: h3r_topk, shr_local_softargmax, pipnet)")


__all__ = ["H3RObjective", "Objective", "PIPNetObjective", "SHRObjective", "make_objective", "outputs_dict"]
