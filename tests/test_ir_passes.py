"""The IR passes, one at a time, on small hand-made graphs: each changes the structure it
names, keeps the integers the graph computes, and leaves its input graph untouched."""
import copy

import numpy as np

from build_flow.ir import Graph, Layer, Tensor, validate
from build_flow.ir_passes import FuseThresholds, InsertForks, MergeDuplicateLayers, PruneProbes
from verify.golden_numpy import run_numpy


def image(n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 2, 2, 3), dtype=np.uint8)


def mv_then_threshold(shared_row: bool, second_reader: bool = False) -> Graph:
    """image (2,2,3) -> MatrixVector 3->4 accumulators -> Threshold to INT2 [-> AddSat with itself]."""
    rng = np.random.default_rng(1)
    rows = 1 if shared_row else 4
    tensors = {"image": Tensor("image", (2, 2, 3), "UINT8"), "acc": Tensor("acc", (2, 2, 4), "INT11"),
               "y": Tensor("y", (2, 2, 4), "INT2")}
    layers = [Layer("mv", "MatrixVector", ["image"], ["acc"], {"weights": "w"}),
              Layer("th", "Threshold", ["acc"], ["y"], {"thresholds": "t", "direction": "d", "y_min": -2})]
    arrays = {"w": rng.choice([-1, 1], (4, 3)).astype(np.int8),
              "t": np.sort(rng.integers(-300, 300, (rows, 3)), axis=1),
              "d": np.where(rng.random(rows) < 0.5, -1, 1).astype(np.int8)}
    outputs = {"logits": "y"}
    if second_reader:
        tensors["z"] = Tensor("z", (2, 2, 4), "INT11")
        layers.append(Layer("twice", "AddSat", ["acc", "acc"], ["z"]))
        outputs["acc"] = "z"
    return validate(Graph(tensors, layers, "image", outputs, arrays, {}), "test")


def test_fuse_thresholds_makes_one_unit_and_keeps_the_integers():
    for shared in (True, False):
        g = mv_then_threshold(shared)
        before = copy.deepcopy(g)
        fused = g.transform(FuseThresholds())
        assert [l.op for l in fused.layers] == ["MatrixVector"]
        assert fused.arrays[fused.layers[0].attrs["thresholds"]].shape == (4, 3)  # one row per channel
        assert "acc" not in fused.tensors
        validate(fused, "fused")
        x = image()
        assert np.array_equal(run_numpy(fused, x)["logits"], run_numpy(g, x)["logits"])
        assert [l.op for l in g.layers] == [l.op for l in before.layers] and g.tensors.keys() == before.tensors.keys()


def test_fuse_thresholds_leaves_accumulators_that_others_read():
    g = mv_then_threshold(False, second_reader=True)
    assert [l.op for l in g.transform(FuseThresholds()).layers] == ["MatrixVector", "Threshold", "AddSat"]


def two_requantizers(same: bool) -> Graph:
    """image -> two Threshold layers on the same input (the Bi-Real downsample) -> Concat."""
    t = np.array([[10, 100, 200]])
    tensors = {"image": Tensor("image", (2, 2, 3), "UINT8"), "a": Tensor("a", (2, 2, 3), "INT2"),
               "b": Tensor("b", (2, 2, 3), "INT2"), "cat": Tensor("cat", (2, 2, 6), "INT2")}
    layers = [Layer("qa", "Threshold", ["image"], ["a"], {"thresholds": "ta", "direction": "da", "y_min": -2}),
              Layer("qb", "Threshold", ["image"], ["b"], {"thresholds": "tb", "direction": "db", "y_min": -2}),
              Layer("cat", "Concat", ["a", "b"], ["cat"])]
    arrays = {"ta": t, "da": np.array([1], np.int8), "tb": t if same else t + 1, "db": np.array([1], np.int8)}
    return validate(Graph(tensors, layers, "image", {"logits": "cat"}, arrays,
                          {"probes": {"qa_out": {"ir": "a"}, "qb_out": {"ir": "b"}}}), "test")


def test_merge_duplicate_layers_computes_a_requantization_once():
    g = two_requantizers(same=True)
    merged = g.transform(MergeDuplicateLayers())
    assert [l.name for l in merged.layers] == ["qa", "cat"] and merged.layers[1].inputs == ["a", "a"]
    assert "b" not in merged.tensors and "tb" not in merged.arrays
    x = image(seed=3)
    assert np.array_equal(run_numpy(merged, x)["logits"], run_numpy(g, x)["logits"])
    # the merged quantizer's QONNX tensor is still computed, by the twin: its probe follows it
    assert merged.meta["probes"]["qb_out"]["ir"] == "a"
    assert set(merged.transform(PruneProbes()).meta["probes"]) == {"qa_out", "qb_out"}
    assert len(g.layers) == 3  # the input graph is untouched


def test_merge_duplicate_layers_keeps_layers_that_differ():
    assert len(two_requantizers(same=False).transform(MergeDuplicateLayers()).layers) == 3


def test_insert_forks_gives_every_stream_one_reader():
    merged = two_requantizers(same=True).transform(MergeDuplicateLayers()).transform(InsertForks())
    assert [l.op for l in merged.layers] == ["Threshold", "Fork", "Concat"]  # 'a' feeds both concat halves
    g = two_requantizers(same=False).transform(InsertForks())
    assert [l.op for l in g.layers] == ["Fork", "Threshold", "Threshold", "Concat"]  # the image, read twice
    readers: dict[str, int] = {}
    for layer in g.layers:
        for name in layer.inputs:
            readers[name] = readers.get(name, 0) + 1
    assert max(readers.values()) == 1
    validate(g, "forked")
    x = image(seed=4)
    assert np.array_equal(run_numpy(g, x)["logits"], run_numpy(two_requantizers(False), x)["logits"])


def test_lowering_records_its_chain(tmp_path):
    from build_flow.compile import compile_model
    from build_flow.models import Selected

    from helpers import tiny_student

    _, graph = compile_model(Selected(tiny_student(4), (3, 32, 32), "tiny", "config"), tmp_path)
    assert graph.meta["passes"] == ["InferShapes", "GiveUniqueNodeNames", "BatchNormToAffine", "Lowering",
                                    "FuseThresholds", "MergeDuplicateLayers", "InsertForks", "PruneProbes"]
