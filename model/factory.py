"""Build the network a config names."""
from __future__ import annotations

from torch import nn

from .config import ModelConfig
from .student import BiRealStudent
from .teachers import AirbenchNet, resnet18, resnet20


def build_model(cfg: ModelConfig) -> nn.Module:
    if cfg.arch == "bireal":
        return BiRealStudent(cfg.widths, cfg.blocks, cfg.shortcut_bits, cfg.stem_kernel, cfg.sign_bias,
                             cfg.num_classes, cfg.block_order, post_add=cfg.post_add, act_bits=cfg.act_bits,
                             act_signed=cfg.act_signed, act_narrow=cfg.act_narrow)
    if cfg.arch == "resnet20":
        return resnet20(cfg.num_classes)
    if cfg.arch == "resnet18":
        return resnet18(cfg.num_classes)
    if cfg.arch == "airbench":
        # model.widths: channels per stage; model.blocks: 3x3 convs per stage (see AirbenchNet).
        # Set both in the config: ModelConfig's defaults are the student's.
        return AirbenchNet(cfg.widths, cfg.blocks, cfg.num_classes)
    raise ValueError(f"unknown arch {cfg.arch}")
