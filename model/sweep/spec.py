"""The sweep file: its format, its validation, and the stages (the teacher, the variants) it describes.

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

load_sweep builds every stage's config with `model.config.load_config(base, overrides)` before anything
is launched, so a bad variant fails at once with an error that names the variant and the key. A checkpoint
already in a stage's folder is reused when complete and resumed when not.
"""
from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, load_config, read_yaml
from ..errors import CheckpointError, ConfigError, DataError

CHECKPOINT = "checkpoint.pt"  # model.train.CHECKPOINT (not imported from there: that pulls in torch)
LOG = "train.log"
RESERVE_S = 5.0               # kept after the SIGKILL for the summary (the deadline must leave room for it)
DEFAULT_GRACE_S = 15.0
RESERVED = {"teacher", "sweep.md", "sweep.json"}
TOP_KEYS = ("name", "deadline_s", "grace_s", "teacher", "student", "variants")
TEACHER_KEYS = ("config", "epochs", "set", "max_s", "checkpoint")
STUDENT_KEYS = ("config", "set")
VARIANT_KEYS = ("name", "epochs", "set")


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
    # at run time (set by the runner)
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
    """A validated sweep file: its deadline and its stages, every config built."""
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
    from ..checkpoint import checkpoint_config, load_checkpoint
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
    doc = read_yaml(path, "sweep file")
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
            from ..checkpoint import checkpoint_config, load_checkpoint
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
