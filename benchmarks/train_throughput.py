"""Training and evaluation images/s of each config on this machine.

    python benchmarks/train_throughput.py [--configs configs/*.yaml] [--steps 20] [--device cpu|cuda]

Synthetic uint8 images (throughput does not depend on pixel values); the same step
as model.train (augmentation, forward, loss, backward, optimizer step); students are
measured in both binarization phases. Prints one table.
"""
from __future__ import annotations

import argparse
import glob
import time

import torch
import torch.nn.functional as F

from model.config import load_config
from model.data import augment_batch
from model.factory import build_model
from model.phases import FULLY_BINARY, WEIGHTS_ONLY, set_phase
from model.student import BiRealStudent, complexity
from model.train import make_optimizer


def measure(model, cfg, device, steps: int, batch: int) -> tuple[float, float]:
    opt = make_optimizer(model, cfg)
    gen = torch.Generator(device=device).manual_seed(0)
    x8 = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    model.train()

    def step():
        x = augment_batch(x8, gen).float()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up (Brevitas initializes scales on the first pass)
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    train_ips = steps * batch / (time.perf_counter() - t0)
    model.eval()
    xe = x8.float()
    with torch.no_grad():
        model(xe)
        t0 = time.perf_counter()
        for _ in range(steps):
            model(xe)
        sync()
    return train_ips, steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="*", default=sorted(glob.glob("configs/*.yaml")))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, batch {args.batch}, {args.steps} steps")
    print(f"{'config':24} {'phase':>5} {'MMACs':>8} {'train img/s':>12} {'eval img/s':>11}")
    for path in args.configs:
        cfg = load_config(path)
        torch.manual_seed(0)
        model = build_model(cfg.model).to(device)
        if isinstance(model, BiRealStudent):
            macs = complexity(model).total_macs / 1e6
            for phase in (WEIGHTS_ONLY, FULLY_BINARY):
                set_phase(model, phase)
                tr, ev = measure(model, cfg, device, args.steps, args.batch)
                print(f"{cfg.name:24} {phase:>5} {macs:8.1f} {tr:12.1f} {ev:11.1f}", flush=True)
        else:
            tr, ev = measure(model, cfg, device, args.steps, args.batch)
            print(f"{cfg.name:24} {'fp':>5} {'':>8} {tr:12.1f} {ev:11.1f}", flush=True)


if __name__ == "__main__":
    main()
