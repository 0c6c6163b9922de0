"""Train K student variants side by side on one GPU, against one teacher trained once, to a deadline.

    python -m model.sweep --sweep configs/sweeps/recipe-1.yaml --data DATA --out runs/sweep [--deadline-s S]

One small binary net leaves a large GPU mostly idle, so a sweep runs its variants as concurrent
`python -m model.train … --no-progress` processes on the one device:

1. It validates everything before it launches anything: the sweep file, and every stage's config,
   built with `model.config.load_config(base, overrides)`. A bad variant fails at once with an error
   that names the variant and the key.
2. It trains the teacher into OUT/teacher. A complete checkpoint there is reused and an incomplete one
   is resumed. A teacher checkpoint named in the sweep file is used as it is.
3. It launches all variants at once, each into OUT/<variant>/ with its own log (train.log).
4. At the deadline, counted from the command's start, it stops what still runs: SIGTERM to the run's
   process group, `grace_s` seconds, then SIGKILL. The trainer writes metrics.jsonl and checkpoint.pt at
   each epoch end (every `train.eval_every` epochs), each with an atomic temp-file-and-rename
   (model/atomic.py), so a stopped run keeps its last checkpointed epoch. The metrics are written before
   the checkpoint, so a kill between the two leaves the log ahead of the checkpoint: the summary counts
   the checkpoint's epoch and the rows up to it, as `--resume` does. A kill during a save can leave the save's temp file behind; the sweep removes it.
   The teacher stage is stopped the same way at `teacher.max_s` or at the deadline, whichever is first.
   A teacher stopped after at least one epoch still serves as the teacher.
5. It writes OUT/sweep.md and OUT/sweep.json atomically after every run's end and at the finish, and
   prints the table.

Sweep file (YAML; config paths are relative to the current directory, else to the sweep file):

    name: recipe-1                 # optional (default: the file's stem)
    deadline_s: 540                # the whole command, start-up included (--deadline-s overrides)
    grace_s: 15                    # SIGTERM -> SIGKILL (default 15)
    teacher:                       # optional; without it each variant keeps its config's distill.teacher
      config: configs/teacher-resnet18.yaml
      epochs: 15                   # optional, like model.train --epochs
      set: {train.lr: 0.2}         # optional --set overrides
      max_s: 120                   # optional: stop the teacher stage after this many seconds
      # or, instead of config/epochs/set/max_s:  checkpoint: path/to/teacher/checkpoint.pt
    student:
      config: configs/student-flagship.yaml
      set: {}                      # optional, for every variant
    variants:
      - name: lam1                 # the run's folder OUT/<name>
        epochs: 40                 # optional, like model.train --epochs (phase 1 keeps its share)
        set: {distill.lam: 1.0}    # optional, dotted config keys

A stopped variant's cosine schedule is cut short, so its accuracy is not that of a shorter complete
run: size the variants' epochs to fit, and treat the deadline as a safety net.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .atomic import atomic_write_text
from .config import Config, load_config
from .errors import CheckpointError, ConfigError, DataError, run_cli

CHECKPOINT = "checkpoint.pt"  # model.train.CHECKPOINT (not imported from there: that pulls in torch)
LOG = "train.log"
RESERVE_S = 5.0               # kept after the SIGKILL for the summary
POLL_S = 0.25
HEARTBEAT_S = 60.0
DEFAULT_GRACE_S = 15.0
RESERVED = {"teacher", "sweep.md", "sweep.json"}
TOP_KEYS = ("name", "deadline_s", "grace_s", "teacher", "student", "variants")
TEACHER_KEYS = ("config", "epochs", "set", "max_s", "checkpoint")
STUDENT_KEYS = ("config", "set")
VARIANT_KEYS = ("name", "epochs", "set")
PROBE = ("import os, torch; print(torch.__version__); "
         "print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else f'cpu ({os.cpu_count()} cores)')")


# ---------------------------------------------------------------- the sweep file

@dataclass
class Stage:
    """One training run of the sweep (the teacher or a variant) and, once launched, its process."""
    name: str
    out: Path
    config_path: Path | None = None
    cfg: Config | None = None
    sets: dict[str, Any] = field(default_factory=dict)  # passed as --set KEY=VALUE
    data: str | None = None                               # --data
    teacher: str | None = None                            # --teacher
    given: Path | None = None      # a teacher checkpoint named by the sweep file (not trained here)
    max_s: float | None = None
    resume: bool = False           # an incomplete checkpoint of the same config is in `out`
    reused: bool = False           # a complete one is
    # at run time
    proc: subprocess.Popen | None = None
    started: float | None = None
    ended: float | None = None
    returncode: int | None = None
    stopped: bool = False
    not_started: str | None = None

    @property
    def epochs(self) -> int:
        return self.cfg.train.epochs if self.cfg is not None else 0

    @property
    def checkpoint(self) -> Path:
        return self.given if self.given is not None else self.out / CHECKPOINT

    @property
    def running(self) -> bool:
        return self.proc is not None and self.returncode is None

    def command(self, python: str = sys.executable) -> list[str]:
        cmd = [python, "-m", "model.train", "--config", str(self.config_path), "--out", str(self.out), "--no-progress"]
        if self.data is not None:
            cmd += ["--data", self.data]
        if self.teacher is not None:
            cmd += ["--teacher", self.teacher]
        for key, value in self.sets.items():
            cmd += ["--set", f"{key}={yaml_value(value)}"]
        if self.resume:
            cmd.append("--resume")
        return cmd


@dataclass
class Sweep:
    path: Path
    name: str
    deadline_s: float
    grace_s: float
    out: Path
    teacher: Stage | None
    variants: list[Stage]


def yaml_value(value: Any) -> str:
    """`value` as the trainer's --set parses it back (yaml.safe_load); PyYAML keeps a float a float
    (1e-05 -> 1.0e-05), which json.dumps would not."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30)
    if text.endswith("\n...\n"):
        text = text[:-len("\n...\n")]
    return text.strip()


def _fail(sweep: Path, where: str, why: str):
    raise ConfigError(f"{sweep}: {where}: {why}" if where else f"{sweep}: {why}")


def _mapping(value, sweep: Path, where: str, keys: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        _fail(sweep, where, f"must be a mapping, got {type(value).__name__}")
    unknown = [k for k in value if k not in keys]
    if unknown:
        _fail(sweep, where, f"unknown key '{unknown[0]}' (known here: {', '.join(keys)})")
    return value


def _number(value, sweep: Path, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        _fail(sweep, where, f"must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def _epochs(value, sweep: Path, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(sweep, where, f"must be a positive integer, got {value!r}")
    return value


def _sets(value, sweep: Path, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(sweep, where, f"must be a mapping of dotted config keys to values, got {type(value).__name__}")
    for key, v in value.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            _fail(sweep, where, f"'{key}' is not a dotted config key (e.g. train.lr)")
        try:
            same = yaml.safe_load(yaml_value(v)) == v
        except yaml.YAMLError:
            same = False
        if not same:
            _fail(sweep, f"{where}.{key}", f"{v!r} does not survive the trainer's --set parsing")
    return dict(value)


def _config_path(value, sweep: Path, where: str) -> Path:
    if not isinstance(value, str) or not value:
        _fail(sweep, where, f"must be a config path, got {value!r}")
    path = Path(value)
    if not path.is_absolute() and not path.exists() and (sweep.parent / path).exists():
        return sweep.parent / path
    return path  # load_config names a missing file


def resolve(config_path: Path, sets: dict[str, Any], epochs: int | None, paths: dict[str, Any],
            sweep: Path, where: str) -> tuple[Config, dict[str, Any]]:
    """The config a stage trains, and its --set overrides. `epochs` follows model.train --epochs:
    binarize.weights_only_epochs keeps its share of the schedule unless it is set explicitly; the
    sweep passes the resolved value with --set, so what runs is what was validated here."""
    sets = dict(sets)
    try:
        if epochs is not None:
            if "train.epochs" in sets and sets["train.epochs"] != epochs:
                _fail(sweep, where, f"epochs {epochs} and set train.epochs {sets['train.epochs']!r} disagree")
            sets["train.epochs"] = epochs
            if "binarize.weights_only_epochs" not in sets:
                base = load_config(config_path, {**{k: v for k, v in sets.items() if k != "train.epochs"}, **paths})
                share = base.binarize.weights_only_epochs / base.train.epochs
                sets["binarize.weights_only_epochs"] = min(epochs, round(share * epochs))
        cfg = load_config(config_path, {**sets, **paths})
    except ConfigError as exc:
        if str(exc).startswith(f"{sweep}:"):
            raise
        raise ConfigError(f"{sweep}: {where}: {exc}") from None
    return cfg, sets


def _check_previous(stage: Stage, sweep: Path, where: str) -> None:
    """A checkpoint already in the stage's folder: reuse it when complete, resume it when not;
    one of another config is refused before anything is launched."""
    ckpt = stage.out / CHECKPOINT
    if not ckpt.exists():
        return
    from .checkpoint import checkpoint_config, load_checkpoint
    try:
        state = load_checkpoint(ckpt)
        recorded = checkpoint_config(state, ckpt)
    except CheckpointError as exc:
        _fail(sweep, where, f"{exc}; delete {stage.out} or use another --out")
    if recorded.to_dict() != stage.cfg.to_dict():
        _fail(sweep, where, f"{ckpt} was trained with another config than this sweep's; "
                            f"delete {stage.out} or use another --out")
    if state["epoch"] >= stage.epochs:
        stage.reused = True
    else:
        stage.resume = True


def load_sweep(path: str | Path, data: str | None, out: str | Path, deadline_s: float | None = None) -> Sweep:
    """Read and validate a sweep file, building every stage's config; nothing is launched."""
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise ConfigError(f"{path}: sweep file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    doc = _mapping(doc, path, "top level", TOP_KEYS)
    name = doc.get("name", path.stem)
    if not isinstance(name, str) or not name:
        _fail(path, "name", f"must be a string, got {name!r}")
    grace = _number(doc.get("grace_s", DEFAULT_GRACE_S), path, "grace_s")
    if deadline_s is None:
        if "deadline_s" not in doc:
            _fail(path, "", "no deadline_s (seconds for the whole command); set it or pass --deadline-s")
        deadline_s = _number(doc["deadline_s"], path, "deadline_s")
    else:
        deadline_s = _number(deadline_s, path, "--deadline-s")
    if deadline_s <= grace + RESERVE_S:
        _fail(path, "deadline_s", f"{deadline_s:g} s leaves no time to train: it must exceed grace_s + "
                                  f"{RESERVE_S:g} s ({grace + RESERVE_S:g} s)")
    if data is not None and not Path(data).expanduser().exists():
        raise DataError(f"{data}: no such file or directory")

    def paths_for(teacher: str | None) -> dict[str, Any]:
        p: dict[str, Any] = {}
        if data is not None:
            p["data.path"] = data
        if teacher is not None:
            p["distill.teacher"] = teacher
        return p

    def need_data(stage: Stage, where: str) -> None:
        if stage.cfg.data.path is None:
            _fail(path, where, "no training data: pass --data (DATA=) or set data.path")

    # teacher
    teacher, teacher_ckpt = None, None
    if doc.get("teacher") is not None:
        t = _mapping(doc["teacher"], path, "teacher", TEACHER_KEYS)
        if "checkpoint" in t:
            extra = [k for k in t if k != "checkpoint"]
            if extra:
                _fail(path, "teacher", f"'checkpoint' reuses a trained teacher; '{extra[0]}' cannot go with it")
            given = t["checkpoint"]
            if not isinstance(given, str) or not given:
                _fail(path, "teacher.checkpoint", f"must be a checkpoint path, got {given!r}")
            from .checkpoint import checkpoint_config, load_checkpoint
            try:
                cfg = checkpoint_config(load_checkpoint(given), given)
            except CheckpointError as exc:
                _fail(path, "teacher.checkpoint", str(exc))
            teacher = Stage("teacher", Path(given).parent, cfg=cfg, given=Path(given))
            teacher_ckpt = given
        else:
            if "config" not in t:
                _fail(path, "teacher", "needs 'config' (train one) or 'checkpoint' (reuse one)")
            cpath = _config_path(t["config"], path, "teacher.config")
            cfg, sets = resolve(cpath, _sets(t.get("set"), path, "teacher.set"),
                                _epochs(t.get("epochs"), path, "teacher.epochs"), paths_for(None), path, "teacher")
            max_s = _number(t["max_s"], path, "teacher.max_s", 1.0) if t.get("max_s") is not None else None
            teacher = Stage("teacher", out / "teacher", cpath, cfg, sets, data, max_s=max_s)
            need_data(teacher, "teacher")
            teacher_ckpt = str(out / "teacher" / CHECKPOINT)

    # students
    if "student" not in doc:
        _fail(path, "", "no 'student' section (config: the base student config)")
    s = _mapping(doc["student"], path, "student", STUDENT_KEYS)
    if "config" not in s:
        _fail(path, "student", "needs 'config' (the base student config)")
    base = _config_path(s["config"], path, "student.config")
    common = _sets(s.get("set"), path, "student.set")
    items = doc.get("variants")
    if not isinstance(items, list) or not items:
        _fail(path, "variants", "must be a non-empty list of {name, epochs, set}")
    variants, seen = [], set()
    for i, item in enumerate(items):
        v = _mapping(item, path, f"variants[{i}]", VARIANT_KEYS)
        vname = v.get("name")
        if not isinstance(vname, str) or not vname or vname.startswith((".", "-")) or \
                not all(c.isalnum() or c in "._-" for c in vname):
            _fail(path, f"variants[{i}].name", f"{vname!r} is not a folder name (letters, digits, . _ -)")
        if vname in RESERVED:
            _fail(path, f"variant '{vname}'", f"the name '{vname}' is reserved")
        if vname in seen:
            _fail(path, f"variant '{vname}'", "duplicate name")
        seen.add(vname)
        where = f"variant '{vname}'"
        sets = {**common, **_sets(v.get("set"), path, f"{where}: set")}
        cfg, sets = resolve(base, sets, _epochs(v.get("epochs"), path, f"{where}: epochs"),
                            paths_for(teacher_ckpt), path, where)
        stage = Stage(vname, out / vname, base, cfg, sets, data, teacher_ckpt)
        need_data(stage, where)
        if teacher is None and cfg.distill.teacher is not None and not Path(cfg.distill.teacher).is_file():
            _fail(path, where, f"distill.teacher {cfg.distill.teacher}: checkpoint not found "
                               f"(add a teacher section to train one)")
        variants.append(stage)

    # runs already in OUT (after all configs are known to be valid)
    if teacher is not None and teacher.given is None:
        _check_previous(teacher, path, "teacher")
    for v in variants:
        _check_previous(v, path, f"variant '{v.name}'")
    return Sweep(path, name, deadline_s, grace, out, teacher, variants)


# ---------------------------------------------------------------- what a run left behind

def read_metrics(path: Path) -> list[dict]:
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
    from .checkpoint import load_checkpoint
    try:
        return int(load_checkpoint(path)["epoch"])
    except (CheckpointError, ValueError, TypeError):
        return None


def _finite(v) -> bool:
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
    done, rows = progress(stage)
    state, status = status_of(stage, done)
    vals = [(r["epoch"], r["val_acc"]) for r in rows if _finite(r.get("val_acc"))]
    speeds = [r["train_img_per_s"] for r in rows if _finite(r.get("train_img_per_s"))]
    best = max(vals, key=lambda ev: ev[1]) if vals else None
    wall = None
    if stage.started is not None:
        wall = (stage.ended if stage.ended is not None else time.monotonic()) - stage.started
    return {
        "name": stage.name, "role": role, "state": state, "status": status,
        "epochs_done": done, "epochs": stage.epochs,
        "wall_s": round(wall, 1) if wall is not None else None,
        "train_s": round(sum(r["epoch_time_s"] for r in rows if _finite(r.get("epoch_time_s"))), 1) if rows else None,
        "train_img_per_s": sum(speeds) / len(speeds) if speeds else None,
        "best_val_acc": best[1] if best else None, "best_epoch": best[0] if best else None,
        "last_val_acc": vals[-1][1] if vals else None, "last_val_epoch": vals[-1][0] if vals else None,
        "out": str(stage.checkpoint.parent), "checkpoint": str(stage.checkpoint) if done else None,
        "log": str(stage.out / LOG) if stage.proc is not None or (stage.out / LOG).is_file() else None,
        "config": str(stage.config_path) if stage.config_path is not None else None,
        "overrides": stage.sets, "returncode": stage.returncode,
    }


def _die_with_parent():
    """A preexec_fn that has the kernel SIGTERM the run when the sweep dies (Linux), so that runs in
    their own process groups do not outlive a sweep that was killed outright."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# ---------------------------------------------------------------- the summary

def _pct(v, epoch=None) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.2f} %" + (f" (ep {epoch})" if epoch is not None else "")


def markdown(summary: dict) -> str:
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
                     f"{_pct(r['best_val_acc'], r['best_epoch'])} | {_pct(r['last_val_acc'])} |")
    return "\n".join(lines) + "\n"


class Runner:
    def __init__(self, sweep: Sweep, t0: float, command: str, python: str = sys.executable):
        self.sweep, self.t0, self.command, self.python = sweep, t0, command, python
        self.stop_at = t0 + sweep.deadline_s - sweep.grace_s - RESERVE_S
        self.date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        self.probe: subprocess.Popen | None = None
        self.device = self.torch = "unknown"
        self.last_beat = t0

    # -- output
    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.0f} s] {text}", flush=True)

    def read_probe(self, wait_s: float) -> None:
        if self.probe is None:
            return
        try:
            out, _ = self.probe.communicate(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return
        lines = out.decode(errors="replace").split("\n") if out else []
        if len(lines) >= 2 and lines[0].strip():
            self.torch, self.device = lines[0].strip(), lines[1].strip()
        self.probe = None

    def summary(self, complete: bool) -> dict:
        self.read_probe(3.0 if complete else 0.0)
        s = self.sweep
        return {
            "name": s.name, "sweep": str(s.path), "command": self.command, "device": self.device,
            "torch": self.torch, "date": self.date, "deadline_s": s.deadline_s, "grace_s": s.grace_s,
            "wall_s": round(time.monotonic() - self.t0, 1), "complete": complete,
            "teacher": row_of(s.teacher, "teacher") if s.teacher is not None else None,
            "variants": [row_of(v, "variant") for v in s.variants],
        }

    def write(self, complete: bool) -> dict:
        summary = self.summary(complete)
        atomic_write_text(self.sweep.out / "sweep.json", json.dumps(summary, indent=2) + "\n")
        atomic_write_text(self.sweep.out / "sweep.md", markdown(summary))
        return summary

    # -- processes
    def launch(self, stage: Stage, threads: int | None = None) -> None:
        stage.out.mkdir(parents=True, exist_ok=True)
        cmd = stage.command(self.python)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if threads is not None and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(threads)  # K processes share the CPU cores too
        with open(stage.out / LOG, "a" if stage.resume else "w") as log:
            log.write(f"$ {shlex.join(cmd)}\n")
            log.flush()
            stage.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, start_new_session=True,  # its own process group
                                          preexec_fn=_die_with_parent())
        stage.started = time.monotonic()
        self.say(f"{stage.name}: started{' (resuming)' if stage.resume else ''}, {stage.epochs} epochs, "
                 f"log {stage.out / LOG}")
        from . import checkpoint  # noqa: F401  torch, to read the runs' checkpoints: imported while they start

    def reap(self, stage: Stage) -> bool:
        """Record the exit of a stage's process; True once it has ended."""
        if stage.returncode is None and stage.proc is not None:
            rc = stage.proc.poll()
            if rc is None:
                return False
            stage.returncode, stage.ended = rc, time.monotonic()
            if stage.stopped:
                for tmp in stage.out.glob(".*.tmp"):  # a kill during an atomic save leaves its temp file
                    tmp.unlink(missing_ok=True)
            r = row_of(stage, "run")
            val = f", last val {_pct(r['last_val_acc'])}" if r["last_val_acc"] is not None else ""
            done = f", {r['epochs_done']}/{r['epochs']} epochs" if r["state"] == "finished" else ""
            self.say(f"{stage.name}: {r['status']}{done}{val}")
            self.write(complete=False)
        return True

    @staticmethod
    def _signal(stage: Stage, sig: int) -> None:
        try:
            os.killpg(stage.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, stages: list[Stage], grace_s: float) -> None:
        """SIGTERM to each run's process group, `grace_s` seconds, then SIGKILL."""
        live = [s for s in stages if s.running]
        if not live:
            return
        for s in live:
            s.stopped = True
            self._signal(s, signal.SIGTERM)
        self.say(f"stopping {', '.join(s.name for s in live)} (SIGTERM, then SIGKILL after {grace_s:g} s)")
        end = time.monotonic() + grace_s
        while any(s.proc.poll() is None for s in live) and time.monotonic() < end:
            time.sleep(0.05)
        for s in live:
            if s.proc.poll() is None:
                self._signal(s, signal.SIGKILL)
            s.proc.wait()
            self._signal(s, signal.SIGKILL)  # anything the run itself started (compile workers)
            self.reap(s)

    def heartbeat(self, stages: list[Stage]) -> None:
        now = time.monotonic()
        if now - self.last_beat < HEARTBEAT_S:
            return
        self.last_beat = now
        parts = []
        for s in stages:
            if s.running:
                rows = read_metrics(s.out / "metrics.jsonl")
                last = rows[-1] if rows else None
                val = f" val {100 * last['val_acc']:.2f} %" if last and _finite(last.get("val_acc")) else ""
                parts.append(f"{s.name} epoch {last['epoch'] if last else 0}/{s.epochs}{val}")
        if parts:
            self.say("; ".join(parts))

    def wait(self, stages: list[Stage], until: float) -> None:
        """Until every stage has ended, or `until`; then stop what still runs."""
        while True:
            if all([self.reap(s) for s in stages]):
                return
            if time.monotonic() >= until:
                self.stop(stages, self.sweep.grace_s)
                return
            self.heartbeat(stages)
            time.sleep(POLL_S)

    # -- the stages
    def run_teacher(self) -> str | None:
        """None when the students can start, else why not."""
        t = self.sweep.teacher
        if t is None:
            return None
        if t.given is not None or t.reused:
            self.say(f"teacher: {status_of(t, t.epochs)[1]}, {t.checkpoint}")
            return None
        self.launch(t)
        until = self.stop_at if t.max_s is None else min(self.stop_at, t.started + t.max_s)
        self.wait([t], until)
        done, _ = progress(t)
        if t.returncode == 0 and done >= t.epochs:
            return None
        if t.stopped and done >= 1 and time.monotonic() < self.stop_at:
            self.say(f"teacher: stopped at epoch {done} of {t.epochs} (teacher.max_s {t.max_s:g} s); "
                     f"the students distill from that checkpoint")
            return None
        if t.stopped:
            return "the deadline came during the teacher stage" if time.monotonic() >= self.stop_at else \
                f"the teacher had no checkpoint after teacher.max_s {t.max_s:g} s"
        return "the teacher failed"

    def run(self) -> int:
        s = self.sweep
        s.out.mkdir(parents=True, exist_ok=True)
        self.probe = subprocess.Popen([self.python, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      stdin=subprocess.DEVNULL)
        self.say(f"sweep {s.name}: {len(s.variants)} variants, deadline {s.deadline_s:g} s "
                 f"(runs stopped from {self.stop_at - self.t0:.0f} s on), out {s.out}")
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main_thread else None

        def on_sigterm(signum, frame):
            raise KeyboardInterrupt

        if main_thread:
            signal.signal(signal.SIGTERM, on_sigterm)
        try:
            self.write(complete=False)
            why = self.run_teacher()
            pending = [v for v in s.variants if not v.reused]
            if why is not None:
                for v in pending:
                    v.not_started = why
            elif pending:
                if time.monotonic() >= self.stop_at:
                    for v in pending:
                        v.not_started = "the deadline came before the variants"
                else:
                    threads = max(1, (os.cpu_count() or 1) // len(pending))
                    for v in pending:
                        self.launch(v, threads)
                    self.wait(pending, self.stop_at)
        except KeyboardInterrupt:
            self.say("interrupted: stopping the runs")
            everything = ([s.teacher] if s.teacher is not None else []) + s.variants
            self.stop(everything, min(s.grace_s, 5.0))
            for v in everything:
                if v.proc is None and not v.reused and v.given is None:
                    v.not_started = "interrupted"
            self.write(complete=True)
            raise
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
            if self.probe is not None and self.probe.poll() is None:
                self.probe.kill()
                self.probe.wait()
        summary = self.write(complete=True)
        print("\n" + markdown(summary), flush=True)
        print(f"wrote {s.out / 'sweep.md'} and {s.out / 'sweep.json'}", flush=True)
        if any(r["epochs_done"] >= 1 for r in summary["variants"]):
            return 0
        t = summary["teacher"]
        reason = why if why is not None else "no variant completed an epoch"
        if why == "the teacher failed" and t is not None:
            reason += f" ({t['status']})"
        print(f"error: no variant produced metrics: {reason}; see {s.out / 'sweep.md'}", file=sys.stderr)
        return 1


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(prog="python -m model.sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", required=True, help="sweep file (YAML), e.g. configs/sweeps/recipe-1.yaml")
    ap.add_argument("--data", help="training data for every run (overrides data.path)")
    ap.add_argument("--out", required=True, help="sweep folder: teacher/, one folder per variant, sweep.md, sweep.json")
    ap.add_argument("--deadline-s", type=float, help="seconds for the whole command (overrides the file's deadline_s)")
    ap.add_argument("--dry-run", action="store_true", help="validate and print the commands; launch nothing")
    args = ap.parse_args(argv)
    sweep = load_sweep(args.sweep, args.data, args.out, args.deadline_s)
    if args.dry_run:
        stages = ([sweep.teacher] if sweep.teacher is not None else []) + sweep.variants
        for st in stages:
            state = status_of(st, st.epochs)[1] if (st.given or st.reused) else \
                ("resume" if st.resume else "train") + f" {st.epochs} epochs"
            print(f"{st.name}: {state}" + ("" if st.given or st.reused else f"\n  {shlex.join(st.command('python'))}"))
        print(f"deadline {sweep.deadline_s:g} s: runs stopped at {sweep.deadline_s - sweep.grace_s - RESERVE_S:g} s "
              f"(SIGTERM), killed {sweep.grace_s:g} s later")
        return 0
    command = shlex.join(["python", "-m", "model.sweep", *argv])
    return Runner(sweep, t0, command).run()


if __name__ == "__main__":
    run_cli(main)
