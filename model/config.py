"""Run configuration: YAML files under configs/, validated into dataclasses.

A run records its fully resolved config next to its outputs (config.yaml) and in
every checkpoint, so the config is the one source of truth for what was trained.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from .errors import ConfigError

ARCHS = ("bireal", "resnet20", "resnet18")


@dataclass
class ModelConfig:
    arch: str = "bireal"
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    blocks: list[int] = field(default_factory=lambda: [1, 2, 2])  # binary convs per stage
    shortcut_bits: int = 4
    stem_kernel: int = 3
    sign_bias: bool = True
    num_classes: int = 10


@dataclass
class DataConfig:
    path: str | None = None          # cifar-10-batches-py dir, ImageFolder dir, or zip of one
    val_size: int = 5000             # stratified validation split taken from the training set
    split_seed: int = 0
    crop_pad: int = 4
    flip: bool = True
    limit_per_class: int | None = None  # first k images per class (tests, quick looks)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 500
    optimizer: str = "adam"          # adam | sgd
    lr: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    compile: bool = False            # torch.compile (CUDA only)
    bf16: bool = True                # bf16 autocast (CUDA only)
    channels_last: bool = True       # (CUDA only)
    # Re-estimate BatchNorm statistics on this many (unaugmented) training images before each
    # evaluation: binary nets move fast and the running averages lag behind (0 = off).
    bn_recalibration_images: int = 2000


@dataclass
class BinarizeConfig:
    # Phase 1: binary weights, full-precision activations; phase 2: everything binary.
    weights_only_epochs: int = 0


@dataclass
class DistillConfig:
    teacher: str | None = None       # teacher checkpoint path; None = plain cross-entropy
    lam: float = 0.9                 # λ in (1-λ)·CE + λ·T²·KL
    temperature: float = 4.0
    feature_weight: float = 0.0      # attention-transfer loss at matching stage outputs


@dataclass
class Config:
    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    binarize: BinarizeConfig = field(default_factory=BinarizeConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, data: dict, where: str, source: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{where or 'top level'}' must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in known:
            raise ConfigError(f"{source}: unknown config key '{path}' (known here: {', '.join(sorted(known))})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path, source)
        else:
            kwargs[key] = _coerce(value, hint, path, source)
    return cls(**kwargs)


def _coerce(value, hint, path: str, source: str):
    text = str(hint)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"{source}: '{path}' must not be empty")
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{path}' must be true or false, got {value!r}")
        return value
    if hint is int or text == "int | None":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{path}' must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{path}' must be a number, got {value!r}")
        return float(value)
    if hint is str or text == "str | None":
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{path}' must be a string, got {value!r}")
        return value
    if text == "list[int]":
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{source}: '{path}' must be a list of integers, got {value!r}")
        return value
    raise AssertionError(f"unhandled config type {hint} for {path}")


def validate(cfg: Config, source: str) -> Config:
    """Reject configs that cannot be built or trained, naming the key and value."""
    m, t, b, d = cfg.model, cfg.train, cfg.binarize, cfg.distill

    def bad(key, value, why):
        raise ConfigError(f"{source}: {key} = {value!r} is impossible: {why}")

    if m.arch not in ARCHS:
        bad("model.arch", m.arch, f"choose one of {', '.join(ARCHS)}")
    if m.arch == "bireal":
        if not 2 <= m.shortcut_bits <= 8:
            bad("model.shortcut_bits", m.shortcut_bits, "the shortcut quantizer needs 2..8 bits (4..8 recommended)")
        if not m.widths or len(m.widths) != len(m.blocks):
            bad("model.widths", m.widths, f"needs one width per stage and model.blocks has {len(m.blocks)} stages")
        if any(w <= 0 for w in m.widths):
            bad("model.widths", m.widths, "widths must be positive")
        for i in range(1, len(m.widths)):
            if m.widths[i] != 2 * m.widths[i - 1]:
                bad("model.widths", m.widths, "each stage doubles the width (the shortcut duplicates channels)")
        if any(n < 1 for n in m.blocks):
            bad("model.blocks", m.blocks, "each stage needs at least one block")
        if 2 ** (len(m.widths) - 1) > 32:
            bad("model.widths", m.widths, "too many stages for 32x32 inputs")
        if m.stem_kernel not in (1, 3, 5, 7):
            bad("model.stem_kernel", m.stem_kernel, "use an odd kernel 1..7")
    if m.num_classes < 2:
        bad("model.num_classes", m.num_classes, "needs at least 2 classes")
    if t.epochs < 1:
        bad("train.epochs", t.epochs, "train at least one epoch")
    if t.batch_size < 1 or t.eval_batch_size < 1:
        bad("train.batch_size", t.batch_size, "must be positive")
    if t.optimizer not in ("adam", "sgd"):
        bad("train.optimizer", t.optimizer, "choose adam or sgd")
    if t.lr <= 0:
        bad("train.lr", t.lr, "must be positive")
    if t.bn_recalibration_images < 0:
        bad("train.bn_recalibration_images", t.bn_recalibration_images, "must be >= 0")
    if not 0 <= b.weights_only_epochs <= t.epochs:
        bad("binarize.weights_only_epochs", b.weights_only_epochs, f"must lie in 0..train.epochs ({t.epochs})")
    if m.arch != "bireal" and b.weights_only_epochs:
        bad("binarize.weights_only_epochs", b.weights_only_epochs, "only the bireal student binarizes")
    if not 0 <= d.lam <= 1:
        bad("distill.lam", d.lam, "λ must lie in [0, 1]")
    if d.temperature <= 0:
        bad("distill.temperature", d.temperature, "must be positive")
    if d.feature_weight < 0:
        bad("distill.feature_weight", d.feature_weight, "must be >= 0")
    if cfg.data.val_size < 0:
        bad("data.val_size", cfg.data.val_size, "must be >= 0")
    return cfg


def config_from_dict(data: dict, source: str = "<config>") -> Config:
    return validate(_build(Config, data, "", source), source)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config; `overrides` maps dotted keys ('train.epochs') to values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return config_from_dict(data, str(path))


def save_config(cfg: Config, path: str | Path) -> None:
    from .atomic import atomic_write_text
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
