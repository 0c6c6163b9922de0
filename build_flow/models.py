"""Which network a compile/verify run uses: a checkpoint, a student config with random
weights, or a peer network from brevitas_examples.bnn_pynq (CNV_1W1A, TFC_1W1A, ...).

Random networks get randomized BatchNorm statistics and affine parameters (negative γ
included), so that every threshold direction is exercised.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.errors import ConfigError

from .options import check_model_choice
from model.quantizers import InputQuant

PEERS = ("cnv_1w1a", "cnv_1w2a", "cnv_2w2a", "tfc_1w1a", "tfc_1w2a", "tfc_2w2a", "sfc_1w1a", "sfc_1w2a", "sfc_2w2a",
         "lfc_1w1a", "lfc_1w2a")


@dataclass
class Selected:
    model: nn.Module          # eval mode, takes raw pixel values (0..255) as float NCHW
    input_shape: tuple        # (C, H, W)
    name: str                 # for tables and folder names
    kind: str                 # "checkpoint" | "config" | "peer"


def randomize_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Random running statistics and affine parameters (negative γ included) and sign offsets."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=g) * 2)
                mod.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.3)
                mod.weight.copy_(torch.randn(n, generator=g))
                mod.bias.copy_(torch.randn(n, generator=g))
        for name, p in model.named_parameters():
            if name.endswith((".bias", "branch_bias")) and p.dim() == 4:  # sign offsets β, branch biases b
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    from model.post_add import randomize_post_add
    randomize_post_add(model, g)   # model.post_add's parameters, exact rounding ties included (none: no draw)
    return model


class PixelInput(nn.Module):
    """Feeds a peer network that expects pixels/255 from a UINT8 pixel input, so that every
    network the flow compiles takes the raw uint8 image."""

    def __init__(self, net: nn.Module):
        super().__init__()
        from brevitas.nn import QuantIdentity
        self.input_quant = QuantIdentity(act_quant=InputQuant, return_quant_tensor=False)
        self.net = net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_quant(pixels) / 255.0)


def select_model(ckpt: str | None = None, config: str | None = None, peer: str | None = None,
                 seed: int = 0) -> Selected:
    check_model_choice(ckpt, config, peer)
    torch.manual_seed(seed)
    if ckpt:
        from model.checkpoint import load_trained_model
        model, cfg, _ = load_trained_model(ckpt)
        return Selected(model.eval(), (3, 32, 32), cfg.name, "checkpoint")
    if config:
        from model.config import load_config
        from model.factory import build_model
        cfg = load_config(config)
        if cfg.model.arch != "bireal":
            raise ConfigError(f"{config}: only binarized students compile to hardware (arch is {cfg.model.arch})")
        model = randomize_batchnorm(build_model(cfg.model), seed).eval()
        return Selected(model, (3, 32, 32), f"{cfg.name}-random{seed}", "config")
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    if peer.lower() not in PEERS:
        raise ConfigError(f"PEER={peer}: unknown network (brevitas_examples.bnn_pynq has {', '.join(PEERS)})")
    net, cfg = model_with_cfg(peer.lower(), pretrained=False)
    channels = cfg.getint("MODEL", "IN_CHANNELS")
    size = 32 if cfg.get("MODEL", "ARCH") == "CNV" else 28
    model = randomize_batchnorm(PixelInput(net), seed).eval()
    return Selected(model, (channels, size, size), f"{peer.lower()}-random{seed}", "peer")


def briefly_trained_student(bits: int, data: str, out_dir, images_per_class: int = 60, seed: int = 0,
                            **model: object) -> Selected:
    """A small Bi-Real student (widths 8-16) trained for two short epochs (binary weights,
    then fully binary) on `images_per_class` real images per class: trained weights, scales
    and BatchNorm statistics, for bit-exactness checks, in about half a minute on a CPU.
    `model` overrides model config keys (e.g. act_bits=2)."""
    from pathlib import Path

    from model.checkpoint import load_trained_model
    from model.config import config_from_dict
    from model.train import train

    cfg = config_from_dict({
        "name": f"brief-{bits}bit" + "".join(f"-{k}{v}" for k, v in model.items()),
        "model": {"arch": "bireal", "widths": [8, 16], "blocks": [1, 2], "shortcut_bits": bits, **model},
        "data": {"path": str(data), "val_size": 100, "limit_per_class": images_per_class},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.003, "bn_recalibration_images": 200, "seed": seed},
        "binarize": {"weights_only_epochs": 1},
    })
    train(cfg, out_dir, progress=False)
    model, _, _ = load_trained_model(Path(out_dir) / "checkpoint.pt")
    return Selected(model, (3, 32, 32), cfg.name, "checkpoint")
