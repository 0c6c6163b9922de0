"""What the flow's command lines share, stated once: the model-selection arguments (--ckpt |
--config | --peer, with --seed) and the defaults of the hardware steps.

Torch-free, so that a command line can check its arguments before anything heavy is imported.
"""
from __future__ import annotations

import argparse

from model.errors import ConfigError

# The planner's target frame rate where a hardware command is given neither --fps, --lut-budget nor
# --folding (make rtl / rtlsim / synth / pnr, python -m build_flow.rtl_flow, the FINN build).
DEFAULT_FPS = 3000.0
# make demo's: the flagship at 43,008 cycles/frame, so that its Yosys run takes about 6 minutes of
# two cores (the 3,000-FPS design takes longer and shows nothing more).
DEMO_FPS = 2000.0
# make plan's: the rate a screened candidate must reach, FINN CNV_1W1A's at 100 MHz (finn-examples).
PLAN_FPS = 3020.0
DEFAULT_CLOCK_MHZ = 100.0


def add_model_args(ap: argparse.ArgumentParser, *, peer: bool = True, several_configs: bool = False,
                   ckpt_help: str | None = None, config_help: str | None = None) -> None:
    """--ckpt, --config (repeatable with `several_configs`), --peer and --seed."""
    ap.add_argument("--ckpt", help=ckpt_help or "a training or release checkpoint")
    ap.add_argument("--config", action="append" if several_configs else "store",
                    help=config_help or "a student config: random weights, randomized BatchNorm"
                    + ("; plan takes several" if several_configs else ""))
    if peer:
        ap.add_argument("--peer", help="a brevitas_examples.bnn_pynq network, e.g. cnv_1w1a (random weights)")
    ap.add_argument("--seed", type=int, default=0, help="random weights and images (default 0)")


def check_model_choice(ckpt: str | None, config: str | None, peer: str | None) -> None:
    """Exactly one model source, or a ConfigError saying so."""
    if sum(bool(x) for x in (ckpt, config, peer)) != 1:
        raise ConfigError("choose the model with exactly one of --ckpt, --config or --peer "
                          "(make: CKPT=, CONFIG= or PEER=)")


def model_args(args: argparse.Namespace, step: str = "this step") -> tuple[str | None, str | None, str | None, int]:
    """(ckpt, config, peer, seed) of a parsed command line, checked: one model, one --config."""
    config = getattr(args, "config", None)
    if isinstance(config, list):
        if len(config) > 1:
            raise ConfigError(f"--config given {len(config)} times: {step} builds one model (plan takes several)")
        config = config[0] if config else None
    ckpt, peer = getattr(args, "ckpt", None), getattr(args, "peer", None)
    check_model_choice(ckpt, config, peer)
    return ckpt, config, peer, getattr(args, "seed", 0)
