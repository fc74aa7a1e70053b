"""MobileNetV2 (width 1.0) written out so official checkpoints load with strict=True.

Two parameter layouts exist in the wild for the same network:

* ``"torchvision"`` — current torchvision nesting: each conv+BN(+ReLU6) is a sub-Sequential,
  so an inverted residual reads ``conv.0.0, conv.0.1, conv.1.0, conv.1.1, conv.2, conv.3``.
  PIPNet's MobileNetV2 checkpoints use it.
* ``"flat"`` — one flat Sequential per block: ``conv.0 … conv.7`` (ReLU6 slots included in the
  numbering). The official H3R checkpoints use it.

Both compute the same function; only the state-dict keys differ.
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

Layout = Literal["torchvision", "flat"]
LAYOUTS: tuple[str, ...] = ("torchvision", "flat")

# (expand ratio t, output channels c, repeats n, first stride s), torchvision's table.
INVERTED_RESIDUAL_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
NUM_FEATURES = 19  # stem + 17 inverted residuals + final 1x1 conv


def _conv_bn(inp: int, oup: int, kernel: int, stride: int, groups: int, relu: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(oup),
    ]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class InvertedResidual(nn.Module):
    """Expand (1x1) → depthwise 3x3 → linear project (1x1), residual when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, layout: Layout = "torchvision") -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown MobileNetV2 layout {layout!r}; expected one of {LAYOUTS}")
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        stages = []
        if expand_ratio != 1:
            stages.append(_conv_bn(inp, hidden, 1, 1, 1, relu=True))
        stages.append(_conv_bn(hidden, hidden, 3, stride, hidden, relu=True))
        project = _conv_bn(hidden, oup, 1, 1, 1, relu=False)
        if layout == "torchvision":
            self.conv = nn.Sequential(*(nn.Sequential(*s) for s in stages), *project)
        else:
            self.conv = nn.Sequential(*(m for s in stages for m in s), *project)
        self.out_channels = oup

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def mobilenetv2_features(num_layers: int = NUM_FEATURES, layout: Layout = "torchvision") -> nn.Sequential:
    """``features[:num_layers]`` of torchvision's MobileNetV2 (no classifier)."""
    if not 1 <= num_layers <= NUM_FEATURES:
        raise ValueError(f"num_layers must be in 1..{NUM_FEATURES}, got {num_layers}")
    layers: list[nn.Module] = [nn.Sequential(*_conv_bn(3, STEM_CHANNELS, 3, 2, 1, relu=True))]
    inp = STEM_CHANNELS
    for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
        for i in range(n):
            layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t, layout))
            inp = c
    layers.append(nn.Sequential(*_conv_bn(inp, LAST_CHANNELS, 1, 1, 1, relu=True)))
    return nn.Sequential(*layers[:num_layers])


def features_out_channels(features: nn.Sequential) -> int:
    """Channels leaving a (possibly truncated) feature stack."""
    last = features[-1]
    if isinstance(last, InvertedResidual):
        return last.out_channels
    return last[0].out_channels


class MobileNetV2(nn.Module):
    """The feature extractor alone, keyed ``features.N.*`` like torchvision."""

    def __init__(self, num_layers: int = NUM_FEATURES, layout: Layout = "torchvision") -> None:
        super().__init__()
        self.features = mobilenetv2_features(num_layers, layout)
        self.out_channels = features_out_channels(self.features)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)
