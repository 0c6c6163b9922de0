"""The op registry (build_flow/ops.py): every backend implements every IR op, the loader checks
each layer against its op's spec, and the errors name the layer and the attribute."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from build_flow import ops
from build_flow.ir import Graph, IRError, Layer, Tensor, load_ir, save_ir, validate

# the module of each backend: importing it registers its implementations
BACKEND_MODULES = {"golden_numpy": "verify.golden_numpy", "golden_onnx": "verify.golden_onnx",
                   "rtl": "hw.generate", "planner": "hw.planner", "finn": "build_flow.finn.folding"}


def test_the_backend_list_is_complete():
    assert sorted(BACKEND_MODULES) == sorted(ops.BACKENDS)


@pytest.mark.parametrize("backend", ops.BACKENDS)
def test_every_backend_implements_every_op(backend):
    importlib.import_module(BACKEND_MODULES[backend])
    assert ops.missing(backend) == [], f"{backend} ({BACKEND_MODULES[backend]}) lacks {ops.missing(backend)}"
    assert sorted(ops.implemented(backend)) == sorted(ops.OPS)


def test_a_new_op_is_missing_from_every_backend(monkeypatch):
    """What the test above reports when an op is added to the IR and nowhere else."""
    for module in BACKEND_MODULES.values():
        importlib.import_module(module)
    monkeypatch.setitem(ops.OPS, "Upsample", ops.OpSpec("Upsample", 1, 1, {"factor": ops.Attr("int")}))
    for backend in ops.BACKENDS:
        assert ops.missing(backend) == ["Upsample"]
    with pytest.raises(LookupError, match="the rtl backend has no implementation of IR op 'Upsample'"):
        ops.implementation("rtl", "Upsample")


def test_registration_refuses_unknown_ops_backends_and_duplicates():
    with pytest.raises(ValueError, match="unknown IR op 'Upsampel'"):
        ops.register("rtl", "Upsampel", object())
    with pytest.raises(ValueError, match="unknown backend 'verilog'"):
        ops.register("verilog", "Fork", object())
    importlib.import_module("hw.generate")
    with pytest.raises(ValueError, match="rtl: Fork is registered twice"):
        ops.register("rtl", "Fork", object())


def _pool_graph(**attrs) -> Graph:
    return Graph(tensors={"x": Tensor("x", (4, 4, 2), "INT4"), "y": Tensor("y", (2, 2, 2), "INT4")},
                 layers=[Layer("pool", "MaxPool", ["x"], ["y"], attrs)], input="x", outputs={"out": "y"}, arrays={})


@pytest.mark.parametrize("attrs, message", [
    ({"kernel": 2}, "layer 'pool' \\(MaxPool\\): missing attribute 'stride'"),
    ({"kernel": 2, "stride": "2"}, "attribute 'stride' = '2' must be an integer"),
    ({"kernel": True, "stride": 2}, "attribute 'kernel' = True must be an integer"),
    ({"kernel": 2, "stride": 2, "pad": 1}, "unknown attribute 'pad' \\(this op takes: kernel, stride\\)"),
])
def test_the_loader_checks_attributes_against_the_spec(tmp_path, attrs, message):
    with pytest.raises(IRError, match=message):
        validate(_pool_graph(**attrs), "g")
    # the same through a file: load_ir validates what it reads
    good = save_ir(_pool_graph(kernel=2, stride=2), tmp_path / "ir")
    text = (good / "graph.json").read_text().replace('"stride": 2', '"stride": "2"')
    (good / "graph.json").write_text(text)
    with pytest.raises(IRError, match=r"graph.json: layer 'pool' \(MaxPool\): attribute 'stride' = '2'"):
        load_ir(good)


def test_the_loader_checks_the_number_of_inputs():
    g = Graph(tensors={"a": Tensor("a", (2, 2, 2), "INT4"), "y": Tensor("y", (2, 2, 2), "INT5")},
              layers=[Layer("add", "AddSat", ["a"], ["y"])], input="a", outputs={"out": "y"}, arrays={})
    with pytest.raises(IRError, match=r"layer 'add' \(AddSat\): has 1 inputs, the op takes 2"):
        validate(g, "g")


def test_optional_attributes_may_be_absent_or_null():
    g = Graph(tensors={"x": Tensor("x", (4,), "BIPOLAR"), "y": Tensor("y", (2,), "INT4")},
              layers=[Layer("fc", "MatrixVector", ["x"], ["y"], {"weights": "w", "thresholds": None,
                                                                  "direction": None})],
              input="x", outputs={"out": "y"}, arrays={"w": np.ones((2, 4), np.int8)})
    validate(g, "g")
    g.layers[0].attrs["flatten"] = 1   # a bool, not an int
    with pytest.raises(IRError, match="attribute 'flatten' = 1 must be true or false"):
        validate(g, "g")
