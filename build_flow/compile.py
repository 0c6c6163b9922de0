"""Model -> QONNX -> integer IR, written to one folder.

    python -m build_flow.compile (--ckpt C | --config Y | --peer NAME) [--seed S] --out DIR

DIR/model.onnx is the cleaned QONNX export; DIR/ir/ the IR (graph.json + tensors.npz).
A model the lowering cannot map exactly stops with one line naming the node, its op and
why, and leaves no IR folder behind.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from model.errors import run_cli

from .export import export_qonnx_model
from .ir import Graph, save_ir
from .lower import lower
from .models import Selected, select_model
from .options import add_model_args, model_args


def compile_model(sel: Selected, out_dir: str | Path):
    """Returns (QONNX ModelWrapper, IR Graph); writes out_dir/model.onnx and out_dir/ir/."""
    out_dir = Path(out_dir)
    qonnx_model = export_qonnx_model(sel.model, out_dir / "model.onnx", input_shape=(1, *sel.input_shape))
    graph: Graph = lower(qonnx_model)
    graph.meta["source"] = {"name": sel.name, "kind": sel.kind}
    save_ir(graph, out_dir / "ir")
    return qonnx_model, graph


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m build_flow.compile", description=__doc__.split("\n\n")[0])
    add_model_args(ap)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    sel = select_model(*model_args(args))
    _, graph = compile_model(sel, args.out)
    ops = {}
    for layer in graph.layers:
        ops[layer.op] = ops.get(layer.op, 0) + 1
    print(f"{sel.name}: {args.out}/model.onnx, {args.out}/ir ({len(graph.layers)} layers: "
          + ", ".join(f"{n} {op}" for op, n in ops.items()) + ")")
    return 0


if __name__ == "__main__":
    run_cli(main)
