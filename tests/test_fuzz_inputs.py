"""Bad input, fuzzed: corrupted, truncated and mutated IR folders, folding files, configs and
checkpoints. Every reader either accepts the file or raises the project's FlowError (which
every entry point prints as one `error:` line with exit status 2), never another exception;
an entry point given such a file writes nothing. Seeded (derandomized), so CI sees the same
cases every run."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from build_flow.compile import compile_model
from build_flow.ir import load_ir
from build_flow.models import Selected
from hw.planner import load_folding, plan, save_folding
from model.checkpoint import load_trained_model
from model.config import load_config
from model.errors import FlowError
from model.release import slim_checkpoint

from helpers import tiny_student, write_cifar_release

FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """One valid file of each kind: an IR folder, a folding file, a config and a checkpoint."""
    d = tmp_path_factory.mktemp("valid")
    _, graph = compile_model(Selected(tiny_student(4, seed=1), (3, 32, 32), "tiny", "config"), d)
    save_folding(plan(graph, 100, fps=2000), d / "folding.yaml")
    cfg = d / "student.yaml"
    shutil.copy("configs/student-small.yaml", cfg)
    from model.config import config_from_dict
    from model.train import train
    release_dir = write_cifar_release(d / "data", per_class_train=5)
    c = config_from_dict({"name": "fz", "model": {"arch": "bireal", "widths": [8, 16], "blocks": [1, 1]},
                          "data": {"path": str(release_dir), "val_size": 10},
                          "train": {"epochs": 1, "batch_size": 10, "bn_recalibration_images": 10}})
    train(c, d / "run", progress=False)
    slim_checkpoint(d / "run" / "checkpoint.pt", d / "model.pt")
    return {"ir": d / "ir", "folding": d / "folding.yaml", "config": cfg, "ckpt": d / "model.pt", "graph": graph}


# ---------------------------------------------------------------- mutations of bytes

@st.composite
def byte_mutation(draw):
    """(kind, position fraction, payload): truncate, overwrite a span, insert, or replace all."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "garbage"]))
    return kind, draw(st.floats(0, 1)), draw(st.binary(min_size=1, max_size=64))


def mutate_bytes(data: bytes, mutation) -> bytes:
    kind, where, payload = mutation
    i = int(where * len(data))
    if kind == "truncate":
        return data[:i]
    if kind == "overwrite":
        return data[:i] + payload + data[i + len(payload):]
    if kind == "insert":
        return data[:i] + payload + data[i:]
    return payload


# ---------------------------------------------------------------- mutations of documents

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40), st.floats(allow_nan=True),
                   st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3), st.just({}))


@st.composite
def doc_mutation(draw):
    """A path into the document (indices drawn later against its shape) and what to do there."""
    return (draw(st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=4)),
            draw(st.sampled_from(["delete", "replace"])), draw(LEAVES))


def mutate_doc(doc, mutation):
    path, action, value = mutation
    doc = json.loads(json.dumps(doc))
    node = doc
    for depth, pick in enumerate(path):
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        key = keys[pick % len(keys)]
        last = depth == len(path) - 1 or not isinstance(node[key], (dict, list))
        if last:
            if action == "delete":
                del node[key]
            else:
                node[key] = value
            return doc
        node = node[key]
    return value if action == "replace" else doc


def write_mutated_yaml(src: Path, dst: Path, mutation) -> Path:
    """`src` with a byte mutation ("bytes", m) or a document mutation ("doc", m) applied, at `dst`."""
    text = src.read_bytes()
    kind, m = mutation
    dst.write_bytes(mutate_bytes(text, m) if kind == "bytes" else
                    yaml.safe_dump(mutate_doc(yaml.safe_load(text), m)).encode())
    return dst


def accepts_or_flow_error(read, *args):
    """The reader's only failure mode: a FlowError with a one-line message."""
    try:
        read(*args)
    except FlowError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)


# ---------------------------------------------------------------- the readers

@FUZZ
@given(mutation=byte_mutation(), which=st.sampled_from(["graph.json", "tensors.npz"]))
def test_ir_with_corrupted_bytes(valid, tmp_path_factory, mutation, which):
    d = tmp_path_factory.mktemp("ir")
    shutil.copytree(valid["ir"], d, dirs_exist_ok=True)
    f = d / which
    f.write_bytes(mutate_bytes(f.read_bytes(), mutation))
    accepts_or_flow_error(load_ir, d)


@FUZZ
@given(mutation=doc_mutation())
def test_ir_with_mutated_graph(valid, tmp_path_factory, mutation):
    d = tmp_path_factory.mktemp("ir")
    shutil.copytree(valid["ir"], d, dirs_exist_ok=True)
    doc = json.loads((d / "graph.json").read_text())
    (d / "graph.json").write_text(json.dumps(mutate_doc(doc, mutation)))
    accepts_or_flow_error(load_ir, d)


@FUZZ
@given(mutation=st.one_of(byte_mutation().map(lambda m: ("bytes", m)), doc_mutation().map(lambda m: ("doc", m))))
def test_folding_file_mutated(valid, tmp_path_factory, mutation):
    f = write_mutated_yaml(valid["folding"], tmp_path_factory.mktemp("fold") / "folding.yaml", mutation)
    accepts_or_flow_error(load_folding, f, valid["graph"])


@FUZZ
@given(mutation=st.one_of(byte_mutation().map(lambda m: ("bytes", m)), doc_mutation().map(lambda m: ("doc", m))))
def test_config_mutated(valid, tmp_path_factory, mutation):
    f = write_mutated_yaml(valid["config"], tmp_path_factory.mktemp("cfg") / "c.yaml", mutation)
    accepts_or_flow_error(load_config, f)


@FUZZ
@given(mutation=byte_mutation())
def test_checkpoint_with_corrupted_bytes(valid, tmp_path_factory, mutation):
    f = tmp_path_factory.mktemp("ck") / "m.pt"
    f.write_bytes(mutate_bytes(valid["ckpt"].read_bytes(), mutation))
    accepts_or_flow_error(load_trained_model, f)


@settings(max_examples=40, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=doc_mutation())
def test_checkpoint_with_mutated_contents(valid, tmp_path_factory, mutation):
    """Structurally valid files whose entries (config, epoch, phase, format) are wrong."""
    state = torch.load(valid["ckpt"], weights_only=True)
    meta = {k: v for k, v in state.items() if k != "model"}
    bad = mutate_doc(json.loads(json.dumps(meta, default=str)), mutation)
    if isinstance(bad, dict):
        bad["model"] = state["model"]
    f = tmp_path_factory.mktemp("ck") / "m.pt"
    torch.save(bad, f)
    accepts_or_flow_error(load_trained_model, f)


# ---------------------------------------------------------------- an entry point end to end

def _zero_a_weight(data: bytes, ckpt) -> bytes:
    """The checkpoint with 64 bytes of its largest weight tensor's data set to 0 (the file stays a
    readable zip and pickle: only the checkpoint's digest tells)."""
    state = torch.load(ckpt, weights_only=True)
    raw = max((t for t in state["model"].values() if t.is_floating_point()), key=torch.numel).numpy().tobytes()
    i = data.find(raw[:64])
    assert i >= 0 and raw[:64] != b"\x00" * 64
    return data[:i] + b"\x00" * 64 + data[i + 64:]


@pytest.mark.parametrize("mutation", [("truncate", 0.5, b"x"), ("weights", 0, b""), ("garbage", 0, b"{")])
def test_compile_cli_refuses_a_corrupt_checkpoint_and_writes_nothing(valid, tmp_path, mutation):
    bad = tmp_path / "bad.pt"
    data = valid["ckpt"].read_bytes()
    bad.write_bytes(_zero_a_weight(data, valid["ckpt"]) if mutation[0] == "weights" else mutate_bytes(data, mutation))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "build_flow.compile", "--ckpt", str(bad), "--out", str(out)],
                       capture_output=True, text=True)
    lines = [l for l in r.stderr.splitlines() if l.strip() and "fast_hadamard" not in l and "warnings.warn" not in l]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr and str(bad) in lines[0]
    if mutation[0] == "weights":   # a readable file whose weights changed: the digest catches it
        assert "do not match the digest" in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir())
