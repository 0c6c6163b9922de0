"""Transformations of the integer IR, in the shape of qonnx's `Transformation`.

Each pass is a small class whose `apply(graph) -> Graph` returns a new graph (the input is
never modified); `Graph.transform(pass)` runs one, so the lowering reads as a chain like a
qonnx/FINN build does. They run after the QONNX -> IR translation (build_flow.lower).
"""
from __future__ import annotations

import copy

import numpy as np

from .ir import Graph, Layer, Tensor


class IRPass:
    """One step of the IR chain: `apply(graph)` returns a new Graph."""

    def apply(self, graph: Graph) -> Graph:
        raise NotImplementedError

    def __call__(self, graph: Graph) -> Graph:
        return self.apply(copy.deepcopy(graph))


class FuseThresholds(IRPass):
    """A Threshold that is the only reader of a MatrixVector's accumulators becomes that
    MatrixVector's own output stage (the matrix-vector-threshold unit)."""

    def apply(self, g: Graph) -> Graph:
        for th in [l for l in g.layers if l.op == "Threshold"]:
            producer = g.producer(th.inputs[0])
            if producer is None or producer.op != "MatrixVector" or "thresholds" in producer.attrs \
                    or len(g.consumers(th.inputs[0])) != 1:
                continue
            rows = g.arrays[th.attrs["thresholds"]].shape[0]
            channels = g.tensors[th.inputs[0]].shape[-1]
            if rows == 1 and channels > 1:  # a MatrixVector keeps one row per output channel
                for k in ("thresholds", "direction"):
                    g.arrays[th.attrs[k]] = np.repeat(g.arrays[th.attrs[k]], channels, axis=0)
            del g.tensors[th.inputs[0]]
            producer.outputs = th.outputs
            producer.attrs.update(th.attrs)
            g.layers.remove(th)
        return g


class MergeDuplicateLayers(IRPass):
    """Layers computing the same thing from the same input are computed once (the Bi-Real
    downsampling shortcut re-quantizes one pooled tensor twice, once per concat half)."""

    ARRAYS = ("weights", "thresholds", "direction")

    def apply(self, g: Graph) -> Graph:
        kept: list[Layer] = []
        for layer in g.layers:
            twin = next((k for k in kept if self.same(g, k, layer)), None)
            if twin is None:
                kept.append(layer)
                continue
            for old, new in zip(layer.outputs, twin.outputs):
                for other in g.layers:
                    other.inputs = [new if n == old else n for n in other.inputs]
                g.outputs = {role: new if n == old else n for role, n in g.outputs.items()}
                for probe in g.meta.get("probes", {}).values():   # the QONNX tensor is still computed
                    if probe["ir"] == old:
                        probe["ir"] = new
                del g.tensors[old]
            for k in self.ARRAYS:
                if k in layer.attrs:
                    g.arrays.pop(layer.attrs[k], None)
        g.layers = kept
        return g

    def same(self, g: Graph, a: Layer, b: Layer) -> bool:
        if (a.op, a.inputs) != (b.op, b.inputs) or a.attrs.keys() != b.attrs.keys():
            return False
        if [g.tensors[n].dtype for n in a.outputs] != [g.tensors[n].dtype for n in b.outputs]:
            return False
        for k in a.attrs:
            va, vb = a.attrs[k], b.attrs[k]
            if k in self.ARRAYS:
                va, vb = g.arrays[va], g.arrays[vb]
                if va.shape != vb.shape or not np.array_equal(va, vb):
                    return False
            elif va != vb:
                return False
        return True


class InsertForks(IRPass):
    """Every stream that several layers read gets an explicit Fork (a stream is read once)."""

    def apply(self, g: Graph) -> Graph:
        layers: list[Layer] = []
        for layer in [None] + g.layers:
            if layer is not None:
                layers.append(layer)
            for t in (layer.outputs if layer is not None else [g.input]):
                readers = [(l, i) for l in g.layers for i, n in enumerate(l.inputs) if n == t]
                if len(readers) < 2:
                    continue
                copies = []
                for k, (reader, i) in enumerate(readers):
                    copy_name = f"{t}_fork{k}"
                    g.tensors[copy_name] = Tensor(copy_name, g.tensors[t].shape, g.tensors[t].dtype)
                    reader.inputs[i] = copy_name
                    copies.append(copy_name)
                layers.append(Layer(f"{t}_fork", "Fork", [t], copies))
        g.layers = layers
        return g


class PruneProbes(IRPass):
    """Drop probe entries (QONNX quantizer -> IR tensor) whose tensor an earlier pass removed."""

    def apply(self, g: Graph) -> Graph:
        g.meta["probes"] = {q: p for q, p in g.meta.get("probes", {}).items() if p["ir"] in g.tensors}
        return g


# The order matters: fusing first lets duplicates compare whole units; forks come last,
# once the set of readers of every stream is final.
IR_PASSES = (FuseThresholds(), MergeDuplicateLayers(), InsertForks(), PruneProbes())
