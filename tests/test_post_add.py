"""model.post_add (affine | rprelu): a learnable per-channel increasing function after each residual
add, ahead of the stage's re-quantizer. It exports to ops the lowering reads, lowers to an exact
integer sum (a one-bit-wider AddSat) and a per-channel Threshold, and is bit-exact through PyTorch,
QONNX, both golden models and the RTL; rounding ties included. It compiles whole in both phases."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch._dynamo
from onnx import TensorProto, helper

from build_flow.compile import compile_model
from build_flow.ir import dtype_range
from build_flow.lower import LoweringError
from build_flow.models import Selected, randomize_batchnorm
from model.config import config_from_dict
from model.errors import ConfigError
from model.factory import build_model
from model.phases import FIRST_PHASE, FULLY_BINARY, set_phase
from model.post_add import PostAddAffine, PostAddRPReLU, pos
from model.student import BiRealStudent
from verify.compare import run_stages
from verify.golden_numpy import _threshold, run_numpy

from helpers import random_pixels

KINDS = ("affine", "rprelu")
CHAIN = {"affine": ["Mul", "Add"], "rprelu": ["Sub", "PRelu", "Add"]}


def student(kind: str, bits: int = 4, seed: int = 0, widths=(8, 16), blocks=(1, 2),
            order: str = "sign_conv_bn") -> BiRealStudent:
    torch.manual_seed(seed)
    net = BiRealStudent(widths, blocks, shortcut_bits=bits, sign_bias=order == "sign_conv_bn", block_order=order,
                        post_add=kind)
    return randomize_batchnorm(net, seed).eval()


def blocks_of(model):
    return [b for stage in model.stages for b in stage]


def post_add_thresholds(graph):
    """The Threshold layers that read an AddSat, in block order."""
    return [l for l in graph.layers
            if l.op == "Threshold" and (p := graph.producer(l.inputs[0])) is not None and p.op == "AddSat"]


# ---------------------------------------------------------------- model and config

def test_config_key_validated_and_built():
    base = {"model": {"arch": "bireal", "widths": [8, 16], "blocks": [1, 1]}}
    assert config_from_dict(base).model.post_add == "none"
    for kind, cls in (("none", torch.nn.Identity), ("affine", PostAddAffine), ("rprelu", PostAddRPReLU)):
        cfg = config_from_dict({"model": {**base["model"], "post_add": kind}})
        assert all(isinstance(b.post_add, cls) for b in blocks_of(build_model(cfg.model)))
    with pytest.raises(ConfigError, match=r"model.post_add = 'prelu' is impossible: choose one of none, affine, rprelu"):
        config_from_dict({"model": {**base["model"], "post_add": "prelu"}})
    with pytest.raises(ConfigError, match="model.post_add = 'affine' is impossible: only the bireal student"):
        config_from_dict({"model": {"arch": "resnet20", "post_add": "affine"}})


def test_initial_functions_and_positive_slopes():
    x = torch.randn(2, 8, 3, 3) * 4
    a, r = PostAddAffine(8), PostAddRPReLU(8)
    assert torch.equal(a(x), x)                                  # a = 1, b = 0
    assert torch.equal(r(x), torch.where(x >= 0, x, 0.25 * x))   # RPReLU with β = 0.25, γ = ζ = 0
    p = torch.linspace(-50, 50, 1001)
    assert (pos(p) > 0).all() and (pos(p).diff() > 0).all()
    assert pos(torch.tensor([0.0, 1.0, -1.0, 3.0])).tolist() == [1.0, 2.0, 0.5, 4.0]
    assert torch.equal(pos(-p[p >= 0]), 1 / pos(p[p >= 0]))       # pos(-p) = 1 / pos(p)
    q = torch.zeros(3, requires_grad=True)
    pos(q).sum().backward()
    assert q.grad.tolist() == [1.0, 1.0, 1.0]                    # slope 1 at the initial value


def test_parametrization_is_bit_identical_in_onnxruntime():
    """pos(p) uses only max, + and ÷ (exact or correctly rounded): whichever of PyTorch (the
    exporter's constant folding) or onnxruntime (qonnx's cleanup) folds it, the constant is
    PyTorch's bit for bit. (exp or sqrt would not be: see model/post_add.py.)"""
    p = torch.cat([torch.randn(1 << 16) * 3, torch.randn(1 << 12) * 300, torch.tensor([0.0, 1.0, -1.0, 1e-30])])
    nodes = [helper.make_node("Max", ["p", "zero"], ["pp"]), helper.make_node("Neg", ["p"], ["n"]),
             helper.make_node("Max", ["n", "zero"], ["pn"]), helper.make_node("Add", ["one", "pp"], ["num"]),
             helper.make_node("Add", ["one", "pn"], ["den"]), helper.make_node("Div", ["num", "den"], ["y"])]
    consts = [onnx.numpy_helper.from_array(np.float32(0.0), "zero"), onnx.numpy_helper.from_array(np.float32(1.0), "one")]
    graph = helper.make_graph(nodes, "pos", [helper.make_tensor_value_info("p", TensorProto.FLOAT, [len(p)])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(p)])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["y"], {"p": p.numpy()})[0]
    assert np.array_equal(got.view(np.int32), pos(p).numpy().view(np.int32))


@pytest.mark.parametrize("kind", KINDS)
def test_export_emits_the_chain_between_add_and_quant(tmp_path, kind):
    model = student(kind, seed=11)
    with torch.no_grad():   # slopes far from the tie values too
        for block in blocks_of(model):
            p = block.post_add.a_param if kind == "affine" else block.post_add.beta_param
            p.copy_(torch.randn(p.shape) * 3)
    qonnx_model, graph = compile_model(Selected(model, (3, 32, 32), "t", "config"), tmp_path)
    ops = [n.op_type for n in qonnx_model.graph.node]
    assert not {"Exp", "Sqrt", "Max", "Relu", "Clip", "Div"} & set(ops)   # the parametrization is folded
    consts = [qonnx_model.get_initializer(n.input[1]) for n in qonnx_model.graph.node
              if n.op_type == ("Mul" if kind == "affine" else "PRelu") and qonnx_model.get_initializer(n.input[1]) is not None]
    for block in blocks_of(model):   # PyTorch's slopes, bit for bit, in the exported file
        want = (block.post_add.a() if kind == "affine" else block.post_add.beta()).detach().numpy().reshape(-1)
        assert any(c.size == want.size and np.array_equal(c.reshape(-1).view(np.int32), want.view(np.int32))
                   for c in consts)
    chains = []
    for n in qonnx_model.graph.node:
        if n.op_type == "Add" and all(qonnx_model.get_initializer(i) is None for i in n.input):
            chain, t = [], n.output[0]
            while (c := qonnx_model.find_consumers(t)) and len(c) == 1 and c[0].op_type != "Quant":
                chain.append(c[0].op_type)
                t = c[0].output[0]
            chains.append(chain)
    assert chains == [CHAIN[kind]] * 3
    # each add becomes an integer sum one bit wider than its operands, read by a per-channel Threshold
    ths = post_add_thresholds(graph)
    assert len(ths) == 3
    for th in ths:
        add = graph.producer(th.inputs[0])
        bits_in = int(graph.tensors[add.inputs[0]].dtype[3:])
        assert graph.tensors[add.inputs[1]].dtype == graph.tensors[add.inputs[0]].dtype
        assert graph.tensors[add.outputs[0]].dtype == f"INT{bits_in + 1}"
        assert graph.tensors[th.outputs[0]].dtype == f"INT{bits_in}"
        assert graph.arrays[th.attrs["thresholds"]].shape[0] == graph.tensors[th.outputs[0]].shape[-1]  # per channel
        assert (graph.arrays[th.attrs["direction"]] == 1).all()   # increasing
    assert not [l for l in graph.layers if l.op == "AddSat" and l not in [graph.producer(t.inputs[0]) for t in ths]]


# ---------------------------------------------------------------- exactness

@pytest.mark.parametrize("kind, bits, seed", [("affine", 4, 1), ("rprelu", 4, 2), ("affine", 8, 3), ("rprelu", 8, 4)])
def test_every_reachable_sum_lowers_exactly_ties_included(tmp_path, kind, bits, seed):
    """Each block's Q(post_add(n·s)) in PyTorch equals the IR's Threshold on every integer sum n the
    add can produce, including sums whose value lies exactly halfway between two levels."""
    model = student(kind, bits, seed)
    _, graph = compile_model(Selected(model, (3, 32, 32), "t", "config"), tmp_path)
    ties = 0
    for block, th in zip(blocks_of(model), post_add_thresholds(graph), strict=True):
        add = graph.producer(th.inputs[0])   # every sum of two operands (INT5 also holds 15, which 7 + 7 never is)
        (alo, ahi), (blo, bhi) = (dtype_range(graph.tensors[t].dtype) for t in add.inputs)
        lo, hi = alo + blo, ahi + bhi
        s = float(block.quant.act_quant.scale())
        c = graph.tensors[th.inputs[0]].shape[-1]
        n = torch.arange(lo, hi + 1, dtype=torch.float32)
        x = (n * s).view(1, 1, -1, 1).expand(1, c, -1, 1).contiguous()
        with torch.no_grad():
            v = block.post_add(x)
            want = (block.quant(v) / s)[0, :, :, 0].T.numpy().astype(np.int64)   # (sums, channels)
        got = _threshold(graph, th, np.arange(lo, hi + 1)[:, None].repeat(c, axis=1))
        assert np.array_equal(got, want), th.name
        q = (v / s)[0, :, :, 0]
        ties += int(((q - q.floor()) == 0.5).logical_and(q.abs() < 2 ** (bits - 1)).sum())
    assert ties > 10   # the randomized parameters put many sums on exact ties (half to even)


@pytest.mark.parametrize("kind, bits, order", [("affine", 4, "sign_conv_bn"), ("rprelu", 4, "sign_conv_bn"),
                                               ("affine", 8, "sign_conv_bn"), ("rprelu", 8, "sign_conv_bn"),
                                               ("rprelu", 4, "bn_sign_conv")])
def test_network_bit_exact_pytorch_qonnx_numpy_onnxruntime(tmp_path, kind, bits, order):
    model = student(kind, bits, seed=10 + bits, order=order)
    qonnx_model, graph = compile_model(Selected(model, (3, 32, 32), "t", "config"), tmp_path)
    images = random_pixels(16, seed=bits).numpy().astype(np.uint8)
    results = run_stages(model, qonnx_model, graph, images)
    assert [r.mismatches for r in results] == [0, 0, 0, 0], results
    probes = graph.meta["probes"]
    assert all(any(p["ir"] == th.outputs[0] for p in probes.values()) for th in post_add_thresholds(graph))
    # and the test can fail: one post-add threshold moved by one step is caught inside the network
    th = post_add_thresholds(graph)[0]
    graph.arrays[th.attrs["thresholds"]] = graph.arrays[th.attrs["thresholds"]] + 1
    bad = {r.stage: r.mismatches for r in run_stages(model, qonnx_model, graph, images)}
    assert bad["IR numpy (golden)"] > 0 and bad["QONNX (qonnx execute_onnx)"] == 0


def test_decreasing_affine_counts_downwards_and_stays_exact(tmp_path):
    """A negative slope (a < 0: not reachable through pos(p), forced here) makes those channels
    decreasing: the thresholds machinery handles them with direction -1, bit-exactly."""
    model = student("affine", 4, seed=5)
    for block in blocks_of(model):
        f = block.post_add
        sign = torch.where(torch.arange(f.b.shape[1]) % 2 == 0, -1.0, 1.0).view(1, -1, 1, 1)
        f.a = lambda f=f, sign=sign: pos(f.a_param) * sign   # every other channel decreasing
    qonnx_model, graph = compile_model(Selected(model, (3, 32, 32), "t", "config"), tmp_path)
    for th in post_add_thresholds(graph):
        d = graph.arrays[th.attrs["direction"]]
        assert (d[0::2] == -1).all() and (d[1::2] == 1).all()
    images = random_pixels(8, seed=6).numpy().astype(np.uint8)
    assert [r.mismatches for r in run_stages(model, qonnx_model, graph, images)] == [0, 0, 0, 0]


def test_non_monotone_rprelu_is_refused_naming_the_node(tmp_path):
    """β < 0 (forced here) makes RPReLU fall then rise: no threshold unit computes it."""
    model = student("rprelu", 4, seed=7)
    f = blocks_of(model)[0].post_add
    f.beta = lambda: -0.5 * pos(f.beta_param)
    with pytest.raises(LoweringError) as err:
        compile_model(Selected(model, (3, 32, 32), "t", "config"), tmp_path / "out")
    msg = str(err.value)
    assert msg.startswith("node 'Quant_") and "(Quant): after 'Sub_0' (Sub), 'PRelu_0' (PRelu), 'Add_" in msg
    assert "is not a monotone function of its accumulator: no threshold unit computes it" in msg
    assert not (tmp_path / "out" / "ir").exists()


# ---------------------------------------------------------------- training

@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("phase", [FIRST_PHASE, FULLY_BINARY])
def test_compiles_whole_in_both_phases(fresh_dynamo, kind, phase):
    x = random_pixels(4)
    eager, compiled = (student(kind).train() for _ in range(2))
    for m in (eager, compiled):
        set_phase(m, phase)
        m(x)
    fn = torch.compile(compiled, backend="eager", fullgraph=True)   # raises on any graph break
    y_eager, y_comp = eager(x), fn(x)
    assert torch.equal(y_eager, y_comp)
    y_eager.square().sum().backward()
    y_comp.square().sum().backward()
    names = [n for n, _ in compiled.named_parameters() if ".post_add." in n]
    assert len(names) == 3 * (2 if kind == "affine" else 3)
    grads = dict(compiled.named_parameters())
    for name, p in eager.named_parameters():
        if ".post_add." in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name   # the function learns
            assert torch.allclose(p.grad, grads[name].grad, rtol=1e-5, atol=1e-6), name


def test_phase_one_acts_on_real_values():
    """Stage quantizers off (phase 1): post_add acts on the real-valued sum; RPReLU with β = 1
    (pos(3) / 4) and γ = ζ = 0 is the identity, and the net is then the one without it."""
    x = random_pixels(2)
    plain, with_f = student("none"), student("rprelu")   # same weights, post_add aside
    for m in (plain, with_f):
        set_phase(m, FIRST_PHASE)
    with torch.no_grad():
        assert not torch.equal(plain(x), with_f(x))
        for b in blocks_of(with_f):
            b.post_add.gamma.zero_()
            b.post_add.zeta.zero_()
            b.post_add.beta_param.fill_(3.0)
        assert (blocks_of(with_f)[0].post_add.beta() == 1).all()
        assert torch.equal(plain(x), with_f(x))


# ---------------------------------------------------------------- RTL

def test_rtl_network_with_post_add_is_bit_exact_under_backpressure(tmp_path):
    """AddSat (one bit wider) -> standalone Threshold in bnn_threshold, random stalls on both ends."""
    from hw.generate import generate
    from hw.planner import plan, predict_cycles
    from hw.rtlsim import simulate

    model = student("rprelu", 4, seed=8, widths=(4, 8), blocks=(1, 1))
    _, graph = compile_model(Selected(model, (3, 32, 32), "t", "config"), tmp_path)
    folding = plan(graph, 100, fps=5000)
    design = generate(graph, folding, tmp_path)
    cycles = predict_cycles(graph, folding)
    for th in post_add_thresholds(graph):
        add = graph.producer(th.inputs[0])
        assert cycles[th.name] == cycles[add.name]   # both stream the sum at one beat per cycle
    x = np.ascontiguousarray(random_pixels(8, seed=9).numpy().astype(np.uint8).transpose(0, 2, 3, 1))
    golden = run_numpy(graph, x)
    res = simulate(design, x, in_stall=0.3, out_stall=0.3, seed=5, golden=golden)
    assert res.mismatches == 0
    assert np.array_equal(res.logits, golden["logits"]) and np.array_equal(res.labels, golden["label"].reshape(-1))
    top = (tmp_path / "rtl" / "bnn_top.sv").read_text()
    # the exact INT5 sum of two INT4 operands, then a 15-threshold unit on INT5 inputs, per block
    assert top.count(".IN_EW(4), .IN_SIGNED(1), .OUT_EW(5), .OUT_MIN(-16), .OUT_MAX(15)) u_Add_") == 2
    assert top.count(".IN_EW(5), .IN_SIGNED(1), .N_THRES(15)") == 2
