"""Knowledge distillation losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, lam: float, temperature: float,
            label_smoothing: float = 0.0) -> Tensor:
    """(1−λ)·CE(s, y) + λ·T²·KL(softmax(t/T) ‖ softmax(s/T)), batch mean (Hinton et al. 2015).

    T² keeps the soft-target gradients on the scale of the hard-label ones.
    """
    ce = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    if lam == 0:
        return ce
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), F.log_softmax(teacher_logits.float() / t, dim=1),
                  reduction="batchmean", log_target=True)
    return (1 - lam) * ce + lam * t * t * kl


def attention_map(f: Tensor) -> Tensor:
    """Spatial attention of a feature map (Zagoruyko & Komodakis 2017): normalized mean of squares
    over channels, so that maps of nets with different widths can be compared."""
    return F.normalize(f.float().pow(2).mean(dim=1).flatten(1), dim=1)


def attention_loss(student_feats: list[Tensor], teacher_feats: list[Tensor]) -> Tensor:
    """Mean squared distance of attention maps at every pair of stage outputs with the same
    spatial size (each student stage is matched to the last teacher stage of its size)."""
    by_size = {tuple(f.shape[-2:]): f for f in teacher_feats}
    losses = [(attention_map(s) - attention_map(by_size[tuple(s.shape[-2:])])).pow(2).sum(1).mean()
              for s in student_feats if tuple(s.shape[-2:]) in by_size]
    if not losses:
        raise ValueError("feature distillation: no student stage matches a teacher stage's spatial size")
    return torch.stack(losses).mean()
