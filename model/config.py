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

ARCHS = ("bireal", "resnet20", "resnet18", "airbench")
BLOCK_ORDERS = ("sign_conv_bn", "bn_sign_conv")   # model.student.BLOCK_ORDERS (no torch import here)
POST_ADDS = ("none", "affine", "rprelu")           # model.post_add: model/post_add.py
LR_SCHEDULES = ("cosine", "linear")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")
BINARIZE_ORDERS = ("weights_first", "activations_first")


@dataclass
class ModelConfig:
    arch: str = "bireal"
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    blocks: list[int] = field(default_factory=lambda: [1, 2, 2])  # binary convs per stage
    shortcut_bits: int = 4
    stem_kernel: int = 3
    sign_bias: bool = True
    num_classes: int = 10
    # sign_conv_bn: Bi-Real's order (its α does not learn); bn_sign_conv: XNOR-Net's order with a
    # learned L-XNOR α (model.student's doc says why)
    block_order: str = "sign_conv_bn"
    # a learnable per-channel increasing function after each residual add, ahead of the stage's
    # re-quantizer: none | affine (a·x + b, a > 0) | rprelu (ReActNet's RPReLU, both slopes > 0);
    # it lowers to per-channel integer thresholds (model/post_add.py)
    post_add: str = "none"
    # the activations feeding the binary convs: 1 = sign (±1, BipolarQuant in the export; XNOR
    # hardware); 2..4 = N-bit integers (QONNX Quant; the matrix unit's integer-input path), two's
    # complement unless act_signed is false, the narrow range (no most negative value / no top
    # value when unsigned) when act_narrow is true
    act_bits: int = 1
    act_signed: bool = True
    act_narrow: bool = False


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
    # the batch size `lr` was tuned at: the run's LR is scaled by batch_size / lr_batch_size
    # (SGD) or its square root (Adam); None = use lr as it is
    lr_batch_size: int | None = None
    lr_schedule: str = "cosine"      # cosine | linear: warm-up, then decay to 0 (restarted at the phase switch)
    weight_decay: float = 0.0
    weight_decay_phase2: float | None = None  # weight decay from the phase switch on; None = weight_decay
    momentum: float = 0.9
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    compile: bool = False            # torch.compile the training step (any device; CUDA is where it pays)
    compile_mode: str = "default"    # torch.compile mode: default | reduce-overhead (CUDA graphs) | max-autotune
    compile_backend: str = "inductor"  # torch.compile backend (aot_eager: traced, no code generation; tests)
    # evaluate (with BN re-estimation), checkpoint and plot every k epochs; always after the last
    eval_every: int = 1
    bf16: bool = True                # bf16 autocast (CUDA only)
    channels_last: bool = True       # (CUDA only)
    # Re-estimate BatchNorm statistics on this many (unaugmented) training images before each
    # evaluation: binary nets move fast and the running averages lag behind (0 = off).
    bn_recalibration_images: int = 2000


@dataclass
class BinarizeConfig:
    # Phase 1: binary weights, full-precision activations; phase 2: everything binary.
    # (the name is the default order's: with order activations_first these are the epochs with
    # binary activations and real weights)
    weights_only_epochs: int = 0
    order: str = "weights_first"     # weights_first (the seed's) | activations_first (ReActNet's two steps)


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
    if text == "float | None":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{path}' must be a number or null, got {value!r}")
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
        if m.block_order not in BLOCK_ORDERS:
            bad("model.block_order", m.block_order, f"choose one of {', '.join(BLOCK_ORDERS)}")
        if m.post_add not in POST_ADDS:
            bad("model.post_add", m.post_add, f"choose one of {', '.join(POST_ADDS)}")
        if m.block_order == "bn_sign_conv" and m.sign_bias:
            bad("model.sign_bias", m.sign_bias, "block order bn_sign_conv has no sign offset (its BatchNorm's "
                                                "bias is the offset): set model.sign_bias: false")
        if not 1 <= m.act_bits <= 4:
            bad("model.act_bits", m.act_bits, "activations are 1 bit (sign) or 2..4-bit integers")
        sign_only = "1-bit activations are the sign (±1); act_signed and act_narrow apply to 2..4 bits"
        if m.act_bits == 1 and not m.act_signed:
            bad("model.act_signed", m.act_signed, sign_only)
        if m.act_bits == 1 and m.act_narrow:
            bad("model.act_narrow", m.act_narrow, sign_only)
    if m.arch == "airbench":  # widths: channels per stage; blocks: 3x3 convs per stage (model.teachers.AirbenchNet)
        if not 1 <= len(m.widths) <= 4 or len(m.widths) != len(m.blocks):
            bad("model.widths", m.widths, f"airbench needs 1..4 stages (each halves 32x32) and one width per "
                                          f"stage; model.blocks has {len(m.blocks)} stages")
        if any(w < 1 for w in m.widths):
            bad("model.widths", m.widths, "widths must be positive")
        if any(n < 1 for n in m.blocks):
            bad("model.blocks", m.blocks, "each stage needs at least one conv")
    if m.arch != "bireal" and m.post_add != "none":
        bad("model.post_add", m.post_add, "only the bireal student has re-quantized residual adds")
    if m.arch != "bireal" and m.act_bits != 1:
        bad("model.act_bits", m.act_bits, "only the bireal student has quantized activations")
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
    if t.lr_batch_size is not None and t.lr_batch_size < 1:
        bad("train.lr_batch_size", t.lr_batch_size, "must be a positive batch size or null")
    if t.lr_schedule not in LR_SCHEDULES:
        bad("train.lr_schedule", t.lr_schedule, f"choose one of {', '.join(LR_SCHEDULES)}")
    for key in ("weight_decay", "weight_decay_phase2"):
        if (getattr(t, key) or 0) < 0:
            bad(f"train.{key}", getattr(t, key), "must be >= 0")
    if t.compile_backend not in COMPILE_BACKENDS:
        bad("train.compile_backend", t.compile_backend, f"choose one of {', '.join(COMPILE_BACKENDS)}")
    if t.compile_mode not in COMPILE_MODES:
        bad("train.compile_mode", t.compile_mode, f"choose one of {', '.join(COMPILE_MODES)}")
    if t.eval_every < 1:
        bad("train.eval_every", t.eval_every, "evaluate at least every epoch count >= 1")
    if b.order not in BINARIZE_ORDERS:
        bad("binarize.order", b.order, f"choose one of {', '.join(BINARIZE_ORDERS)}")
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


def read_yaml(path: str | Path, what: str) -> Any:
    """The YAML document in `path`; a missing file or bad YAML is a ConfigError naming the file
    (`what` says what the file is for: 'config file', 'sweep file', ...)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config; `overrides` maps dotted keys ('train.epochs') to values."""
    path = Path(path)
    data = read_yaml(path, "config file") or {}
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
