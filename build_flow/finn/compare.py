"""FINN's saved verification outputs against the project's integer golden model, with `array_equal`.

FINN's own verify steps check `isclose(atol=1e-3)` on the graph output only (here: the label), which
passed on a wrong graph once (FINN-LOCAL.md). This module reads what the build saved with
``verify_save_full_context`` (one .npz per image and step: every tensor of the parent graph and, for
cppsim/rtlsim, of the dataflow partition, prefixed with the partition node's name) and compares, per
image, with ``numpy.array_equal``:

* every MVAU output of the partition with the IR MatrixVector output in the same position (both lists
  are in dataflow order): thresholded activations (BIPOLAR as −1/+1, INTn as integers) and the
  classifier's accumulators. An XNOR-popcount MVAU without thresholds emits the popcount p of matching
  bits; its ±1 accumulator is 2·p − MW (an exact integer identity, applied before comparing);
* the predicted class (the parent graph's output) with the golden model's label.

Only ONNX and numpy are needed: it runs in the project's environment on FINN's output folder.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

STEP_FILE = re.compile(r"^verify_(?P<step>.+)_(?P<b>\d+)_(?P<res>SUCCESS|FAIL)\.npz$")


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def saved_outputs(finn_dir: str | Path, step: str) -> dict[int, tuple[str, Path]]:
    """image index -> (FINN's verdict, npz path) for one verify step (e.g. 'folded_hls_cppsim')."""
    out = {}
    for p in sorted(Path(finn_dir, "verification_output").glob(f"verify_{step}_*.npz")):
        m = STEP_FILE.match(p.name)
        if m and m["step"] == step:
            out[int(m["b"])] = (m["res"], p)
    return out


def mvau_probes(finn_dir: str | Path, step: str) -> tuple[list[dict], str, str]:
    """The partition's MVAU nodes in graph order (output tensor, XNOR mode, MW, thresholded), the key
    prefix of partition tensors in the saved context, and the parent graph's output name."""
    import onnx

    child = onnx.load(str(Path(finn_dir, "intermediate_models", f"verify_{step}.onnx")))
    parent = onnx.load(str(Path(finn_dir, "intermediate_models", "dataflow_parent.onnx")))
    sdp = [n for n in parent.graph.node if n.op_type == "StreamingDataflowPartition"]
    if len(sdp) != 1:
        raise ValueError(f"{finn_dir}: expected one StreamingDataflowPartition, found {len(sdp)}")
    probes = []
    for n in child.graph.node:
        if n.op_type.startswith("MVAU"):
            probes.append({"node": n.name, "tensor": n.output[0], "xnor": int(_attr(n, "binaryXnorMode", 0)),
                           "mw": int(_attr(n, "MW")), "thresholded": int(_attr(n, "noActivation", 0)) == 0})
    return probes, sdp[0].name + "_", parent.graph.output[0].name


def golden_spec(graph, golden_all: dict[str, np.ndarray]) -> dict:
    """What the comparison needs of the golden model, without the IR: the MatrixVector layers' outputs in
    dataflow order (name, array over images, bipolar?) and the labels."""
    mvs = [l for l in graph.layers if l.op == "MatrixVector"]
    return {"names": [l.name for l in mvs], "arrays": [np.asarray(golden_all[l.outputs[0]]) for l in mvs],
            "bipolar": [graph.tensors[l.outputs[0]].dtype == "BIPOLAR" for l in mvs],
            "label": np.asarray(golden_all[graph.outputs["label"]]).reshape(-1)}


def save_golden(path: str | Path, graph, golden_all: dict[str, np.ndarray]) -> Path:
    """The golden spec as one .npz (read in FINN's environment by verify_steps.py); temp file + rename."""
    spec = golden_spec(graph, golden_all)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, names=np.array(spec["names"]), bipolar=np.array(spec["bipolar"]), label=spec["label"],
             **{f"mv_{i}": a for i, a in enumerate(spec["arrays"])})
    tmp.replace(path)
    return path


def load_golden(path: str | Path) -> dict:
    try:
        z = np.load(path)
        names = [str(n) for n in z["names"]]
        return {"names": names, "arrays": [z[f"mv_{i}"] for i in range(len(names))],
                "bipolar": [bool(b) for b in z["bipolar"]], "label": z["label"].reshape(-1)}
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a golden-output file from build_flow.finn.compare.save_golden ({exc})") from None


def compare_step(finn_dir: str | Path, step: str, graph, golden_all: dict[str, np.ndarray]) -> dict:
    """Per-image and per-layer exact comparison of one partition-level verify step (cppsim/rtlsim)."""
    return compare_spec(finn_dir, step, golden_spec(graph, golden_all))


def compare_spec(finn_dir: str | Path, step: str, spec: dict) -> dict:
    """compare_step on a golden spec (golden_spec / load_golden)."""
    saved = saved_outputs(finn_dir, step)
    if not saved:
        raise FileNotFoundError(f"{finn_dir}/verification_output: no verify_{step}_*.npz (did the step run?)")
    probes, prefix, out_name = mvau_probes(finn_dir, step)
    if len(spec["names"]) != len(probes):
        raise ValueError(f"{len(probes)} FINN MVAUs vs {len(spec['names'])} IR MatrixVector layers")
    layers = [{"finn": p["node"], "ir": n, "equal_images": 0, "values": 0, "differing": 0}
              for p, n in zip(probes, spec["names"])]
    rows = []
    for b, (verdict, path) in sorted(saved.items()):
        ctx = np.load(path)
        ok_all = True
        for rec, p, arr, bip in zip(layers, probes, spec["arrays"], spec["bipolar"]):
            got = np.asarray(ctx[prefix + p["tensor"]])
            if p["xnor"] and not p["thresholded"]:
                got = 2 * got - p["mw"]
            want = arr[b]
            if bip:
                got = 2 * got.astype(np.int64) - 1  # FINN streams bipolar activations as bits 0/1
            got = got.reshape(want.shape)
            same = np.array_equal(got.astype(np.int64), want.astype(np.int64))
            rec["values"] += want.size
            rec["differing"] += int(np.count_nonzero(got.astype(np.int64) != want.astype(np.int64)))
            rec["equal_images"] += int(same)
            ok_all &= same
        label = int(np.asarray(ctx[out_name]).ravel()[0])
        want_label = int(spec["label"][b])
        rows.append({"image": b, "finn_verdict": verdict, "layers_equal": bool(ok_all),
                     "label": label, "golden_label": want_label, "label_equal": label == want_label})
    return {"step": step, "images": len(rows), "all_layers_equal": all(r["layers_equal"] for r in rows),
            "all_labels_equal": all(r["label_equal"] for r in rows), "rows": rows, "layers": layers}


def compare_labels(finn_dir: str | Path, step: str, labels: np.ndarray) -> dict:
    """The predicted class of a whole-design verify step (stitched-IP rtlsim: only the partition's
    outputs exist there) against the golden labels, array_equal."""
    import onnx

    saved = saved_outputs(finn_dir, step)
    if not saved:
        raise FileNotFoundError(f"{finn_dir}/verification_output: no verify_{step}_*.npz (did the step run?)")
    parent = onnx.load(str(Path(finn_dir, "intermediate_models", "dataflow_parent.onnx")))
    out_name = parent.graph.output[0].name
    rows = []
    for b, (verdict, path) in sorted(saved.items()):
        label = int(np.asarray(np.load(path)[out_name]).ravel()[0])
        rows.append({"image": b, "finn_verdict": verdict, "label": label, "golden_label": int(labels[b]),
                     "label_equal": label == int(labels[b])})
    return {"step": step, "images": len(rows), "all_layers_equal": None,
            "all_labels_equal": all(r["label_equal"] for r in rows), "rows": rows, "layers": []}


def format_report(rep: dict) -> str:
    layers = {True: "yes", False: "NO", None: "not observable"}[rep["all_layers_equal"]]
    lines = [f"{rep['step']}: {rep['images']} images, every MVAU output array_equal to the golden model: "
             f"{layers}; labels equal: {'yes' if rep['all_labels_equal'] else 'NO'}"]
    lines.append(f"  {'FINN node':<28} {'IR layer':<14} {'images equal':>12} {'values':>9} {'differing':>9}")
    for r in rep["layers"]:
        lines.append(f"  {r['finn']:<28} {r['ir']:<14} {r['equal_images']:>7}/{rep['images']:<4} "
                     f"{r['values']:>9} {r['differing']:>9}")
    return "\n".join(lines)
