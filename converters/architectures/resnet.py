"""ResNet-18/34/50/101 trunks with torchvision's parameter names (no pooling/fc head).

Names (``conv1, bn1, layer1..layer4``, blocks with ``conv1/bn1/…`` and ``downsample.0/1``)
match torchvision so ImageNet and PIPNet checkpoints load with strict=True. The Bottleneck
puts the stride on the 3x3 conv, as torchvision does (ResNet v1.5).
"""
from __future__ import annotations

from torch import Tensor, nn


def _conv3x3(inp: int, oup: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inp, oup, 3, stride, 1, bias=False)


def _conv1x1(inp: int, oup: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inp, oup, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inp, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inp, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """Stride-32 trunk; subclasses add their own heads under their own names."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"unsupported ResNet depth {depth}; expected one of {sorted(RESNET_DEPTHS)}")
        block, counts = RESNET_DEPTHS[depth]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self._inp = 64
        self.layer1 = self._make_layer(block, 64, counts[0], 1)
        self.layer2 = self._make_layer(block, 128, counts[1], 2)
        self.layer3 = self._make_layer(block, 256, counts[2], 2)
        self.layer4 = self._make_layer(block, 512, counts[3], 2)
        self.out_channels = 512 * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block: type[BasicBlock] | type[Bottleneck], planes: int, count: int,
                    stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inp != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self._inp, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        blocks = [block(self._inp, planes, stride, downsample)]
        self._inp = planes * block.expansion
        blocks += [block(self._inp, planes) for _ in range(1, count)]
        return nn.Sequential(*blocks)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)
