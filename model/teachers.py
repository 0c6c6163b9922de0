"""Full-precision CIFAR teachers, trained by the same trainer as the student.

All take raw pixel values (0..255) like the student and normalize internally, and
all expose `features()` (stage outputs, for feature distillation) and `head()`:
CIFAR ResNets (resnet20, resnet18) and AirbenchNet, a fast airbench-style all-conv net.
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


# ---------------------------------------------------------------- airbench-style fast teacher

class ShiftBatchNorm(nn.BatchNorm2d):
    """BatchNorm with no learned scale and a learned per-channel shift that trains `gain`² times
    faster than the other parameters.

    The parameter `shift` holds the shift divided by `gain` (the forward multiplies it back), so
    plain SGD (one learning rate for every parameter, as the trainer has) moves the shift gain²
    times as fast: airbench's 64x BatchNorm-bias learning rate, without an optimizer group.
    Running statistics use momentum 0.4 (airbench's; they follow a short run's fast changes).
    With no scale after the normalization, every conv in front of one is scale invariant, so
    weight decay only sets their effective learning rate. A subclass of BatchNorm2d, so BatchNorm
    recalibration and `isinstance` checks treat it like any other.
    """

    def __init__(self, channels: int, momentum: float = 0.4, gain: float = 8.0):
        super().__init__(channels, momentum=momentum, affine=False)
        self.gain = gain
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + (self.gain * self.shift).to(x.dtype).view(1, -1, 1, 1)


def _conv3x3(cin: int, cout: int, bias: bool = False) -> nn.Conv2d:
    """3x3 'same' conv whose first min(cin, cout) filters start as the identity (dirac), the
    rest at PyTorch's default init: each layer starts by passing its input through."""
    conv = nn.Conv2d(cin, cout, 3, 1, 1, bias=bias)
    n = min(cin, cout)
    nn.init.dirac_(conv.weight.data[:n])
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


class AirbenchStage(nn.Module):
    """conv → 2x2 max-pool → BN → GELU, then `convs - 1` more conv → BN → GELU at the pooled
    size. With 3 or more convs, the ones after the first form a residual branch added back
    before the last GELU (the airbench96 variant); with 1 or 2 the stage is a plain chain."""

    def __init__(self, cin: int, cout: int, convs: int):
        super().__init__()
        self.conv = _conv3x3(cin, cout)
        self.norm = ShiftBatchNorm(cout)
        self.body = nn.ModuleList(nn.Sequential(_conv3x3(cout, cout), ShiftBatchNorm(cout)) for _ in range(convs - 1))
        self.residual = convs >= 3

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.norm(F.max_pool2d(self.conv(x), 2)))
        if len(self.body) == 0:
            return x
        y = x
        for i, layer in enumerate(self.body):
            y = layer(y)
            if i < len(self.body) - 1:
                y = F.gelu(y)
        return F.gelu(y + x if self.residual else y)


class AirbenchNet(StagedNet):
    """A small, fast all-conv CIFAR net designed after Keller Jordan's airbench (K. Jordan, "94% on
    CIFAR-10 in 3.29 seconds on a single GPU", 2024): a 3x3 stem conv with bias + GELU (no
    BatchNorm), then stages of conv-BN-GELU blocks that each halve the size by max-pooling, a
    global max-pool and a bias-free linear classifier whose logits are scaled by 1/9.

    `widths[i]` is stage i's channel count and `blocks[i]` its number of 3x3 convs (see
    AirbenchStage): (128, 384, 512) with (2, 2, 2) is about 0.42 G multiply-accumulates per
    image; (64, 256, 256) with (2, 2, 2) about 0.15 G. Stage outputs are 16x16, 8x8, 4x4 (for
    32x32 inputs; the stem keeps 32x32 so they have the sizes of the student's stages, for the
    attention-transfer loss). Takes raw 0..255 pixels and normalizes internally.

    `init_from_data(images)` optionally turns the stem into a fixed patch-whitening layer.
    """

    STEM_COMPONENTS = 16       # principal components of 3x3 patches the whitened stem keeps (of 27)
    LOGIT_SCALE = 1.0 / 9.0    # airbench's tuned temperature for the max-pooled linear head

    def __init__(self, widths, blocks, num_classes: int = 10):
        super().__init__()
        if not widths or len(widths) != len(blocks) or min(widths) < 1 or min(blocks) < 1:
            raise ValueError(f"airbench needs one positive width and block count per stage, got {widths}, {blocks}")
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1))
        # 1 once init_from_data has whitened (and frozen) the stem: recorded in checkpoints so
        # that a loaded model keeps the stem frozen (see _refreeze).
        self.register_buffer("stem_whitened", torch.zeros((), dtype=torch.uint8))
        stem_width = 2 * self.STEM_COMPONENTS
        self.stem = nn.Conv2d(3, stem_width, 3, 1, 1, bias=True)
        nn.init.zeros_(self.stem.bias)
        self.stages = nn.ModuleList()
        cin = stem_width
        for w, n in zip(widths, blocks):
            self.stages.append(AirbenchStage(cin, w, n))
            cin = w
        self.fc = nn.Linear(cin, num_classes, bias=False)
        self.register_load_state_dict_post_hook(AirbenchNet._refreeze)

    def enter(self, pixels: Tensor) -> Tensor:
        return F.gelu(self.stem((pixels - self.mean) / self.std))

    def head(self, x: Tensor) -> Tensor:
        return self.fc(torch.amax(x, dim=(2, 3))) * self.LOGIT_SCALE

    @torch.no_grad()
    def init_from_data(self, images_uint8: Tensor, max_images: int = 5000, eps: float = 5e-4) -> None:
        """Make the stem a patch-whitening layer (the airbench initialization) and freeze its weight.

        images_uint8: (N, 3, 32, 32) training images, raw 0..255 (any dtype, any device; the
        first `max_images` are used). The 3x3 patches of the normalized images give a 27x27
        covariance; the stem's filters become its top STEM_COMPONENTS eigenvectors scaled by
        1/sqrt(eigenvalue + eps), each with its negation (so that GELU keeps both signs). The
        stem's bias is reset to 0 and stays trainable. Deterministic for the same images.
        Call it once on a fresh model before training; a checkpoint loaded later keeps the
        whitened weight and the freeze (do not call it again when resuming: it resets the bias).
        """
        if images_uint8.dim() != 4 or images_uint8.shape[1] != 3 or len(images_uint8) == 0:
            raise ValueError(f"init_from_data needs (N, 3, H, W) images, got {tuple(images_uint8.shape)}")
        w = self.stem.weight
        cov, count = torch.zeros(27, 27, dtype=torch.float64, device=w.device), 0
        for chunk in images_uint8[:max_images].split(256):
            x = (chunk.to(w.device, torch.float32) - self.mean) / self.std
            patches = F.unfold(x, 3).transpose(1, 2).reshape(-1, 27).double()  # (n·L, 27), ordered like w
            cov += patches.T @ patches
            count += len(patches)
        eigval, eigvec = torch.linalg.eigh(cov / count)                      # ascending
        k = self.STEM_COMPONENTS
        top_val, top_vec = eigval.flip(0)[:k], eigvec.flip(1)[:, :k].T       # (k,), (k, 27)
        filters = (top_vec / torch.sqrt(top_val.clamp_min(0) + eps)[:, None]).view(k, 3, 3, 3)
        w.copy_(torch.cat([filters, -filters]).to(w.dtype))
        self.stem.bias.zero_()
        self.stem_whitened.fill_(1)
        w.requires_grad_(False)

    @staticmethod
    def _refreeze(module: "AirbenchNet", incompatible_keys) -> None:
        module.stem.weight.requires_grad_(not bool(module.stem_whitened))


def airbench(widths=(128, 384, 512), blocks=(2, 2, 2), num_classes: int = 10) -> AirbenchNet:
    return AirbenchNet(tuple(widths), tuple(blocks), num_classes)
