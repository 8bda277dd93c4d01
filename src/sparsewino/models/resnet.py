"""ResNet-18 for ImageNet and CIFAR, with the "max" variant whose 3x3 convs all have stride 1.

The "max" variant (Yu et al.) replaces each stride-2 3x3 convolution by a 2x2 max-pool
followed by a stride-1 3x3 convolution, so every 3x3 convolution can run with Winograd.
Module names follow torchvision at the top level (``conv1``, ``layer1``..``layer4``, ``fc``);
inside a block the residual branch is a Sequential (``layer1.0.branch.conv1``).
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .registry import register_model

__all__ = ["BasicBlock", "ResNet", "resnet18", "resnet18_max", "resnet18_cifar", "resnet18_cifar_max"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when shapes change).

    The residual branch is an ``nn.Sequential`` named ``branch`` (``pool`` in the max-pool
    variant, ``conv1``, ``bn1``, ``relu``, ``conv2``, ``bn2``), so whole-model rewrites that
    follow ``nn.Sequential`` chains (such as :func:`sparsewino.prune.winograd_relu`, which
    moves the ReLU before ``conv2`` into the Winograd domain) can see it.

    Args:
        in_channels, out_channels: block input and output channels.
        stride: 1 or 2 (downsampling block).
        max_pool_downsample: downsample with ``MaxPool2d(2)`` + a stride-1 3x3 conv instead
            of a stride-2 3x3 conv.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 max_pool_downsample: bool = False) -> None:
        super().__init__()
        layers: list[tuple[str, nn.Module]] = []
        conv_stride = stride
        if max_pool_downsample and stride != 1:
            # ceil_mode: ceil(n/2) outputs like the stride-2 3x3 conv and the 1x1 shortcut, odd n too
            layers.append(("pool", nn.MaxPool2d(stride, ceil_mode=True)))
            conv_stride = 1
        layers += [("conv1", nn.Conv2d(in_channels, out_channels, 3, stride=conv_stride, padding=1, bias=False)),
                   ("bn1", nn.BatchNorm2d(out_channels)), ("relu", nn.ReLU(inplace=True)),
                   ("conv2", nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)),
                   ("bn2", nn.BatchNorm2d(out_channels))]
        self.branch = nn.Sequential(OrderedDict(layers))
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.branch(x) + identity)


class ResNet(nn.Module):
    """ResNet with BasicBlocks; ``stem="imagenet"`` (7x7/2 + max-pool) or ``"cifar"`` (3x3/1)."""

    def __init__(self, blocks: tuple[int, ...] = (2, 2, 2, 2), in_channels: int = 3,
                 num_classes: int = 1000, stem: str = "imagenet", max_pool_downsample: bool = False,
                 width: int = 64) -> None:
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        channels = width
        for index, count in enumerate(blocks):
            out = width * 2 ** index
            stride = 1 if index == 0 else 2
            layer = [BasicBlock(channels, out, stride, max_pool_downsample)]
            layer += [BasicBlock(out, out) for _ in range(count - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
            channels = out
        self.num_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(self.num_stages):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.fc(self.avgpool(x).flatten(1))


@register_model("resnet18", 224, "ResNet-18 for ImageNet (7x7/2 stem, stride-2 3x3 convs)")
def resnet18(in_channels: int = 3, num_classes: int = 1000, width: int = 64) -> ResNet:
    """ResNet-18 (ImageNet layout)."""
    return ResNet((2, 2, 2, 2), in_channels, num_classes, "imagenet", False, width)


@register_model("resnet18_max", 224, "ResNet-18 for ImageNet, stride-2 3x3 convs replaced by "
                "2x2 max-pool + stride-1 conv (Yu et al.)")
def resnet18_max(in_channels: int = 3, num_classes: int = 1000, width: int = 64) -> ResNet:
    """ResNet-18 (ImageNet layout), every 3x3 conv stride 1 (max-pool downsampling)."""
    return ResNet((2, 2, 2, 2), in_channels, num_classes, "imagenet", True, width)


@register_model("resnet18_cifar", 32, "ResNet-18 for 32x32 images (3x3/1 stem, no stem max-pool)")
def resnet18_cifar(in_channels: int = 3, num_classes: int = 10, width: int = 64) -> ResNet:
    """ResNet-18 with the CIFAR stem."""
    return ResNet((2, 2, 2, 2), in_channels, num_classes, "cifar", False, width)


@register_model("resnet18_cifar_max", 32, "ResNet-18 for 32x32 images with max-pool downsampling "
                "(every 3x3 conv stride 1)")
def resnet18_cifar_max(in_channels: int = 3, num_classes: int = 10, width: int = 64) -> ResNet:
    """ResNet-18 with the CIFAR stem and max-pool downsampling."""
    return ResNet((2, 2, 2, 2), in_channels, num_classes, "cifar", True, width)
