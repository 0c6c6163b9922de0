"""What the runs left behind, read into the sweep's summary: each stage's status and row, and the table
(OUT/sweep.md) and record (OUT/sweep.json) of them all.

A stage counts the epochs its checkpoint holds and the metrics rows up to it, as `--resume` does: the
trainer writes metrics.jsonl before checkpoint.pt, so a kill between the two leaves the log ahead.
"""
from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import CheckpointError
from .spec import LOG, Stage, Sweep


def read_metrics(path: Path) -> list[dict]:
    """The epoch rows of a metrics.jsonl; a line cut short by a kill is skipped."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("epoch"), int):
                rows.append(row)
    return rows


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch a checkpoint holds, None if there is none (or it cannot be read)."""
    if not path.is_file():
        return None
    from ..checkpoint import load_checkpoint
    try:
        return int(load_checkpoint(path)["epoch"])
    except (CheckpointError, ValueError, TypeError):
        return None


def is_finite(v) -> bool:
    """A real number, not NaN or inf (a bool is not one)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def last_error_line(log: Path) -> str:
    """The trainer's `error:` line, else the log's last line (a traceback's exception)."""
    try:
        lines = [l.strip() for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[:300]
    return lines[-1][:300] if lines else "no output"


def progress(stage: Stage) -> tuple[int, list[dict]]:
    """(epochs the checkpoint holds, the metrics rows of those epochs)."""
    rows = read_metrics(stage.checkpoint.parent / "metrics.jsonl")
    done = checkpoint_epoch(stage.checkpoint)
    if done is None:
        return 0, []
    return done, [r for r in rows if r["epoch"] <= done]


def status_of(stage: Stage, done: int) -> tuple[str, str]:
    """(state, status text) of a stage."""
    if stage.given is not None:
        return "given", f"given ({stage.given})"
    if stage.reused:
        return "finished", "finished (earlier run)"
    if stage.not_started is not None:
        return "not_started", f"not started ({stage.not_started})"
    if stage.proc is None:
        return "pending", "pending"
    if stage.running:
        return "running", f"running (epoch {done} of {stage.epochs})"
    if stage.returncode == 0 and done >= stage.epochs:
        return "finished", "finished"
    if stage.stopped:
        return "stopped", f"stopped at epoch {done} of {stage.epochs}"
    if stage.returncode is not None and stage.returncode < 0:
        try:
            why = f"killed by {signal.Signals(-stage.returncode).name}"
        except ValueError:
            why = f"killed by signal {-stage.returncode}"
        return "failed", f"failed: {why} at epoch {done} of {stage.epochs}"
    if stage.returncode == 0:
        return "failed", f"failed: exited after epoch {done} of {stage.epochs}"
    return "failed", f"failed: {last_error_line(stage.out / LOG)}"


def row_of(stage: Stage, role: str) -> dict:
    """A stage's row of the summary: status, epochs, times, speed, validation top-1, files."""
    done, rows = progress(stage)
    state, status = status_of(stage, done)
    vals = [(r["epoch"], r["val_acc"]) for r in rows if is_finite(r.get("val_acc"))]
    speeds = [r["train_img_per_s"] for r in rows if is_finite(r.get("train_img_per_s"))]
    best = max(vals, key=lambda ev: ev[1]) if vals else None
    wall = None
    if stage.started is not None:
        wall = (stage.ended if stage.ended is not None else time.monotonic()) - stage.started
    return {
        "name": stage.name, "role": role, "state": state, "status": status,
        "epochs_done": done, "epochs": stage.epochs,
        "wall_s": round(wall, 1) if wall is not None else None,
        "train_s": round(sum(r["epoch_time_s"] for r in rows if is_finite(r.get("epoch_time_s"))), 1) if rows else None,
        "train_img_per_s": sum(speeds) / len(speeds) if speeds else None,
        "best_val_acc": best[1] if best else None, "best_epoch": best[0] if best else None,
        "last_val_acc": vals[-1][1] if vals else None, "last_val_epoch": vals[-1][0] if vals else None,
        "out": str(stage.checkpoint.parent), "checkpoint": str(stage.checkpoint) if done else None,
        "log": str(stage.out / LOG) if stage.proc is not None or (stage.out / LOG).is_file() else None,
        "config": str(stage.config_path) if stage.config_path is not None else None,
        "overrides": stage.sets, "returncode": stage.returncode,
    }


def percent(v, epoch=None) -> str:
    """An accuracy as the table shows it, "–" when there is none."""
    if v is None:
        return "–"
    return f"{100 * v:.2f} %" + (f" (ep {epoch})" if epoch is not None else "")


def markdown(summary: dict) -> str:
    """The table of OUT/sweep.md, as printed at the end."""
    lines = [f"# Sweep {summary['name']}", "",
             f"- command: `{summary['command']}`",
             f"- device: {summary['device']}, torch {summary['torch']}",
             f"- date: {summary['date']}; deadline {summary['deadline_s']:g} s, wall {summary['wall_s']:.0f} s"
             + ("" if summary["complete"] else " (still running)"),
             "- train img/s: the mean over the run's epochs, on a device shared with the runs that ran at "
             "the same time; validation top-1 on the held-out split of the training data (data.val_size)",
             "",
             "| run | status | epochs | wall | train img/s | best val top-1 | last val top-1 |",
             "|---|---|---|---|---|---|---|"]
    for r in ([summary["teacher"]] if summary["teacher"] else []) + summary["variants"]:
        wall = f"{r['wall_s']:.0f} s" if r["wall_s"] is not None else "–"
        speed = f"{r['train_img_per_s']:,.0f}" if r["train_img_per_s"] is not None else "–"
        lines.append(f"| {r['name']} | {r['status']} | {r['epochs_done']}/{r['epochs']} | {wall} | {speed} | "
                     f"{percent(r['best_val_acc'], r['best_epoch'])} | {percent(r['last_val_acc'])} |")
    return "\n".join(lines) + "\n"


def summary_of(sweep: Sweep, *, command: str, device: str, torch: str, date: str, wall_s: float,
               complete: bool) -> dict:
    """The sweep's record (OUT/sweep.json): its header and one row per stage."""
    return {
        "name": sweep.name, "sweep": str(sweep.path), "command": command, "device": device,
        "torch": torch, "date": date, "deadline_s": sweep.deadline_s, "grace_s": sweep.grace_s,
        "wall_s": wall_s, "complete": complete,
        "teacher": row_of(sweep.teacher, "teacher") if sweep.teacher is not None else None,
        "variants": [row_of(v, "variant") for v in sweep.variants],
    }


def write_summary(out: Path, summary: dict) -> None:
    """OUT/sweep.json and OUT/sweep.md, each written atomically."""
    atomic_write_text(out / "sweep.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out / "sweep.md", markdown(summary))
