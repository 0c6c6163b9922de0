"""Full-precision CIFAR teachers, trained by the same trainer as the student.

Both take raw pixel values (0..255) like the student and normalize internally, and
both expose `features()` (stage outputs, for feature distillation) and `head()`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .staged import StagedNet

CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(StagedNet):
    """ResNet for 32x32 inputs: 3x3 stem, stages of BasicBlocks, global pool, linear."""

    def __init__(self, widths, blocks, num_classes: int = 10):
        super().__init__()
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.stages = nn.ModuleList()
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            layers = []
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
            self.stages.append(nn.Sequential(*layers))
        self.fc = nn.Linear(cin, num_classes)

    def enter(self, pixels: Tensor) -> Tensor:
        return self.stem((pixels - self.mean) / self.std)

    def head(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))



def resnet20(num_classes: int = 10) -> CifarResNet:
    """He et al. 2016, CIFAR ResNet-20: 0.27 M parameters, ~91.7 % with a long schedule."""
    return CifarResNet((16, 32, 64), (3, 3, 3), num_classes)


def resnet18(num_classes: int = 10) -> CifarResNet:
    """ResNet-18 with a 3x3 stem and no max-pool (the usual CIFAR variant): 11 M parameters."""
    return CifarResNet((64, 128, 256, 512), (2, 2, 2, 2), num_classes)
