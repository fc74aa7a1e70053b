"""SHR heat-map model (Bulat et al., BMVC 2021 decoding) on the light H3R trunk — our own design.

No official code exists. The trunk and head nesting match H3R's key names
(``backbone.features.*``, ``heatmap_head.head.layers.*``) so the H3R checkpoint's trunk
and first head layers can initialise it; the last conv has L outputs and a bias.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from torch import Tensor, nn

from sdk.metadata import DecoderSpec
from sdk.decoders.heatmap import SHR_TEMPERATURE, SHR_WINDOW

from .h3r import H3R_TRAINING_CROP, HEATMAP_STRIDE, ConvHead, FusedMobileNetV2Trunk, heatmap_shapes
from .registry import ArchSpec, register


class SHR(nn.Module):
    """(N, L, H/4, W/4) heat-map logits (no sigmoid)."""

    def __init__(self, num_points: int) -> None:
        super().__init__()
        self.num_points = num_points
        self.backbone = FusedMobileNetV2Trunk()
        self.heatmap_head = nn.ModuleDict({"head": ConvHead(self.backbone.out_channels, num_points, True)})

    def forward(self, x: Tensor) -> Tensor:
        return self.heatmap_head["head"](self.backbone(x))


def _build(num_points: int, input_size: int) -> SHR:
    return SHR(num_points)


def _decoder(num_points: int, meanface: np.ndarray | None, *, window: int, temperature: float) -> DecoderSpec:
    return DecoderSpec("shr_local_softargmax",
                       {"stride": HEATMAP_STRIDE, "window": int(window), "temperature": float(temperature)})


def _infer(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    last = state_dict.get("heatmap_head.head.layers.3.weight")
    return {} if last is None else {"num_points": last.shape[0]}


SHR_MOBILENETV2 = register(ArchSpec(
    name="shr_mobilenetv2",
    builder=_build,
    output_roles=("heatmap",),
    output_shapes=heatmap_shapes,
    decoder=_decoder,
    crop=H3R_TRAINING_CROP,  # edgemark's own method: no official code, its trainer's rule
    default_input_size=128,
    default_num_points=98,
    options={"window": SHR_WINDOW, "temperature": SHR_TEMPERATURE},  # the SHR decoder's defaults (sdk.decoders)
    decoder_options=("window", "temperature"),
    infer_options=_infer,
    description="SHR on the light H3R trunk: stride-4 heat maps, local soft-argmax decoding",
))
