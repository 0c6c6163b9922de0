"""Checkpoint or model -> QONNX, cleaned up by qonnx's own transformations.

Brevitas' `export_qonnx` with the TorchScript exporter (`dynamo=False`: the dynamo
path trips over Brevitas' QuantTensor checks, Brevitas issue 1608), then qonnx's
cleanup (shapes, constants folded, readable names) and the project's
`AbsorbScaleDivIntoBipolarWeights`, which leaves every conv with ±1 weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from model.atomic import atomic_write

from .transforms import AbsorbScaleDivIntoBipolarWeights


def export_qonnx_model(model: nn.Module, path: str | Path, input_shape=(1, 3, 32, 32)):
    """Export `model` (eval mode) to QONNX at `path`; returns the cleaned qonnx ModelWrapper."""
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    model = model.eval().cpu()
    dummy = torch.zeros(*input_shape)

    def write(tmp: str) -> None:
        export_qonnx(model, dummy, export_path=tmp, dynamo=False)
        model_w = cleanup_model(ModelWrapper(tmp)).transform(AbsorbScaleDivIntoBipolarWeights())
        cleanup_model(model_w).save(tmp)

    atomic_write(path, write)
    return ModelWrapper(str(path))


def main(argv: list[str] | None = None) -> int:
    import argparse

    from model.checkpoint import load_trained_model

    ap = argparse.ArgumentParser(prog="python -m build_flow.export", description="checkpoint -> QONNX")
    ap.add_argument("--ckpt", required=True, help="a training or release checkpoint")
    ap.add_argument("--out", required=True, help="the .onnx file to write")
    args = ap.parse_args(argv)
    model, cfg, _ = load_trained_model(args.ckpt)
    w = export_qonnx_model(model, args.out)
    print(f"wrote {args.out}: {len(w.graph.node)} nodes ({cfg.name})")
    return 0


if __name__ == "__main__":
    from model.errors import run_cli

    run_cli(main)
