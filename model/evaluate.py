"""Top-1 accuracy of a checkpoint on a split.

    python -m model.evaluate --ckpt runs/x/checkpoint.pt --data DATA --split val|test|all

`val` re-derives the validation split the checkpoint was trained with (its recorded
data.val_size and data.split_seed) from the training images at DATA; `test` is the
held-out test split (official release, or a test/ folder); `all` is every image at
DATA (e.g. a folder or zip holding only a test set).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError, run_cli

SPLITS = ("val", "test", "all")


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy) in eval mode, fp32; restores the model's mode.
    Sums stay on the device: one synchronization at the end, not two per batch."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for i in range(0, len(labels), batch_size):
        x, y = images[i:i + batch_size].float(), labels[i:i + batch_size]
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return loss.item() / len(labels), correct.item() / len(labels)


def split_images(cfg_data, path: str, split: str):
    """(images, labels, description) of a split, per the rules in the module doc."""
    from .data import load_cifar10, stratified_split
    if split == "val":
        ds = load_cifar10(path, "train", limit_per_class=cfg_data.limit_per_class)
        _, val_idx = stratified_split(ds.labels, cfg_data.val_size, cfg_data.split_seed)
        if len(val_idx) == 0:
            raise ConfigError(f"the checkpoint was trained with data.val_size = 0: there is no validation split")
        return ds.images[val_idx], ds.labels[val_idx], f"validation split of {ds.source}"
    ds = load_cifar10(path, split)
    return ds.images, ds.labels, f"{split} split of {ds.source}"


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import load_trained_model
    ap = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True, help="checkpoint file")
    ap.add_argument("--data", help="dataset path (default: the checkpoint's data.path)")
    ap.add_argument("--split", default="val", choices=SPLITS)
    ap.add_argument("--batch-size", type=int, default=500)
    args = ap.parse_args(argv)
    model, cfg, state = load_trained_model(args.ckpt)
    path = args.data or cfg.data.path
    if not path:
        raise ConfigError("no data: pass --data (DATA=)")
    images, labels, what = split_images(cfg.data, path, args.split)
    t0 = time.perf_counter()
    _, acc = evaluate(model, images, labels, args.batch_size)
    dt = time.perf_counter() - t0
    print(f"{cfg.name} (epoch {state['epoch']}, phase {state['phase']}) on the {what}: "
          f"top-1 {100 * acc:.2f} % of {len(labels)} images ({len(labels) / dt:.0f} img/s)")
    return 0


if __name__ == "__main__":
    run_cli(main)
