"""H3R MobileNetV2 (Yu & Tao, TPAMI 2022) in the official checkpoint layout.

The official checkpoint is a plain state dict: ``backbone.features.{0..13}.*`` (MobileNetV2
in the *flat* block layout, see mobilenetv2.py) and ``heatmap_head.head.layers.{0,1,3}.*``.
The light stride-4 trunk defined here is shared with SHR and ``pipnet_light`` so those can
start from the H3R trunk weights and be compared like for like.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdk.metadata import OFFICIAL_CROPS, CropRule, DecoderSpec

from .mobilenetv2 import features_out_channels, mobilenetv2_features
from .registry import ArchSpec, downsampled, register

HEATMAP_STRIDE = 4
# Official checkpoints are converted with the official geometry; edgemark's trainer (and the
# models it fine-tuned, e.g. the bundled default) uses the plain pixel-centre warp of schema 1.
H3R_CROP = OFFICIAL_CROPS["h3r"]
H3R_TRAINING_CROP = CropRule(expand=1.25, side_mode="max_wh_plus1", coordinate_origin="pixel_center")


class FusedMobileNetV2Trunk(nn.Module):
    """MobileNetV2 ``features[0:14]``; the stride-4/8/16 maps resized to stride 4 and concatenated."""

    TAPS = (4, 7, 14)  # feature maps taken after features[:4], [:7], [:14]

    def __init__(self) -> None:
        super().__init__()
        self.features = mobilenetv2_features(self.TAPS[-1], layout="flat")
        self.out_channels = sum(features_out_channels(self.features[:t]) for t in self.TAPS)  # 24+32+96

    def forward(self, x: Tensor) -> Tensor:
        taps = []
        for i, layer in enumerate(self.features, start=1):
            x = layer(x)
            if i in self.TAPS:
                taps.append(x)
        size = taps[0].shape[-2:]
        return torch.cat([taps[0]] + [F.interpolate(t, size=size, mode="bilinear", align_corners=False)
                                      for t in taps[1:]], dim=1)


class ConvHead(nn.Module):
    """1x1 conv (no bias) → BN → ReLU → 1x1 conv, keyed ``layers.{0,1,3}`` like H3R's head."""

    def __init__(self, channels: int, out_channels: int, final_bias: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, out_channels, 1, bias=final_bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class H3R(nn.Module):
    """Returns only the decoded half of H3R's 2L maps: (N, L, H/4, W/4) heat-map logits."""

    def __init__(self, num_points: int) -> None:
        super().__init__()
        self.num_points = num_points
        self.backbone = FusedMobileNetV2Trunk()
        # The ModuleDict only reproduces the official key nesting heatmap_head.head.layers.*.
        self.heatmap_head = nn.ModuleDict({"head": ConvHead(self.backbone.out_channels, 2 * num_points, False)})

    def forward(self, x: Tensor) -> Tensor:
        head = self.heatmap_head["head"].layers
        hidden = head[2](head[1](head[0](self.backbone(x))))
        # view(N, 2, L, H, W)[:, 1] is channels L..2L-1. Only those weights are applied: the other
        # L maps are never decoded, and computing them cost ~20 % of the network's MACs and
        # widened the INT8 output range.
        return F.conv2d(hidden, head[3].weight[self.num_points:])


def heatmap_shapes(num_points: int, input_size: int, **_: Any) -> tuple[tuple[int, ...], ...]:
    side = downsampled(input_size, 2)
    return ((num_points, side, side),)


def _build(num_points: int, input_size: int) -> H3R:
    return H3R(num_points)


def _decoder(num_points: int, meanface: np.ndarray | None, *, topk: int) -> DecoderSpec:
    return DecoderSpec("h3r_topk", {"stride": HEATMAP_STRIDE, "topk": int(topk)})


def _infer(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    last = state_dict.get("heatmap_head.head.layers.3.weight")
    if last is None or last.shape[0] % 2:
        return {}
    return {"num_points": last.shape[0] // 2}


H3R_MOBILENETV2 = register(ArchSpec(
    name="h3r_mobilenetv2",
    builder=_build,
    output_roles=("heatmap",),
    output_shapes=heatmap_shapes,
    decoder=_decoder,
    crop=H3R_CROP,
    training_crop=H3R_TRAINING_CROP,
    default_input_size=128,
    default_num_points=98,
    options={"topk": 9},
    decoder_options=("topk",),
    infer_options=_infer,
    description="H3R MobileNetV2 (official checkpoint layout), stride-4 heat maps, top-k softmax decoding",
))
