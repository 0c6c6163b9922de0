"""Slim a training checkpoint into a deployable model file (no optimizer or RNG state).

    python -m model.release --ckpt runs/x/checkpoint.pt --out models/student-flagship.pt

The result is still a checkpoint in the project's format (config, weights, phase,
epoch) plus the run's metrics, so `make eval`, `make verify` and `make compile` read it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .checkpoint import load_checkpoint, save_checkpoint
from .errors import run_cli


def slim_checkpoint(src: str | Path, dst: str | Path) -> None:
    state = load_checkpoint(src)
    metrics_file = Path(src).parent / "metrics.jsonl"
    metrics = [json.loads(l) for l in metrics_file.read_text().splitlines()] if metrics_file.exists() else []
    save_checkpoint(dst, {k: state[k] for k in ("config", "model", "epoch", "phase")} | {"metrics": metrics})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.release", description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    slim_checkpoint(args.ckpt, args.out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    run_cli(main)
