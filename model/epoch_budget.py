"""How many epochs of the teacher and of the student fit a wall-clock budget on this device.

    python -m model.epoch_budget --teacher-config T --student-config S --budget-s 420

A lent GPU gives a fixed number of minutes, and an unfinished progressive-binarization run
is worth nothing (its last epochs are the fully binary ones). So before training, this times
the trainer's own step (`model.train.make_train_step`) on synthetic batches of the real size:
the teacher alone, the student in both binarization phases with the teacher's forward pass
for distillation, and the BatchNorm re-estimation and evaluation (every `train.eval_every`
epochs). With `train.compile` the timed step is the compiled one: its first steps (the
compilation, once per phase) are counted as a one-off cost, and they fill the compile cache
the training run then reads. It then gives the teacher up to `--teacher-share` of the
budget and the student the rest, never more epochs than the configs ask for.

Prints shell assignments on stdout (`TEACHER_EPOCHS=…`, `STUDENT_EPOCHS=…`, `TRAIN_SET=…`,
for `eval`), the figures behind them on stderr. If the configured step fails on this device
(bf16 autocast, say), it is timed again in float32 and `TRAIN_SET` carries that override.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import dataclass

import torch

from .config import Config, load_config
from .data import augment_batch
from .errors import run_cli
from .factory import build_model
from .phases import FULLY_BINARY, WEIGHTS_ONLY, set_phase
from .train import make_optimizer, make_train_step, pick_device

FLOAT32 = {"train.bf16": False, "train.channels_last": False}
WARMUP_STEPS = 3  # Brevitas initializes its scales, cuDNN picks algorithms, torch.compile compiles


@dataclass
class StepTime:
    per_step_s: float   # steady state
    warmup_s: float     # the warm-up steps beyond their steady-state time (compilation)


@dataclass
class EpochCost:
    per_epoch_s: float  # training steps of one epoch + its share of the evaluations
    once_s: float       # paid once per run (compilation of each phase)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(cfg: Config, device: torch.device, steps: int, teacher_cfg: Config | None = None,
               phase: int | None = None) -> StepTime:
    """Seconds per optimizer step of `cfg` at its batch size (after warm-up), and the warm-up's
    extra seconds."""
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device)
    if device.type == "cuda" and cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if phase is not None:
        set_phase(model, phase, cfg.binarize.order)
    teacher = None
    if teacher_cfg is not None:
        teacher = build_model(teacher_cfg.model).to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    opt = make_optimizer(model, cfg, device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    step = make_train_step(model, teacher, opt, sched, cfg, device)
    gen = torch.Generator(device=device).manual_seed(0)
    x8 = torch.randint(0, 256, (cfg.train.batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (cfg.train.batch_size,), device=device)
    model.train()
    t0 = time.perf_counter()
    for _ in range(WARMUP_STEPS):
        step(augment_batch(x8, gen, cfg.data.crop_pad, cfg.data.flip), y)
    _sync(device)
    t1 = time.perf_counter()
    for _ in range(steps):
        step(augment_batch(x8, gen, cfg.data.crop_pad, cfg.data.flip), y)
    _sync(device)
    per_step = (time.perf_counter() - t1) / steps
    return StepTime(per_step, max(0.0, t1 - t0 - WARMUP_STEPS * per_step))


@torch.no_grad()
def time_forward(cfg: Config, device: torch.device, images: int) -> float:
    """Seconds for `images` forward passes at the eval batch size, fp32 (evaluation and BN re-estimation)."""
    model = build_model(cfg.model).to(device).eval()
    n = max(1, min(images, cfg.train.eval_batch_size))
    x = torch.randint(0, 256, (n, 3, 32, 32), device=device).float()
    model(x)
    _sync(device)
    t0 = time.perf_counter()
    model(x)
    _sync(device)
    return (time.perf_counter() - t0) * images / n


def epoch_cost(cfg: Config, device: torch.device, steps: int, train_images: int,
               teacher_cfg: Config | None = None) -> EpochCost:
    per_epoch = train_images // cfg.train.batch_size
    evaluation = time_forward(cfg, device, cfg.data.val_size + cfg.train.bn_recalibration_images)
    evaluation /= cfg.train.eval_every
    if cfg.model.arch != "bireal":
        st = time_steps(cfg, device, steps)
        print(f"  {cfg.name}: {1e3 * st.per_step_s:.1f} ms/step, warm-up +{st.warmup_s:.1f} s", file=sys.stderr)
        return EpochCost(per_epoch * st.per_step_s + evaluation, st.warmup_s)
    share = cfg.binarize.weights_only_epochs / max(1, cfg.train.epochs)
    s1 = time_steps(cfg, device, steps, teacher_cfg, WEIGHTS_ONLY)
    s2 = time_steps(cfg, device, steps, teacher_cfg, FULLY_BINARY)
    first = "binary weights" if cfg.binarize.order == "weights_first" else "binary activations"
    print(f"  {cfg.name}: {1e3 * s1.per_step_s:.1f} ms/step {first}, {1e3 * s2.per_step_s:.1f} ms/step fully binary; "
          f"warm-up +{s1.warmup_s + s2.warmup_s:.1f} s", file=sys.stderr)
    return EpochCost(per_epoch * (share * s1.per_step_s + (1 - share) * s2.per_step_s) + evaluation,
                     (s1.warmup_s if share > 0 else 0.0) + s2.warmup_s)


def plan(teacher_cfg: Config, student_cfg: Config, budget_s: float, teacher_share: float, steps: int,
         train_images: int, device: torch.device) -> tuple[int, int, float, float, dict]:
    """(teacher epochs, student epochs, s/teacher epoch, s/student epoch, config overrides)."""
    overrides: dict = {}
    try:
        c_teacher = epoch_cost(teacher_cfg, device, steps, train_images)
        c_student = epoch_cost(student_cfg, device, steps, train_images, teacher_cfg)
    except (RuntimeError, TypeError) as exc:  # e.g. an op without a bf16 kernel
        print(f"  configured step failed on {device} ({' '.join(str(exc).split())[:200]}); "
              f"timing float32 instead", file=sys.stderr)
        overrides = dict(FLOAT32)
        for cfg in (teacher_cfg, student_cfg):
            cfg.train.bf16 = cfg.train.channels_last = False
        c_teacher = epoch_cost(teacher_cfg, device, steps, train_images)
        c_student = epoch_cost(student_cfg, device, steps, train_images, teacher_cfg)
    t_teacher, t_student = c_teacher.per_epoch_s, c_student.per_epoch_s
    teacher_s = teacher_share * budget_s - c_teacher.once_s
    n_teacher = max(1, min(teacher_cfg.train.epochs, math.floor(teacher_s / t_teacher)))
    student_s = budget_s - c_teacher.once_s - n_teacher * t_teacher - c_student.once_s
    n_student = max(3, min(student_cfg.train.epochs, math.floor(student_s / t_student)))
    return n_teacher, n_student, t_teacher, t_student, overrides


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.epoch_budget", description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher-config", required=True)
    ap.add_argument("--student-config", required=True)
    ap.add_argument("--budget-s", type=float, required=True, help="seconds for both trainings together")
    ap.add_argument("--teacher-share", type=float, default=0.25, help="at most this part of the budget")
    ap.add_argument("--steps", type=int, default=15, help="timed steps per measurement")
    ap.add_argument("--train-images", type=int, default=45000, help="images per epoch (train split)")
    args = ap.parse_args(argv)
    if args.budget_s <= 0 or not 0 < args.teacher_share < 1:
        print(f"--budget-s {args.budget_s} must be > 0 and --teacher-share {args.teacher_share} in (0, 1)",
              file=sys.stderr)
        return 2
    device = pick_device(0)
    teacher_cfg, student_cfg = load_config(args.teacher_config), load_config(args.student_config)
    t0 = time.perf_counter()
    n_t, n_s, t_t, t_s, overrides = plan(teacher_cfg, student_cfg, args.budget_s, args.teacher_share,
                                         args.steps, args.train_images, device)
    print(f"epoch budget on {device}: teacher {t_t:.1f} s/epoch -> {n_t} epochs, student {t_s:.1f} s/epoch -> "
          f"{n_s} epochs; {n_t * t_t + n_s * t_s:.0f} s of {args.budget_s:.0f} s "
          f"(measured in {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    sets = " ".join(f"--set {k}={str(v).lower()}" for k, v in overrides.items())
    print(f"TEACHER_EPOCHS={n_t}\nSTUDENT_EPOCHS={n_s}\nTRAIN_SET={shlex.quote(sets)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
