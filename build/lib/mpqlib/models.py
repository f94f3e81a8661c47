"""Small nets for 1-channel 28x28 input, named like torchvision's models.

* CIFAR-style ResNets (``resnet20``, ``resnet8``): layer names follow torchvision's ResNets
  (``conv1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``).
* A MobileNetV1-style depthwise-separable net (``mobilenetv1``), the paper's headline model
  scaled to 28x28: ``conv1``/``bn1`` stem, ``features.<i>.{conv_dw,bn_dw,conv_pw,bn_pw}``
  blocks, ``fc``.

So the quantization, cost and search code treats these and torchvision models alike, and
:func:`head` finds the classifier (``fc``) in all of them.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            # 1x1 projection shortcut where the shape changes (as in ResNet-18).
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    """ResNet-(6n+2): a 3x3 stem, three stages of n basic blocks (16/32/64 channels), pool, FC."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (8, 14, 20, 32, ...), not {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=False)
        planes, layers = width, []
        for stage, out in enumerate((width, 2 * width, 4 * width)):
            blocks = [BasicBlock(planes, out, 1 if stage == 0 else 2)]
            blocks += [BasicBlock(out, out) for _ in range(n - 1)]
            layers.append(nn.Sequential(*blocks))
            planes = out
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DepthwiseSeparable(nn.Module):
    """MobileNetV1's block: a depthwise 3x3 conv (one filter per channel) then a pointwise 1x1 conv,
    each followed by BatchNorm and ReLU. The depthwise conv carries the block's stride."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv_dw = nn.Conv2d(inplanes, inplanes, 3, stride, 1, groups=inplanes, bias=False)
        self.bn_dw = nn.BatchNorm2d(inplanes)
        self.conv_pw = nn.Conv2d(inplanes, planes, 1, 1, 0, bias=False)
        self.bn_pw = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn_dw(self.conv_dw(x)))
        return self.relu(self.bn_pw(self.conv_pw(x)))


# (output channels / stem width, stride) of each depthwise-separable block for 28x28 input:
# the layout of MobileNetV1 (channels double where the map halves, a run of five equal-width
# blocks at the deepest stage) with two stride-2 stages (28 -> 14 -> 7) instead of five. The
# first block already halves the map, as MobileNetV1's stride-2 stem does.
MOBILENETV1_BLOCKS = ((2, 2), (4, 1), (4, 2), (8, 1), (8, 1), (8, 1), (8, 1), (8, 1))


class MobileNetV1(nn.Module):
    """MobileNetV1-style net: a stride-1 3x3 stem conv, depthwise-separable blocks, pool, FC.

    ``width`` is the stem's channels; the blocks have multiples of it (16: 16-32-64-128, 91k
    parameters, 6M MACs per 28x28 image; sized so that it trains in about half an hour on two
    shared CPU cores and still passes 91% on Fashion-MNIST).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16,
                 blocks: tuple[tuple[int, int], ...] = MOBILENETV1_BLOCKS):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=False)
        layers, planes = [], width
        for mult, stride in blocks:
            out = mult * width
            layers.append(DepthwiseSeparable(planes, out, stride))
            planes = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet20(num_classes: int = 10, in_channels: int = 1) -> CifarResNet:
    return CifarResNet(20, num_classes, in_channels)


def resnet8(num_classes: int = 10, in_channels: int = 1) -> CifarResNet:
    return CifarResNet(8, num_classes, in_channels)


def mobilenetv1(num_classes: int = 10, in_channels: int = 1) -> MobileNetV1:
    return MobileNetV1(num_classes, in_channels)


ARCHS = {"resnet20": resnet20, "resnet8": resnet8, "mobilenetv1": mobilenetv1}


def build(arch: str, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A model by name: one of :data:`ARCHS` (28x28 input) or a torchvision classification model.

    torchvision models are built untrained (``weights=None``: nothing is downloaded) and take
    3-channel images; ``in_channels`` other than 3 raises :class:`ConfigError` rather than
    silently changing their stem (replicate the gray channel to 3 channels instead).
    """
    if arch in ARCHS:
        return ARCHS[arch](num_classes, in_channels)
    import torchvision

    names = torchvision.models.list_models(torchvision.models)  # classification models only
    if arch not in names:
        raise ConfigError(f"unknown architecture {arch!r}: use one of {sorted(ARCHS)} or a torchvision "
                          f"classification model ({', '.join(names[:8])}, ...; see torchvision.models.list_models())")
    if in_channels != 3:
        raise ConfigError(f"torchvision model {arch!r} takes 3-channel input, not in_channels={in_channels}: "
                          f"pass in_channels=3 and repeat gray images over 3 channels, or use one of {sorted(ARCHS)}")
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)


def head(model: nn.Module) -> tuple[str, nn.Linear]:
    """The classifier: the last ``nn.Linear`` in module order (``fc``, ``classifier.1``, ...)."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier")
    return linears[-1]
