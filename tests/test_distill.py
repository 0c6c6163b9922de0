"""Knowledge-distillation losses against hand computations."""
import math

import torch

from model.distill import attention_loss, attention_map, kd_loss


def test_kd_loss_equals_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    y = torch.tensor([1, 2])
    lam, T = 0.7, 3.0
    ce = 0.0
    kl = 0.0
    for i in range(2):
        ps = [math.exp(v) for v in s[i].tolist()]
        ce += -math.log(ps[y[i]] / sum(ps)) / 2
        pt = [math.exp(v / T) for v in t[i].tolist()]
        pt = [p / sum(pt) for p in pt]
        qs = [math.exp(v / T) for v in s[i].tolist()]
        qs = [q / sum(qs) for q in qs]
        kl += sum(p * math.log(p / q) for p, q in zip(pt, qs)) / 2  # KL(teacher ‖ student), batch mean
    expected = (1 - lam) * ce + lam * T * T * kl
    got = kd_loss(s, t, y, lam, T).item()
    assert abs(got - expected) < 1e-5


def test_kd_loss_reduces_to_cross_entropy_at_lambda_zero_and_zero_kl_for_equal_logits():
    s = torch.randn(4, 10)
    y = torch.randint(0, 10, (4,))
    assert torch.allclose(kd_loss(s, torch.randn(4, 10), y, 0.0, 4.0), torch.nn.functional.cross_entropy(s, y))
    assert kd_loss(s, s.clone(), y, 1.0, 4.0).abs().item() < 1e-6


def test_kd_gradient_reaches_student_only():
    s = torch.randn(3, 10, requires_grad=True)
    t = torch.randn(3, 10, requires_grad=True)
    kd_loss(s, t.detach(), torch.tensor([0, 1, 2]), 0.9, 4.0).backward()
    assert s.grad is not None and t.grad is None


def test_attention_transfer_matches_by_spatial_size():
    a = torch.randn(2, 8, 16, 16)
    b = torch.randn(2, 64, 16, 16)
    assert torch.allclose(attention_map(a).norm(dim=1), torch.ones(2))
    assert attention_loss([a], [a.repeat(1, 8, 1, 1)]).item() < 1e-10  # same pattern, other width
    assert attention_loss([a, torch.randn(2, 16, 8, 8)], [b]).item() > 0
