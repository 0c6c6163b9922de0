"""Bit-exact comparison of every stage on the same images (the command line:
`python -m build_flow.verify_model`).

PyTorch (Brevitas, eval) -> QONNX (qonnx.core.onnx_exec) -> IR numpy -> IR onnxruntime.
Each stage is compared with `numpy.array_equal`:

* the class scores: the IR's integer accumulators turned into the model's float logits
  exactly as the model computes them (the recorded scale and float32 ops), and the
  predicted class;
* every quantizer's output inside the network (QONNX tensor / scale == the IR's integers),
  so that a difference hidden by the final scores is still caught.

Prints one table (stage, images, mismatches, max difference, time); exits 1 on any mismatch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch



@dataclass
class StageResult:
    stage: str
    images: int
    mismatches: int       # images whose scores, class or internal integers differ
    max_diff: float       # largest absolute difference of the scores
    seconds: float
    note: str = ""


def logits_from_ir(acc: np.ndarray, meta: dict) -> np.ndarray:
    """The model's float32 logits from the IR's integer accumulators (exact for the
    student: integer × power of two, then one correctly rounded op per recorded step)."""
    x = acc.astype(np.float32) * np.float32(meta["logits"]["scale"])
    for op, c in meta["logits"]["ops"]:
        c = np.asarray(c, dtype=np.float32)
        x = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op](x, c).astype(np.float32)
    return x


def load_images(data: str | None, shape: tuple, n: int, seed: int) -> tuple[np.ndarray, str]:
    """(N, C, H, W) uint8 images: real ones from `data` when their shape fits, else seeded random."""
    if data:
        from model.data import load_cifar10
        ds = load_cifar10(data, "all", limit_per_class=max(1, -(-n // 10)))
        if tuple(ds.images.shape[1:]) == tuple(shape):
            g = torch.Generator().manual_seed(seed)
            idx = torch.randperm(len(ds.labels), generator=g)[:n]
            return ds.images[idx].numpy(), f"{len(idx)} real images from {data}"
        why = f"the model takes {shape}, {data} holds {tuple(ds.images.shape[1:])}"
    else:
        why = "no DATA given"
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), f"{n} seeded random images ({why})"


def run_stages(model, qonnx_model, graph, images: np.ndarray, chunk: int = 128,
               progress: bool = False, qonnx_images: int | None = None) -> list[StageResult]:
    """Every stage on `images` (N, C, H, W) uint8, in chunks of `chunk` images so that the
    internal tensors kept for comparison stay small however many images are checked;
    `progress` shows a bar over the chunks. QONNX execution (node by node, the slow stage) runs
    on the first `qonnx_images` images only when that is given; the other stages on all."""
    from tqdm import tqdm

    total: list[StageResult] = []
    for i in tqdm(range(0, len(images), chunk), desc="verify", unit="chunk", disable=None if progress else True):
        part_images = images[i:i + chunk]
        n_qonnx = len(part_images) if qonnx_images is None else max(0, min(len(part_images), qonnx_images - i))
        part = _run_chunk(model, qonnx_model, graph, part_images, n_qonnx)
        if not total:
            total = part
            continue
        for t, p in zip(total, part):
            t.images += p.images
            t.mismatches += p.mismatches
            t.max_diff = max(t.max_diff, p.max_diff)
            t.seconds += p.seconds
            if p.note != t.note and "differ" in p.note:
                t.note = p.note
    return total


def _run_chunk(model, qonnx_model, graph, images: np.ndarray, nq: int) -> list[StageResult]:
    from qonnx.core.onnx_exec import execute_onnx

    from verify.golden_numpy import run_numpy
    from verify.golden_onnx import run_onnxruntime

    n = len(images)
    x = torch.from_numpy(images).float()
    t0 = time.perf_counter()
    with torch.no_grad():
        ref = model(x).numpy()
    results = [StageResult("PyTorch (Brevitas, eval)", n, 0, 0.0, time.perf_counter() - t0, "reference")]
    ref_label = ref.argmax(1)

    # QONNX, image by image (qonnx executes node by node), on the first nq images
    iname, oname = qonnx_model.graph.input[0].name, qonnx_model.graph.output[0].name
    probes = graph.meta.get("probes", {})
    t0 = time.perf_counter()
    q_out, q_probe = [], []
    for i in range(nq):
        ctx = execute_onnx(qonnx_model, {iname: images[i:i + 1].astype(np.float32)}, return_full_exec_context=True)
        q_out.append(ctx[oname])
        q_probe.append({name: ctx[name] for name in probes})
    if nq:
        results.append(_compare("QONNX (qonnx execute_onnx)", ref[:nq], np.concatenate(q_out), time.perf_counter() - t0))
    else:
        results.append(StageResult("QONNX (qonnx execute_onnx)", 0, 0, 0.0, 0.0))

    nhwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    internals = sorted({p["ir"] for p in probes.values()})
    t0 = time.perf_counter()
    ir_np = run_numpy(graph, nhwc, keep=[*graph.outputs.values(), *internals])
    t_np = time.perf_counter() - t0
    np_logits = logits_from_ir(ir_np[graph.outputs["logits"]], graph.meta)
    res = _compare("IR numpy (golden)", ref, np_logits, t_np)
    if "label" in graph.outputs:
        bad_label = ir_np[graph.outputs["label"]].reshape(n) != ref_label
        res.mismatches = int(np.count_nonzero(bad_label | _row_mismatch(ref, np_logits)))
    # internal integers: every quantizer output, QONNX vs IR numpy
    internal_bad = np.zeros(n, dtype=bool)
    for qname, p in probes.items():
        ir_vals = ir_np[p["ir"]]
        for i in range(nq):
            q = q_probe[i][qname][0]
            q_int = q / np.float32(p["scale"]) if not p["bipolar"] else q
            ir = ir_vals[i]
            if q.ndim == 3:
                ir = ir.transpose(2, 0, 1)        # IR (H, W, C) -> QONNX (C, H, W)
            elif ir.ndim == 3:
                ir = ir.transpose(2, 0, 1).reshape(-1)  # QONNX flattened a map before this quantizer
            if not np.array_equal(q_int, ir):
                internal_bad[i] = True
    res.mismatches = max(res.mismatches, int(internal_bad.sum()))
    res.note = f"{len(probes)} internal integer tensors compared with QONNX"
    results.append(res)

    # onnxruntime: the logits' accumulators and every probed internal tensor equal to IR numpy's
    t0 = time.perf_counter()
    ort = run_onnxruntime(graph, nhwc, internals=internals)
    t_ort = time.perf_counter() - t0
    res = _compare("IR onnxruntime", ref, logits_from_ir(ort["logits"], graph.meta), t_ort)
    same = np.all(ort["logits"].reshape(n, -1) == ir_np[graph.outputs["logits"]].reshape(n, -1), axis=1)
    for name in internals:
        same &= np.all(ort[name].reshape(n, -1) == ir_np[name].reshape(n, -1), axis=1)
    res.mismatches = max(res.mismatches, int(np.count_nonzero(~same)))
    res.note = (f"accumulators and {len(internals)} internal integer tensors equal to IR numpy" if same.all()
                else "accumulators or internal integers differ from IR numpy")
    results.append(res)
    return results


def _row_mismatch(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    got = got.reshape(ref.shape)
    return ~np.all(ref == got, axis=1) | (ref.argmax(1) != got.argmax(1))


def _compare(stage: str, ref: np.ndarray, got: np.ndarray, seconds: float) -> StageResult:
    got = got.reshape(ref.shape)
    return StageResult(stage, len(ref), int(np.count_nonzero(_row_mismatch(ref, got))),
                       float(np.max(np.abs(ref.astype(np.float64) - got))), seconds)


def format_table(results: list[StageResult]) -> str:
    head = f"{'stage':30} {'images':>7} {'mismatches':>10} {'max diff':>10} {'time s':>8} {'img/s':>8}  note"
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(f"{r.stage:30} {r.images:7d} {r.mismatches:10d} {r.max_diff:10.3g} {r.seconds:8.2f} "
                    f"{r.images / max(r.seconds, 1e-9):8.0f}  {r.note}")
    return "\n".join(rows)
