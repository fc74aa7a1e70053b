"""PIPNet (Jin et al., IJCV 2021) in the official checkpoint layout, plus a light variant.

Official keys: the trunk's torchvision names at the top level (``conv1, bn1, layer1..4`` or
``features.*``), optional extra stages (stride 16: ``deconv1/bn_deconv1``; 64: ``layer5/bn5``;
128: ``layer5/bn5`` + ``layer6/bn6``, each followed by ReLU) and five 1x1 heads with bias:
``cls_layer, x_layer, y_layer, nb_x_layer, nb_y_layer``. Forward returns their raw outputs.

The extra stages always output 512 channels and the heads read whatever the last stage
gives. For ResNet-18 this is exactly the official network; the official ResNet-50/101 code
declares 2048-channel heads behind 512-channel extra stages (it cannot run at strides 64/128),
so only their stride-32 checkpoints exist.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from sdk.decoders import pipnet_neighbour_tables
from sdk.metadata import OFFICIAL_CROPS, CropRule, DecoderSpec

from .h3r import FusedMobileNetV2Trunk
from .mobilenetv2 import MobileNetV2
from .registry import ArchSpec, downsampled, register
from .resnet import ResNet

HEAD_NAMES = ("cls_layer", "x_layer", "y_layer", "nb_x_layer", "nb_y_layer")
OUTPUT_ROLES = ("cls", "offset_x", "offset_y", "nb_x", "nb_y")
NET_STRIDES = (16, 32, 64, 128)
EXTRA_CHANNELS = 512
# Official layouts convert with the official (per-axis, clipped, truncated) crop; edgemark's
# trainer and its own pipnet_light use a square plain warp.
PIPNET_CROP = OFFICIAL_CROPS["pipnet"]
PIPNET_TRAINING_CROP = CropRule(expand=1.2, side_mode="max_wh", coordinate_origin="pixel_corner")
LIGHT_STRIDE = 8


def _init_small(conv: nn.Conv2d | nn.ConvTranspose2d) -> None:
    """Official initialisation of the layers PIPNet adds (N(0, 0.001), zero bias)."""
    nn.init.normal_(conv.weight, std=0.001)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _attach_heads(module: nn.Module, channels: int, num_points: int, num_neighbours: int) -> None:
    if num_neighbours < 1:
        raise ValueError(f"num_neighbours must be >= 1, got {num_neighbours}")
    module.num_points = num_points
    module.num_neighbours = num_neighbours
    sizes = (num_points, num_points, num_points, num_points * num_neighbours, num_points * num_neighbours)
    for name, out in zip(HEAD_NAMES, sizes):
        conv = nn.Conv2d(channels, out, 1)
        _init_small(conv)
        module.add_module(name, conv)


def _run_heads(module: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return tuple(getattr(module, name)(x) for name in HEAD_NAMES)  # type: ignore[return-value]


class PIPNetResNet(ResNet):
    """ResNet trunk (top-level torchvision names) + optional extra stage(s) + the five heads."""

    def __init__(self, depth: int, num_points: int, num_neighbours: int = 10, net_stride: int = 32) -> None:
        if net_stride not in NET_STRIDES:
            raise ValueError(f"net_stride must be one of {NET_STRIDES}, got {net_stride}")
        super().__init__(depth)
        self.net_stride = net_stride
        channels = self.out_channels
        self._extra: list[tuple[str, str]] = []
        if net_stride == 16:
            self._add_extra("deconv1", "bn_deconv1", nn.ConvTranspose2d(channels, EXTRA_CHANNELS, 4, 2, 1, bias=False))
        if net_stride >= 64:
            self._add_extra("layer5", "bn5", nn.Conv2d(channels, EXTRA_CHANNELS, 3, 2, 1))
        if net_stride == 128:
            self._add_extra("layer6", "bn6", nn.Conv2d(EXTRA_CHANNELS, EXTRA_CHANNELS, 3, 2, 1))
        _attach_heads(self, channels if net_stride == 32 else EXTRA_CHANNELS, num_points, num_neighbours)

    def _add_extra(self, conv_name: str, bn_name: str, conv: nn.Conv2d | nn.ConvTranspose2d) -> None:
        _init_small(conv)
        self.add_module(conv_name, conv)
        self.add_module(bn_name, nn.BatchNorm2d(conv.out_channels))
        self._extra.append((conv_name, bn_name))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        x = self.forward_features(x)
        for conv_name, bn_name in self._extra:
            x = F.relu(getattr(self, bn_name)(getattr(self, conv_name)(x)))
        return _run_heads(self, x)


class PIPNetMobileNetV2(MobileNetV2):
    """Whole torchvision MobileNetV2 ``features.*`` (to the 1280-channel conv) + the five heads; stride 32."""

    def __init__(self, num_points: int, num_neighbours: int = 10) -> None:
        super().__init__(layout="torchvision")
        _attach_heads(self, self.out_channels, num_points, num_neighbours)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return _run_heads(self, self.features(x))


class PIPNetLight(nn.Module):
    """The five heads on the light H3R trunk taken to stride 8 — for like-for-like training comparisons."""

    def __init__(self, num_points: int, num_neighbours: int = 10) -> None:
        super().__init__()
        self.backbone = FusedMobileNetV2Trunk()
        channels = self.backbone.out_channels
        self.downsample = nn.Sequential(nn.Conv2d(channels, channels, 3, 2, 1, bias=False),
                                        nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        _attach_heads(self, channels, num_points, num_neighbours)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return _run_heads(self, self.downsample(self.backbone(x)))


# --- registry glue ----------------------------------------------------------------------------
def _map_side(input_size: int, net_stride: int) -> int:
    """Side of PIPNet's output grid: stride-32 trunk, then ×2 (deconv) or ½ per extra stage."""
    side = downsampled(input_size, 5)
    if net_stride == 16:
        return 2 * side
    return downsampled(side, {32: 0, 64: 1, 128: 2}[net_stride])


def _shapes(num_points: int, side: int, num_neighbours: int) -> tuple[tuple[int, ...], ...]:
    one, many = (num_points, side, side), (num_points * num_neighbours, side, side)
    return one, one, one, many, many


def _decoder_for(name: str, fixed_stride: int | None = None) -> Callable[..., DecoderSpec]:
    """Decoder factory; ``fixed_stride`` for variants whose stride is not an option."""

    def make(num_points: int, meanface: np.ndarray | None, *, num_neighbours: int,
             net_stride: int | None = None) -> DecoderSpec:
        stride = fixed_stride if fixed_stride is not None else net_stride
        if meanface is None:
            raise ValueError(f"{name} metadata needs the training mean face (PIPNet decodes with neighbour "
                             "tables built from it): pass meanface=load_meanface('<dataset>.txt')")
        mf = np.asarray(meanface, dtype=np.float64).reshape(-1, 2)
        if mf.shape[0] != num_points:
            raise ValueError(f"{name}: mean face has {mf.shape[0]} points, the model predicts {num_points}")
        _, rev1, rev2 = pipnet_neighbour_tables(mf, int(num_neighbours))
        return DecoderSpec("pipnet", {"stride": int(stride), "num_neighbours": int(num_neighbours),
                                      "reverse_index1": rev1, "reverse_index2": rev2})
    return make


def _infer_heads(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    cls = state_dict.get("cls_layer.weight")
    nb = state_dict.get("nb_x_layer.weight")
    if cls is None or nb is None or nb.shape[0] % cls.shape[0]:
        return {}
    return {"num_points": cls.shape[0], "num_neighbours": nb.shape[0] // cls.shape[0]}


def _infer_resnet(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    found = _infer_heads(state_dict)
    if found:
        found["net_stride"] = (16 if "deconv1.weight" in state_dict else 128 if "layer6.weight" in state_dict
                               else 64 if "layer5.weight" in state_dict else 32)
    return found


def _register_resnet(depth: int) -> ArchSpec:
    name = f"pipnet_resnet{depth}"

    def build(num_points: int, input_size: int, *, num_neighbours: int, net_stride: int) -> PIPNetResNet:
        return PIPNetResNet(depth, num_points, num_neighbours, net_stride)

    def shapes(num_points: int, input_size: int, *, num_neighbours: int, net_stride: int) -> tuple:
        return _shapes(num_points, _map_side(input_size, net_stride), num_neighbours)

    return register(ArchSpec(
        name=name, builder=build, output_roles=OUTPUT_ROLES, output_shapes=shapes, decoder=_decoder_for(name),
        crop=PIPNET_CROP, training_crop=PIPNET_TRAINING_CROP, default_input_size=256, default_num_points=98,
        options={"num_neighbours": 10, "net_stride": 32}, infer_options=_infer_resnet,
        description=f"PIPNet ResNet-{depth} (official checkpoint layout), strides 16/32/64/128",
    ))


PIPNET_RESNET18 = _register_resnet(18)
PIPNET_RESNET50 = _register_resnet(50)
PIPNET_RESNET101 = _register_resnet(101)


def _fixed_stride_spec(name: str, model: type[PIPNetMobileNetV2] | type[PIPNetLight], halvings: int,
                       stride: int, default_input_size: int, description: str, crop: CropRule) -> ArchSpec:
    def build(num_points: int, input_size: int, *, num_neighbours: int) -> nn.Module:
        return model(num_points, num_neighbours)

    def shapes(num_points: int, input_size: int, *, num_neighbours: int) -> tuple:
        return _shapes(num_points, downsampled(input_size, halvings), num_neighbours)

    return register(ArchSpec(
        name=name, builder=build, output_roles=OUTPUT_ROLES, output_shapes=shapes,
        decoder=_decoder_for(name, stride), crop=crop, training_crop=PIPNET_TRAINING_CROP,
        default_input_size=default_input_size,
        default_num_points=98, options={"num_neighbours": 10}, infer_options=_infer_heads, description=description,
    ))


PIPNET_MOBILENETV2 = _fixed_stride_spec("pipnet_mobilenetv2", PIPNetMobileNetV2, 5, 32, 256,
                                        "PIPNet MobileNetV2 (official checkpoint layout), stride 32", PIPNET_CROP)
PIPNET_LIGHT = _fixed_stride_spec("pipnet_light", PIPNetLight, 3, LIGHT_STRIDE, 128,
                                  "PIPNet heads on the light H3R trunk at stride 8 (for like-for-like training)",
                                  PIPNET_TRAINING_CROP)
