"""Training images/s of each config, eager and compiled, per binarization phase, on this device.

    python benchmarks/train_throughput.py [--configs configs/*.yaml] [--modes eager compiled]
        [--teacher configs/teacher-airbench.yaml] [--steps 10] [--batch N] [--device cpu|cuda]

Times the trainer's own step (`model.train.make_train_step`, through
`model.epoch_budget.time_steps`): augmentation, the teacher's forward pass when --teacher is
given (distillation, as in a real student run), the student's forward, the loss, backward and
the optimizer step, on synthetic uint8 batches (throughput does not depend on pixel values).
"compiled" is `train.compile: true` (torch.compile of the loss step, default mode unless
--compile-mode); its first steps compile and are reported as "warm-up s", not counted in img/s.
The config's batch size is used unless --batch is given. Prints one table.
"""
from __future__ import annotations

import argparse
import glob
import platform
import time

import torch

from model.config import load_config
from model.epoch_budget import time_forward, time_steps
from model.factory import build_model
from model.phases import FIRST_PHASE, FULLY_BINARY
from model.student import BiRealStudent, complexity

MODES = ("eager", "compiled")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="*", default=sorted(glob.glob("configs/*.yaml")))
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    ap.add_argument("--teacher", help="teacher config whose forward pass joins every student step (random weights)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement (after 3 warm-up steps)")
    ap.add_argument("--batch", type=int, help="batch size (default: each config's train.batch_size)")
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode for 'compiled'")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.steps} timed steps, {time.strftime('%Y-%m-%d')}")
    teacher_cfg = load_config(args.teacher) if args.teacher else None
    print(f"{'config':22} {'phase':>5} {'mode':>8} {'batch':>5} {'MMACs':>7} {'warm-up s':>9} {'train img/s':>11} "
          f"{'eval img/s':>10}")
    for path in args.configs:
        cfg = load_config(path)
        if args.batch:
            cfg.train.batch_size = args.batch
        model = build_model(cfg.model)
        student = isinstance(model, BiRealStudent)
        macs = f"{complexity(model).total_macs / 1e6:.1f}" if student else ""
        eval_ips = cfg.train.eval_batch_size / max(time_forward(cfg, device, cfg.train.eval_batch_size), 1e-9)
        phases = (FIRST_PHASE, FULLY_BINARY) if student else (None,)
        for phase in phases:
            for mode in args.modes:
                cfg.train.compile = mode == "compiled"
                cfg.train.compile_mode = args.compile_mode
                torch._dynamo.reset()
                st = time_steps(cfg, device, args.steps, teacher_cfg if student else None, phase)
                label = "fp" if phase is None else str(phase)
                print(f"{cfg.name:22} {label:>5} {mode:>8} {cfg.train.batch_size:5d} {macs:>7} {st.warmup_s:9.1f} "
                      f"{cfg.train.batch_size / st.per_step_s:11.1f} {eval_ips:10.1f}", flush=True)


if __name__ == "__main__":
    main()
