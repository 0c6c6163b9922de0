"""The interface the trainer uses for every network: stage outputs, then a head."""
from __future__ import annotations

from torch import Tensor, nn


class StagedNet(nn.Module):
    """Subclasses define `enter(pixels)` (the stem), `self.stages` and `head(last stage) -> logits`."""

    stages: nn.ModuleList

    def enter(self, pixels: Tensor) -> Tensor:
        raise NotImplementedError

    def features(self, pixels: Tensor) -> list[Tensor]:
        """Stage outputs (for feature distillation); the last one feeds the head."""
        x = self.enter(pixels)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def head(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, pixels: Tensor, with_features: bool = False):
        """pixels: float tensor of raw uint8 values 0..255, NCHW. Returns the logits, or
        (logits, stage outputs) for feature distillation; the trainer asks through this
        forward (not `features()`) so that DDP synchronizes the gradients."""
        feats = self.features(pixels)
        logits = self.head(feats[-1])
        return (logits, feats) if with_features else logits
