"""Golden model of the integer IR in numpy: exact int64 semantics, batched over images.

`run_numpy` executes the layers in their (streaming) order, each as `build_flow/ir.py`
documents it, and checks every result against its tensor's declared shape and datatype,
so an IR that does not add up fails here with an IRError naming the layer.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from build_flow.ir import Graph, IRError, Layer, dtype_range, validate
from build_flow.ops import implementation, implements


def check_images(images, hwc: tuple[int, ...], where: str) -> np.ndarray:
    """`images` as a uint8 (N, H, W, C) array matching `hwc`, N >= 1, or an IRError naming `where`."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != tuple(hwc) or len(images) == 0:
        raise IRError(f"{where}: images must be uint8 of shape (N, {', '.join(map(str, hwc))}) with N >= 1, "
                      f"got {images.dtype} of shape {images.shape}")
    return images


def run_numpy(graph: Graph, images, return_all: bool = False, batch_size: int = 32,
              keep: tuple[str, ...] | list[str] = ()) -> dict[str, np.ndarray]:
    """Execute `graph` on uint8 `images` (N, H, W, C).

    Returns role -> (N, ...) int64 array (e.g. "logits", "label"), with `keep` also those
    tensors by name, or with `return_all` every tensor name -> (N, ...) array (the window
    tensors are large: name what is needed in `keep` instead when checking many images).
    Batches bound the memory of the patch arrays.
    """
    validate(graph, "graph")
    images = check_images(images, graph.tensors[graph.input].shape, f"input '{graph.input}'")
    missing = [name for name in keep if name not in graph.tensors]
    if missing:
        raise IRError(f"graph: no tensor {missing[0]!r} to keep")
    batches = [_run_batch(graph, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    wanted = {name: name for name in batches[0]} if return_all else {**graph.outputs, **{n: n for n in keep}}
    return {key: np.concatenate([b[name] for b in batches]) for key, name in wanted.items()}


def _run_batch(graph: Graph, images: np.ndarray) -> dict[str, np.ndarray]:
    values = {graph.input: images.astype(np.int64)}
    _check_output(graph, None, graph.input, values[graph.input])
    for layer in graph.layers:
        try:
            out = implementation("golden_numpy", layer.op)(graph, layer, *(values[name] for name in layer.inputs))
        except KeyError as exc:
            raise IRError(f"layer '{layer.name}' ({layer.op}): missing attribute {exc}") from None
        except (ValueError, TypeError) as exc:
            raise IRError(f"layer '{layer.name}' ({layer.op}): {exc}") from None
        outs = out if isinstance(out, list) else [out]
        if len(outs) != len(layer.outputs):
            raise IRError(f"layer '{layer.name}' ({layer.op}): {len(layer.outputs)} outputs declared, "
                          f"the op makes {len(outs)}")
        for name, value in zip(layer.outputs, outs):
            _check_output(graph, layer, name, value)
            values[name] = value
    return values


def _check_output(graph: Graph, layer: Layer | None, name: str, value: np.ndarray) -> None:
    """The declared shape and datatype must hold: the hardware sizes its streams by them."""
    where = f"layer '{layer.name}' ({layer.op}): output" if layer else "input"
    t = graph.tensors[name]
    if value.shape[1:] != tuple(t.shape):
        raise IRError(f"{where} '{name}' has shape {value.shape[1:]}, the IR declares {tuple(t.shape)}")
    lo, hi = dtype_range(t.dtype)
    if value.size and (value.min() < lo or value.max() > hi or (t.dtype == "BIPOLAR" and (value == 0).any())):
        raise IRError(f"{where} '{name}' holds values {value.min()}..{value.max()}, outside its datatype {t.dtype}")


# ---------------------------------------------------------------- ops: (graph, layer, *inputs) -> output(s)

def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, C, k, k) view of every k×k window at stride s."""
    return sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]


@implements("golden_numpy", "SlidingWindow")
def _sliding_window(graph, layer, x):
    a = layer.attrs
    p = a["pad"]
    x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=a["pad_value"])
    win = _windows(x, a["kernel"], a["stride"]).transpose(0, 1, 2, 4, 5, 3)  # patch order (ky, kx, c)
    return win.reshape(*win.shape[:3], -1)


@implements("golden_numpy", "MatrixVector")
def _matrix_vector(graph, layer, x):
    w = graph.arrays[layer.attrs["weights"]].astype(np.int64)
    if layer.attrs.get("flatten"):  # a fully connected layer reading a whole (H, W, C) map
        x = x.reshape(len(x), -1)
    acc = _exact_matmul(x, w.T)
    return acc if layer.attrs.get("thresholds") is None else _threshold(graph, layer, acc)


def _exact_matmul(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    # float64 BLAS is exact while every partial sum is an integer below 2^53 in magnitude,
    # which max|x| · max column L1 norm of m bounds; int64 matmul (no BLAS, slow) otherwise.
    # 2-D operands: numpy's stacked (N, H, W, K) @ (K, M) is a hundred times slower.
    bound = int(np.abs(x).max(initial=0)) * int(np.abs(m).sum(axis=0).max(initial=0))
    flat = x.reshape(-1, x.shape[-1])
    if bound < 2 ** 53:
        y = (flat.astype(np.float64) @ m.astype(np.float64)).astype(np.int64)
    else:
        y = flat @ m
    return y.reshape(*x.shape[:-1], m.shape[1])


@implements("golden_numpy", "Threshold")
def _threshold(graph, layer, acc):
    t = graph.arrays[layer.attrs["thresholds"]].astype(np.int64)
    direction = graph.arrays[layer.attrs["direction"]]
    channels = acc.shape[-1]
    if len(t) not in (1, channels):
        raise IRError(f"layer '{layer.name}' ({layer.op}): {len(t)} threshold rows for {channels} channels")
    rows = np.sort(t, axis=1)
    counts = np.empty_like(acc)
    for c in range(channels):  # a binary search per channel: no (…, C, L) boolean array
        r = c if len(rows) > 1 else 0
        if direction[r] > 0:  # #{k: T_k <= acc}
            counts[..., c] = np.searchsorted(rows[r], acc[..., c], side="right")
        else:  # #{k: T_k >= acc}
            counts[..., c] = rows.shape[1] - np.searchsorted(rows[r], acc[..., c], side="left")
    levels = layer.attrs.get("y_min", 0) + counts
    return 2 * levels - 1 if graph.tensors[layer.outputs[0]].dtype == "BIPOLAR" else levels


@implements("golden_numpy", "MaxPool")
def _max_pool(graph, layer, x):
    return _windows(x, layer.attrs["kernel"], layer.attrs["stride"]).max(axis=(-2, -1))


@implements("golden_numpy", "SumPool")
def _sum_pool(graph, layer, x):
    return _windows(x, layer.attrs["kernel"], layer.attrs["stride"]).sum(axis=(-2, -1))


@implements("golden_numpy", "GlobalSumPool")
def _global_sum_pool(graph, layer, x):
    return x.sum(axis=(1, 2))


@implements("golden_numpy", "Fork")
def _fork(graph, layer, x):
    return [x] * len(layer.outputs)


@implements("golden_numpy", "AddSat")
def _add_sat(graph, layer, a, b):
    return np.clip(a + b, *dtype_range(graph.tensors[layer.outputs[0]].dtype))


@implements("golden_numpy", "Concat")
def _concat(graph, layer, *xs):
    return np.concatenate(xs, axis=-1)


@implements("golden_numpy", "LabelSelect")
def _label_select(graph, layer, x):
    select = np.argmax if layer.attrs.get("largest", True) else np.argmin  # ties: the lowest index
    return select(x, axis=-1).astype(np.int64)
