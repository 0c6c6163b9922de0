"""Checkpoints: one file holding everything a run needs to resume or to be deployed.

Written atomically (temp file + rename), so an interrupted save never leaves a
half-written checkpoint behind. Each checkpoint carries a SHA-256 digest of its contents
(every tensor's dtype, shape and bytes, every other value's repr): torch's zip reader does not
check its entries' CRCs, so bytes corrupted inside a tensor would otherwise load as different
weights. Checkpoints written before the digest existed load unchecked.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_write
from .config import Config, config_from_dict
from .errors import CheckpointError, FlowError
from .factory import build_model
from .phases import set_phase

FORMAT = "bnn-flow-checkpoint"
VERSION = 1


def _digest(obj: Any) -> str:
    """SHA-256 of a checkpoint's contents, independent of how torch serializes them."""
    h = hashlib.sha256()

    def feed(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous().reshape(-1)
            h.update(f"T{t.dtype}{tuple(x.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            h.update(b"D")
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(b"L")
            for v in x:
                feed(v)
        else:
            h.update(repr(x).encode())

    feed(obj)
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    state = {"format": FORMAT, "version": VERSION, **state}
    state["digest"] = _digest({k: v for k, v in state.items() if k != "digest"})
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # arbitrary bytes reach the unpickler, which can raise anything (IndexError, KeyError, ...)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: {first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')} is not supported (expected {VERSION})")
    for key in ("config", "model", "epoch", "phase"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint has no '{key}' entry")
    if "digest" in state and state["digest"] != _digest({k: v for k, v in state.items() if k != "digest"}):
        raise CheckpointError(f"{path}: checkpoint is corrupt (its contents do not match the digest it was saved with)")
    return state


def checkpoint_config(state: dict[str, Any], path: str | Path) -> Config:
    try:
        return config_from_dict(state["config"], f"{path} (recorded config)")
    except FlowError as exc:
        raise CheckpointError(str(exc)) from None


def load_model_state(model: nn.Module, state_dict: dict, path: str | Path) -> None:
    """load_state_dict with a one-line error naming the first mismatching entry.

    (Brevitas leaves a weight scale out of `state_dict()` until its first forward pass,
    so the comparison is left to `load_state_dict(strict=True)`, which knows that.)"""
    try:
        result = model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else "mismatch"
        raise CheckpointError(f"{path}: weights do not match the model ({detail[:300]})") from None
    if result.missing_keys or result.unexpected_keys:  # pragma: no cover - strict=True raises first
        raise CheckpointError(f"{path}: weights do not match the model")


def load_trained_model(path: str | Path) -> tuple[nn.Module, Config, dict[str, Any]]:
    """Model (in eval mode, in its recorded phase), its config and the raw checkpoint."""
    state = load_checkpoint(path)
    cfg = checkpoint_config(state, path)
    model = build_model(cfg.model)
    load_model_state(model, state["model"], path)
    if cfg.model.arch == "bireal":
        if state["phase"] not in (1, 2):
            raise CheckpointError(f"{path}: phase {state['phase']!r} is not a binarization phase (1 or 2)")
        set_phase(model, state["phase"], cfg.binarize.order)
    model.eval()
    return model, cfg, state
