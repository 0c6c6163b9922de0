"""Small builders shared by the tests."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from build_flow.models import randomize_batchnorm
from model.student import BiRealStudent


def tiny_student(bits: int = 4, seed: int = 0) -> BiRealStudent:
    torch.manual_seed(seed)
    return randomize_batchnorm(BiRealStudent((8, 16), (1, 2), shortcut_bits=bits), seed).eval()


def random_pixels(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g).float()


def write_cifar_release(root: Path, per_class_train: int = 12, per_class_test: int = 4, seed: int = 0) -> Path:
    """A miniature `cifar-10-batches-py` folder in the official pickle format, with images whose
    mean brightness depends on the class (so a net can learn something in seconds)."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)

    def batch(per_class: int):
        labels = np.repeat(np.arange(10), per_class)
        rng.shuffle(labels)
        base = (labels[:, None] * 20 + 30).astype(np.int64)
        data = np.clip(base + rng.integers(-30, 30, (len(labels), 3072)), 0, 255).astype(np.uint8)
        return {b"data": data, b"labels": labels.tolist()}

    for i in range(1, 6):
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(max(1, per_class_train // 5)), f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump(batch(per_class_test), f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in
                                      ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                       "ship", "truck")]}, f)
    return d
