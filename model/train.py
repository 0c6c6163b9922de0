"""One trainer for teachers and students, on CPU or CUDA, optionally multi-GPU with torchrun.

    python -m model.train --config configs/student-small.yaml --data DATA --out runs/x [--epochs N] [--resume]

Data stays resident on the training device as one uint8 tensor; augmentation is a
few tensor ops per batch (airbench style). The optimizer step is one compiled
function (forward of student and teacher, loss; `train.compile`) plus a fused
optimizer, with no host synchronization inside the loop. Every `train.eval_every`
epochs and after the last, BatchNorm statistics are re-estimated, the validation split
is evaluated, and the metrics (JSONL + CSV), a PNG of the curves and an atomic
checkpoint (everything needed to resume to the same result as an uninterrupted run)
are written.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .checkpoint import checkpoint_config, load_checkpoint, load_model_state, load_trained_model, save_checkpoint
from .config import Config, load_config, save_config
from .data import Batches, load_cifar10, stratified_split
from .distill import attention_loss, kd_loss
from .errors import CheckpointError, ConfigError, run_cli
from .evaluate import evaluate
from .factory import build_model
from .metrics import MetricsLog
from .phases import FULLY_BINARY, phase_for_epoch, set_phase

CHECKPOINT = "checkpoint.pt"
WARM_STEPS = 5  # steps of an epoch not counted in its images/s (compilation, warm-up)


# ---------------------------------------------------------------- set-up helpers

def init_distributed() -> tuple[int, int]:
    """(rank, world size); torchrun sets WORLD_SIZE, plain runs are rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def pick_device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        torch.cuda.set_device(rank % torch.cuda.device_count())
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")


def effective_lr(cfg: Config) -> float:
    """train.lr scaled from train.lr_batch_size to train.batch_size: linearly for SGD, by the
    square root for Adam (the usual rules; a different batch size then needs no new LR)."""
    t = cfg.train
    if t.lr_batch_size is None:
        return t.lr
    ratio = t.batch_size / t.lr_batch_size
    return t.lr * (ratio if t.optimizer == "sgd" else math.sqrt(ratio))


def weight_decay_for_phase(cfg: Config, phase: int) -> float:
    t = cfg.train
    return t.weight_decay_phase2 if (phase == FULLY_BINARY and t.weight_decay_phase2 is not None) else t.weight_decay


def make_optimizer(model: nn.Module, cfg: Config, device: torch.device | None = None) -> torch.optim.Optimizer:
    """No weight decay on BatchNorm, biases, scales and sign offsets (1-D params, scalars or
    biases); the first group is the decayed one. Fused kernels on CUDA (one launch for all
    parameters instead of several per tensor)."""
    t = cfg.train
    decay = [p for n, p in model.named_parameters()
             if p.dim() > 1 and "scaling_impl" not in n and not n.endswith("bias")]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    lr, fused = effective_lr(cfg), {"fused": True} if device is not None and device.type == "cuda" else {}
    if t.optimizer == "adam":
        decays = t.weight_decay or t.weight_decay_phase2
        return (torch.optim.AdamW if decays else torch.optim.Adam)(groups, lr=lr, **fused)
    return torch.optim.SGD(groups, lr=lr, momentum=t.momentum, nesterov=True, **fused)


def lr_lambda(cfg: Config, steps_per_epoch: int):
    """Linear warm-up, then cosine or linear decay to 0 (train.lr_schedule), restarted at the
    phase switch (two-step training)."""
    t = cfg.train
    switch = cfg.binarize.weights_only_epochs * steps_per_epoch
    total = t.epochs * steps_per_epoch
    warm = max(1, int(t.warmup_epochs * steps_per_epoch)) if t.warmup_epochs > 0 else 0
    linear = t.lr_schedule == "linear"

    def factor(step: int) -> float:
        start, end = (0, switch) if step < switch else (switch, total)
        pos = step - start
        if pos < warm:
            return (pos + 1) / warm
        done = min(1.0, (pos - warm) / max(1, end - start - warm))
        return 1.0 - done if linear else 0.5 * (1 + math.cos(math.pi * done))

    return factor


def load_teacher(path: str, device: torch.device) -> nn.Module:
    try:
        teacher, _, _ = load_trained_model(path)
    except CheckpointError as exc:
        raise ConfigError(f"distill.teacher: {exc}") from None
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.to(device).eval()  # frozen, BatchNorm in inference mode


def make_loss_fn(net: nn.Module, teacher: nn.Module | None, cfg: Config, device: torch.device):
    """`loss_fn(x_uint8_augmented, labels) -> (loss, logits)`: the teacher's and the student's
    forward passes and the loss, the part of a step that torch.compile takes whole."""
    t, cuda = cfg.train, device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if (cuda and t.bf16) else nullcontext
    match_features = teacher is not None and cfg.distill.feature_weight > 0

    def loss_fn(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb = xb.float()
        if cuda and t.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast():
            if teacher is not None:
                with torch.no_grad():
                    t_logits, t_feats = teacher(xb, with_features=True)
            if match_features:
                logits, feats = net(xb, with_features=True)
            else:
                logits = net(xb)
            if teacher is None:
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=t.label_smoothing)
            else:
                loss = kd_loss(logits.float(), t_logits, yb, cfg.distill.lam, cfg.distill.temperature,
                               t.label_smoothing)
                if match_features:
                    loss = loss + cfg.distill.feature_weight * attention_loss(feats, t_feats)
        return loss, logits.detach()

    return loss_fn


def make_train_step(net: nn.Module, teacher: nn.Module | None, opt: torch.optim.Optimizer, sched, cfg: Config,
                    device: torch.device):
    """The one optimizer step of every run (also timed by model.epoch_budget):
    `step(x_uint8_augmented, labels) -> (loss, logits)`, both still on the device (no sync).

    With train.compile the loss function is compiled (forward and, through AOTAutograd,
    backward); each binarization phase is its own graph, compiled once when it starts."""
    loss_fn = make_loss_fn(net, teacher, cfg, device)
    if cfg.train.compile:
        t = cfg.train
        mode = None if t.compile_mode == "default" or t.compile_backend != "inductor" else t.compile_mode
        loss_fn = torch.compile(loss_fn, backend=t.compile_backend, mode=mode)

    def step(xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits = loss_fn(xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return loss.detach(), logits

    return step


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int) -> None:
    """Replace every BatchNorm's running statistics by their plain average over `images`
    (train-mode forward passes, no gradients). Deterministic: no randomness is drawn."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns or len(images) == 0:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    was_training = model.training
    model.train()
    for i in range(0, len(images), batch_size):
        model(images[i:i + batch_size].float())
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.train(was_training)


def rng_state(gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "data": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- the loop

def train(cfg: Config, out_dir: str | Path, resume: bool = False, stop_after: int | None = None,
          progress: bool = True) -> dict:
    """Train `cfg`, writing into `out_dir`. `stop_after` ends after that many epochs of this
    call (used to test resuming). Returns the last epoch's metrics."""
    out_dir = Path(out_dir)
    rank, world = init_distributed()
    device = pick_device(rank)
    main = rank == 0
    t, cuda = cfg.train, device.type == "cuda"
    if not cuda:
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(t.seed)
    if cfg.data.path is None:
        raise ConfigError("no training data: set data.path in the config or pass --data / DATA=")

    ds = load_cifar10(cfg.data.path, "train", limit_per_class=cfg.data.limit_per_class)
    train_idx, val_idx = stratified_split(ds.labels, cfg.data.val_size, cfg.data.split_seed)
    x_train, y_train = ds.images[train_idx].to(device), ds.labels[train_idx].to(device)
    x_val, y_val = ds.images[val_idx].to(device), ds.labels[val_idx].to(device)

    # a fixed calibration subset, drawn from its own generator (resuming does not change it)
    calib_gen = torch.Generator().manual_seed(t.seed + 1)
    n_calib = min(t.bn_recalibration_images, len(train_idx))
    x_calib = x_train[torch.randperm(len(train_idx), generator=calib_gen)[:n_calib].to(device)]

    model = build_model(cfg.model)
    ckpt_path = out_dir / CHECKPOINT
    state = None
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if checkpoint_config(state, ckpt_path).to_dict() != cfg.to_dict():
            raise CheckpointError(f"{ckpt_path}: was written with another config; use a new --out or the same config")
        # Before .to(device) and before the optimizer exists: Brevitas *replaces* its scale
        # Parameters when loading, so an optimizer built earlier would hold stale ones.
        load_model_state(model, state["model"], ckpt_path)
    model = model.to(device)
    if state is None and hasattr(model, "init_from_data"):
        model.init_from_data(x_train)  # data-dependent initialization (the airbench teacher's whitening)
    if cuda and t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher = load_teacher(cfg.distill.teacher, device) if cfg.distill.teacher else None
    opt = make_optimizer(model, cfg, device)
    gen = torch.Generator(device=device).manual_seed(t.seed)
    batches = Batches(x_train, y_train, t.batch_size * world, shuffle=True, augment=True, generator=gen,
                      drop_last=True, pad=cfg.data.crop_pad, flip=cfg.data.flip)
    if len(batches) == 0:
        raise ConfigError(f"train.batch_size = {t.batch_size} is larger than the training set ({len(y_train)} images)")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, len(batches)))

    start_epoch, log = 0, MetricsLog(out_dir) if main else None
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], gen)
        start_epoch = state["epoch"]
        if main:
            log.truncate(start_epoch)
    elif main:
        out_dir.mkdir(parents=True, exist_ok=True)
        log.truncate(0)
    if main:
        save_config(cfg, out_dir / "config.yaml")

    is_student = cfg.model.arch == "bireal"
    # In phase 1 the activation quantizers' scales take no part in the loss.
    net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=is_student) if world > 1 else model
    step = make_train_step(net, teacher, opt, sched, cfg, device)
    last = {}
    end_epoch = t.epochs if stop_after is None else min(t.epochs, start_epoch + stop_after)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for epoch in range(start_epoch, end_epoch):
        phase = phase_for_epoch(epoch, cfg.binarize.weights_only_epochs) if is_student else 0
        if is_student:
            set_phase(model, phase, cfg.binarize.order)
            opt.param_groups[0]["weight_decay"] = weight_decay_for_phase(cfg, phase)
        model.train()
        t0, seen, loss_sum, correct = time.perf_counter(), 0, torch.zeros((), device=device), torch.zeros((), device=device)
        # images/s counts from the WARM_STEPS-th step: the first steps of a phase compile
        t_warm, seen_warm = t0, 0
        bar = tqdm(batches, desc=f"{cfg.name} epoch {epoch + 1}/{t.epochs}" + (f" phase {phase}" if phase else ""),
                   disable=not (progress and main), leave=False, unit="batch")
        for i, (xb, yb) in enumerate(bar):
            xb, yb = xb[rank::world], yb[rank::world]
            loss, logits = step(xb, yb)
            seen += len(yb)
            loss_sum += loss * len(yb)
            correct += (logits.argmax(1) == yb).sum()
            if i + 1 == WARM_STEPS and len(batches) > 2 * WARM_STEPS:
                sync()
                t_warm, seen_warm = time.perf_counter(), seen
            if progress and main and bar.n % 10 == 0:
                el = time.perf_counter() - t0
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{(correct / seen).item():.3f}",
                                img_s=f"{seen * world / max(el, 1e-9):.0f}")
        sync()
        t_end = time.perf_counter()
        train_time = t_end - t0
        row = {
            "epoch": epoch + 1, "phase": phase, "lr": sched.get_last_lr()[0],
            "train_loss": (loss_sum / max(seen, 1)).item(), "train_acc": (correct / max(seen, 1)).item(),
            "val_loss": None, "val_acc": None,
            "train_img_per_s": (seen - seen_warm) * world / max(t_end - t_warm, 1e-9), "eval_img_per_s": None,
            "epoch_time_s": train_time,
        }
        due = (epoch + 1) % t.eval_every == 0 or epoch + 1 == end_epoch
        if due:
            t1 = time.perf_counter()
            recalibrate_batchnorm(model, x_calib, t.eval_batch_size)
            val_loss, val_acc = (evaluate(model, x_val, y_val, t.eval_batch_size) if len(y_val)
                                 else (float("nan"), float("nan")))
            eval_time = time.perf_counter() - t1
            row.update(val_loss=val_loss, val_acc=val_acc, eval_img_per_s=len(y_val) / max(eval_time, 1e-9),
                       epoch_time_s=train_time + eval_time)
        last = row
        if main:
            log.append(row, write=due)
            if due:
                save_checkpoint(ckpt_path, {
                    "config": cfg.to_dict(), "epoch": epoch + 1, "phase": phase, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng_state(gen),
                })
            val = f"val loss {row['val_loss']:.3f} acc {row['val_acc']:.4f}" if due else "val -"
            tqdm.write(f"{cfg.name} epoch {epoch + 1}/{t.epochs} phase {phase}: train loss {row['train_loss']:.3f} "
                       f"acc {row['train_acc']:.4f} | {val} | {row['train_img_per_s']:.0f} img/s | "
                       f"{row['epoch_time_s']:.1f} s")
    if world > 1:
        dist.barrier()
    return last


# ---------------------------------------------------------------- command line

def parse_overrides(items: list[str]) -> dict:
    import yaml
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=0.001")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="YAML config under configs/")
    ap.add_argument("--data", help="training data (overrides data.path): cifar-10-batches-py dir, ImageFolder dir or zip")
    ap.add_argument("--out", required=True, help="run folder: checkpoint.pt, metrics.jsonl/.csv, curves.png, config.yaml")
    ap.add_argument("--epochs", type=int, help="override train.epochs (binarize.weights_only_epochs is scaled "
                                               "to keep its share unless set with --set)")
    ap.add_argument("--teacher", help="override distill.teacher (a teacher checkpoint)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    args = ap.parse_args(argv)
    overrides = parse_overrides(args.set)
    if args.data:
        overrides["data.path"] = args.data
    if args.teacher:
        overrides["distill.teacher"] = args.teacher
    if args.epochs is not None:
        overrides["train.epochs"] = args.epochs
        if "binarize.weights_only_epochs" not in overrides:
            # keep the phase-1 share of the schedule when only the length changes (set before
            # validation: the config's own phase-1 length may exceed the new total)
            base = load_config(args.config, {k: v for k, v in overrides.items() if k != "train.epochs"})
            share = base.binarize.weights_only_epochs / base.train.epochs
            overrides["binarize.weights_only_epochs"] = min(args.epochs, round(share * args.epochs))
    cfg = load_config(args.config, overrides)
    train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    run_cli(main)
