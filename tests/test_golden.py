"""Golden models of the IR: numpy against a loop-by-loop reference, onnxruntime against numpy."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from build_flow.ir import Graph, IRError, Layer, Tensor, dtype_range, load_ir, save_ir
from verify.golden_numpy import run_numpy
from verify.golden_onnx import ir_to_onnx, run_onnxruntime, save_onnx

# ---------------------------------------------------------------- hand-built graphs


class GraphBuilder:
    """Appends layers in streaming order; arrays are passed inline and stored under '<layer>_<key>'."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.tensors = {"image": Tensor("image", shape, "UINT8")}
        self.layers: list[Layer] = []
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, op: str, inputs: list[str], shape: tuple[int, ...], dtype: str, n_outputs: int = 1, **attrs):
        name = f"{op.lower()}{len(self.layers)}"
        for key in ("weights", "thresholds", "direction"):
            if key in attrs:
                self.arrays[f"{name}_{key}"] = attrs[key]
                attrs[key] = f"{name}_{key}"
        outputs = [name] if n_outputs == 1 else [f"{name}_{i}" for i in range(n_outputs)]
        for out in outputs:
            self.tensors[out] = Tensor(out, shape, dtype)
        self.layers.append(Layer(name, op, list(inputs), outputs, attrs))
        return outputs[0] if n_outputs == 1 else outputs

    def thresholds(self, channels: int, dtype: str, scale: float, shared: bool = False) -> dict:
        """Random thresholds of both directions: ascending rows count acc >= T, descending acc <= T."""
        lo, hi = dtype_range(dtype)
        levels, y_min = (1, 0) if dtype == "BIPOLAR" else (hi - lo, lo)
        rows = 1 if shared else channels
        t = np.sort(np.round(self.rng.normal(0, scale, (rows, levels))), axis=1).astype(np.int64)
        direction = self.rng.choice(np.array([-1, 1], np.int8), rows)
        t[direction < 0] = t[direction < 0, ::-1]
        return dict(thresholds=t, direction=direction, y_min=y_min)

    def matrix_vector(self, x: str, out_channels: int, dtype: str, scale: float | None, shared: bool = False):
        """±1 weights; thresholds of spread `scale` unless scale is None (accumulator output)."""
        shape = self.tensors[x].shape
        w = self.rng.choice(np.array([-1, 1], np.int8), (out_channels, shape[-1]))
        quant = {} if scale is None else self.thresholds(out_channels, dtype, scale, shared)
        return self.add("MatrixVector", [x], shape[:-1] + (out_channels,), dtype, weights=w, **quant)

    def sliding_window(self, x: str, kernel: int, stride: int, pad: int, pad_value: int):
        h, w, c = self.tensors[x].shape
        shape = ((h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1, kernel * kernel * c)
        return self.add("SlidingWindow", [x], shape, self.tensors[x].dtype,
                        kernel=kernel, stride=stride, pad=pad, pad_value=pad_value)

    def graph(self, **outputs: str) -> Graph:
        return Graph(self.tensors, self.layers, "image", outputs, self.arrays)


def residual_graph() -> Graph:
    """A Bi-Real-like block: stem conv, binary conv branch + shortcut, pooling, classifier."""
    b = GraphBuilder((8, 8, 3))
    stem = b.matrix_vector(b.sliding_window("image", 3, 1, 1, 0), 8, "INT4", scale=600)
    branch_in, shortcut = b.add("Fork", [stem], (8, 8, 8), "INT4", n_outputs=2)
    signs = b.add("Threshold", [branch_in], (8, 8, 8), "BIPOLAR", **b.thresholds(8, "BIPOLAR", scale=3))
    branch = b.matrix_vector(b.sliding_window(signs, 3, 1, 1, -1), 8, "INT4", scale=8)
    added = b.add("AddSat", [branch, shortcut], (8, 8, 8), "INT4")
    pooled = b.add("SumPool", [added], (4, 4, 8), "INT6", kernel=2, stride=2)
    requant = b.add("Threshold", [pooled], (4, 4, 8), "INT4", **b.thresholds(8, "INT4", scale=10, shared=True))
    both = b.add("Concat", [requant, requant], (4, 4, 16), "INT4")
    features = b.add("GlobalSumPool", [both], (16,), "INT8")
    logits = b.matrix_vector(features, 10, "INT13", scale=None)
    return b.graph(logits=logits, label=b.add("LabelSelect", [logits], (), "UINT4", largest=True))


def variants_graph() -> Graph:
    """Stride 2 on an odd size, BIPOLAR accumulators out, MaxPool, pad value -1, kernel 1,
    a SlidingWindow that is also an output (not folded into a Conv), shared thresholds, argmin."""
    b = GraphBuilder((7, 7, 2), seed=1)
    signs = b.matrix_vector(b.sliding_window("image", 3, 2, 1, 0), 6, "BIPOLAR", scale=300)
    pooled = b.add("MaxPool", [signs], (3, 3, 6), "BIPOLAR", kernel=2, stride=1)
    patches = b.sliding_window(pooled, 3, 2, 1, -1)
    small = b.matrix_vector(patches, 5, "UINT2", scale=5, shared=True)
    mixed = b.matrix_vector(b.sliding_window(small, 1, 1, 0, 0), 4, "INT3", scale=2)
    features = b.add("GlobalSumPool", [mixed], (4,), "INT5")
    logits = b.matrix_vector(features, 7, "INT8", scale=None)
    return b.graph(logits=logits, label=b.add("LabelSelect", [logits], (), "UINT3", largest=False),
                   patches=patches)


def random_images(graph: Graph, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *graph.tensors[graph.input].shape), dtype=np.uint8)


# ---------------------------------------------------------------- loop-by-loop reference

def brute_force(graph: Graph, image: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor for one image, each op written as explicit loops straight from ir.py."""
    values = {graph.input: image.astype(np.int64)}
    for layer in graph.layers:
        out = _REFERENCE[layer.op](graph, layer, *(values[n] for n in layer.inputs))
        values.update(zip(layer.outputs, out if isinstance(out, list) else [out]))
    return values


def ref_sliding_window(graph, layer, x):
    k, s, p, pad_value = (layer.attrs[a] for a in ("kernel", "stride", "pad", "pad_value"))
    h, w, c = x.shape
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    out = np.zeros((ho, wo, k * k * c), np.int64)
    for oy in range(ho):
        for ox in range(wo):
            patch = []
            for ky in range(k):
                for kx in range(k):
                    iy, ix = oy * s + ky - p, ox * s + kx - p
                    inside = 0 <= iy < h and 0 <= ix < w
                    patch += [x[iy, ix, ch] if inside else pad_value for ch in range(c)]
            out[oy, ox] = patch
    return out


def ref_matrix_vector(graph, layer, x):
    w = graph.arrays[layer.attrs["weights"]]
    acc = np.zeros(x.shape[:-1] + (len(w),), np.int64)
    for pixel in np.ndindex(x.shape[:-1]):
        for o in range(len(w)):
            acc[pixel + (o,)] = sum(int(w[o, i]) * int(x[pixel + (i,)]) for i in range(x.shape[-1]))
    return acc if layer.attrs.get("thresholds") is None else ref_threshold(graph, layer, acc)


def ref_threshold(graph, layer, acc):
    t = graph.arrays[layer.attrs["thresholds"]]
    d = graph.arrays[layer.attrs["direction"]]
    bipolar = graph.tensors[layer.outputs[0]].dtype == "BIPOLAR"
    out = np.zeros_like(acc)
    for idx in np.ndindex(acc.shape):
        r = idx[-1] if len(t) > 1 else 0
        n = sum(1 for threshold in t[r] if (acc[idx] >= threshold if d[r] > 0 else acc[idx] <= threshold))
        out[idx] = 2 * n - 1 if bipolar else layer.attrs["y_min"] + n
    return out


def ref_pool(reduce):
    def pool(graph, layer, x):
        k, s = layer.attrs["kernel"], layer.attrs["stride"]
        h, w, c = x.shape
        out = np.zeros(((h - k) // s + 1, (w - k) // s + 1, c), np.int64)
        for oy, ox, ch in np.ndindex(out.shape):
            out[oy, ox, ch] = reduce(int(x[oy * s + ky, ox * s + kx, ch]) for ky in range(k) for kx in range(k))
        return out
    return pool


def ref_global_sum_pool(graph, layer, x):
    return np.array([sum(int(x[y, z, c]) for y in range(x.shape[0]) for z in range(x.shape[1]))
                     for c in range(x.shape[2])])


def ref_add_sat(graph, layer, a, b):
    lo, hi = dtype_range(graph.tensors[layer.outputs[0]].dtype)
    out = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        out[idx] = min(hi, max(lo, a[idx] + b[idx]))
    return out


def ref_label_select(graph, layer, x):
    best = 0
    for i in range(1, len(x)):
        if (x[i] > x[best]) if layer.attrs["largest"] else (x[i] < x[best]):  # strict: ties keep the lowest
            best = i
    return np.int64(best)


_REFERENCE = {
    "SlidingWindow": ref_sliding_window, "MatrixVector": ref_matrix_vector, "Threshold": ref_threshold,
    "MaxPool": ref_pool(max), "SumPool": ref_pool(sum), "GlobalSumPool": ref_global_sum_pool,
    "Fork": lambda graph, layer, x: [x] * len(layer.outputs), "AddSat": ref_add_sat,
    "Concat": lambda graph, layer, *xs: np.concatenate(xs, axis=-1), "LabelSelect": ref_label_select,
}

GRAPHS = {"residual": residual_graph, "variants": variants_graph}


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("name", GRAPHS)
def test_numpy_matches_loop_reference(name):
    graph = GRAPHS[name]()
    images = random_images(graph, 2, seed=3)
    got = run_numpy(graph, images, return_all=True)
    for i, image in enumerate(images):
        expected = brute_force(graph, image)
        for tensor, value in expected.items():
            assert np.array_equal(got[tensor][i], value), f"{name}: tensor '{tensor}' of image {i}"


@pytest.mark.parametrize("name", GRAPHS)
def test_onnxruntime_matches_numpy(name):
    graph = GRAPHS[name]()
    images = random_images(graph, 32, seed=4)
    expected = run_numpy(graph, images)
    got = run_onnxruntime(graph, images, batch_size=12)  # a ragged last batch
    assert got.keys() == expected.keys()
    for role in expected:
        assert got[role].dtype == np.int64 and np.array_equal(got[role], expected[role]), role
    assert len(np.unique(expected["label"])) > 1  # the thresholds leave the net something to decide


def test_thresholds_reach_many_levels():
    """The random thresholds are a real test only if the quantized tensors take varied values."""
    graph = residual_graph()
    values = run_numpy(graph, random_images(graph, 8), return_all=True)
    for layer in graph.layers:
        if layer.attrs.get("thresholds") is not None:
            assert len(np.unique(values[layer.outputs[0]])) >= 2, layer.name
    assert len(np.unique(values["matrixvector1"])) >= 6


def test_ir_round_trip_gives_identical_results(tmp_path):
    graph = residual_graph()
    images = random_images(graph, 8, seed=5)
    loaded = load_ir(save_ir(graph, tmp_path / "ir"))
    before, after = run_numpy(graph, images), run_numpy(loaded, images)
    for role, value in run_onnxruntime(loaded, images).items():
        assert np.array_equal(value, before[role]) and np.array_equal(after[role], before[role]), role


def test_saved_onnx_model_runs_alone(tmp_path):
    graph = variants_graph()
    path = save_onnx(graph, tmp_path / "golden.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["golden.onnx"]  # no temp file left behind
    images = random_images(graph, 5, seed=6)
    got, expected = run_onnxruntime(onnx.load(path), images), run_numpy(graph, images)
    assert all(np.array_equal(got[role], expected[role]) for role in expected)


def test_label_ties_go_to_the_lowest_index():
    for largest in (True, False):
        b = GraphBuilder((1, 1, 4))
        w = np.ones((5, 4), np.int8)  # five identical classes
        acc = b.add("MatrixVector", ["image"], (1, 1, 5), "INT11", weights=w)
        logits = b.add("GlobalSumPool", [acc], (5,), "INT11")
        graph = b.graph(logits=logits, label=b.add("LabelSelect", [logits], (), "UINT3", largest=largest))
        images = random_images(graph, 6)
        assert not run_numpy(graph, images)["label"].any()
        assert not run_onnxruntime(graph, images)["label"].any()


@pytest.mark.parametrize("through_window", [False, True])
def test_accumulators_beyond_float32_stay_exact(through_window):
    """70000 UINT8 inputs: accumulators up to 1.8e7 > 2^24, where float32 loses odd integers."""
    b = GraphBuilder((2, 2, 17500) if through_window else (1, 1, 70000))
    x = b.sliding_window("image", 2, 1, 0, 0) if through_window else "image"
    w = np.stack([np.ones(70000), b.rng.choice([-1, 1], 70000), -np.ones(70000)]).astype(np.int8)
    acc = b.add("MatrixVector", [x], (1, 1, 3), "INT26", weights=w)
    logits = b.add("GlobalSumPool", [acc], (3,), "INT26")
    graph = b.graph(logits=logits, label=b.add("LabelSelect", [logits], (), "UINT2", largest=True))
    images = (255 - b.rng.integers(0, 16, (4, *b.tensors["image"].shape))).astype(np.uint8)

    expected = run_numpy(graph, images)["logits"]
    assert (np.abs(expected) > 2 ** 24).any()
    assert (expected.astype(np.float32).astype(np.int64) != expected).any()  # float32 would be wrong
    assert "Conv" not in {n.op_type for n in ir_to_onnx(graph).graph.node}
    assert np.array_equal(run_onnxruntime(graph, images)["logits"], expected)


def test_wrong_images_are_refused_naming_the_input():
    graph = residual_graph()
    with pytest.raises(IRError, match=r"input 'image'.*\(N, 8, 8, 3\).*\(2, 8, 8, 4\)"):
        run_numpy(graph, np.zeros((2, 8, 8, 4), np.uint8))
    with pytest.raises(IRError, match=r"input 'image'.*float32"):
        run_onnxruntime(graph, np.zeros((2, 8, 8, 3), np.float32))


def test_declared_shape_that_does_not_fit_names_the_layer():
    graph = residual_graph()
    graph.tensors["sumpool7"] = Tensor("sumpool7", (3, 3, 8), "INT6")
    with pytest.raises(IRError, match=r"layer 'sumpool7' \(SumPool\): output 'sumpool7' has shape \(4, 4, 8\)"):
        run_numpy(graph, random_images(graph, 1))


def test_label_is_declared_as_a_scalar():
    graph = residual_graph()
    graph.tensors["labelselect12"].shape = (1,)
    with pytest.raises(IRError, match=r"layer 'labelselect12' \(LabelSelect\): output 'labelselect12' has shape \(\)"):
        run_numpy(graph, random_images(graph, 1))
    with pytest.raises(IRError, match="not a valid ONNX model"):
        ir_to_onnx(graph)


def test_values_outside_the_declared_datatype_name_the_layer():
    graph = residual_graph()
    graph.tensors["globalsumpool10"].dtype = "INT4"
    with pytest.raises(IRError, match=r"layer 'globalsumpool10' \(GlobalSumPool\).*outside its datatype INT4"):
        run_numpy(graph, random_images(graph, 4))
