"""The airbench-style teacher: its config, the trainer on tiny data, checkpoints, distillation,
patch-whitening init and a graph-break-free forward/backward for torch.compile (CPU only)."""
import copy
import json

import pytest
import torch

from model.checkpoint import load_trained_model
from model.config import load_config
from model.errors import ConfigError
from model.evaluate import evaluate, split_images
from model.factory import build_model
from model.teachers import AirbenchNet, ShiftBatchNorm
from model.train import make_optimizer, train

from helpers import random_pixels, write_cifar_release

CONFIG = "configs/teacher-airbench.yaml"
TINY = {"model.widths": [8, 16, 16], "model.blocks": [1, 3, 2]}  # every stage form: no body, residual, plain


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_cifar_release(tmp_path_factory.mktemp("cifar"), per_class_train=15)


def tiny_run(release, **overrides):
    """The shipped config on the tiny set (130 training, 20 validation images). No compile: it is
    checked below with a CPU backend; the trainer's inductor compile is for the GPU."""
    base = {"data.path": str(release), "data.val_size": 20, "train.batch_size": 16, "train.epochs": 1,
            "train.compile": False, "train.eval_every": 1, "train.warmup_epochs": 0,
            # the config's lr is for batch 1024: give the batch-16 one explicitly
            "train.lr": 1.3 * 16 / 1024, "train.lr_batch_size": None}
    return load_config(CONFIG, {**base, **overrides})


@pytest.fixture(scope="module")
def tiny_teacher(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    cfg = tiny_run(release, **TINY, **{"train.epochs": 6, "train.lr": 0.5, "train.eval_every": 3})
    train(cfg, out, progress=False)
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return out / "checkpoint.pt", rows


def test_config_builds_the_airbench_teacher_with_stage_features():
    cfg = load_config(CONFIG)
    assert cfg.model.arch == "airbench" and cfg.train.optimizer == "sgd" and cfg.train.compile
    assert cfg.train.bf16 and cfg.train.channels_last and cfg.train.bn_recalibration_images == 0
    model = build_model(cfg.model).eval()
    assert isinstance(model, AirbenchNet)
    assert 5e6 < sum(p.numel() for p in model.parameters()) < 7e6
    x = random_pixels(2)
    with torch.no_grad():
        logits, feats = model(x, with_features=True)
        assert torch.equal(logits, model(x))
    assert logits.shape == (2, 10)
    assert [tuple(f.shape) for f in feats] == [(2, 128, 16, 16), (2, 384, 8, 8), (2, 512, 4, 4)]


@pytest.mark.parametrize("overrides, key", [
    ({"model.widths": [64, 256], "model.blocks": [2, 2, 2]}, "model.widths"),
    ({"model.widths": [8, 8, 8, 8, 8], "model.blocks": [1, 1, 1, 1, 1]}, "model.widths"),
    ({"model.widths": [64, 0, 256]}, "model.widths"),
    ({"model.blocks": [2, 0, 2]}, "model.blocks"),
])
def test_bad_widths_and_blocks_are_rejected_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load_config(CONFIG, overrides)


def test_one_epoch_of_the_shipped_config_and_the_checkpoint_loads_back(release, tmp_path):
    cfg = tiny_run(release, **{"data.limit_per_class": 6})  # full widths: 40 training images, 20 validation
    last = train(cfg, tmp_path, progress=False)
    assert last["epoch"] == 1 and torch.isfinite(torch.tensor(last["train_loss"]))
    model, loaded_cfg, state = load_trained_model(tmp_path / "checkpoint.pt")
    assert isinstance(model, AirbenchNet) and not model.training and loaded_cfg.to_dict() == cfg.to_dict()
    x, y, _ = split_images(cfg.data, cfg.data.path, "val")
    assert evaluate(model, x, y)[1] == pytest.approx(last["val_acc"])  # the same weights and BN statistics


def test_learns_a_trivially_learnable_set(tiny_teacher):
    _, rows = tiny_teacher
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_acc"] >= 0.3  # chance is 0.1


def test_serves_as_teacher_for_a_student_run(release, tiny_teacher, tmp_path):
    ckpt, _ = tiny_teacher
    student = load_config("configs/student-small.yaml", {
        "data.path": str(release), "data.val_size": 20, "model.widths": [8, 16], "model.blocks": [1, 1],
        "train.epochs": 1, "train.batch_size": 16, "train.eval_every": 1, "train.compile": False,
        "train.bn_recalibration_images": 16, "binarize.weights_only_epochs": 0,
        # the student's 32x32 and 16x16 stages meet the teacher's 16x16 one
        "distill.teacher": str(ckpt), "distill.lam": 0.9, "distill.feature_weight": 1.0})
    last = train(student, tmp_path, progress=False)
    assert last["epoch"] == 1 and torch.isfinite(torch.tensor(last["train_loss"]))


def test_forward_and_backward_compile_to_one_graph_in_train_mode():
    torch.manual_seed(0)
    eager = AirbenchNet((8, 16, 16), (1, 3, 2)).train()
    eager.init_from_data(random_pixels(8, seed=1).to(torch.uint8))  # a frozen stem too
    twin = copy.deepcopy(eager)
    torch._dynamo.reset()
    compiled = torch.compile(twin, backend="eager", fullgraph=True)  # raises on any graph break
    x = random_pixels(4)
    outs = []
    for net in (eager, compiled):
        logits, feats = net(x, with_features=True)
        (logits.square().mean() + sum(f.mean() for f in feats)).backward()
        outs.append(logits)
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    for (n, a), b in zip(eager.named_parameters(), twin.parameters()):
        assert (a.grad is None) == (b.grad is None), n
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-5), n
    eager.eval(), twin.eval()  # as a frozen teacher inside a student's compiled step
    with torch.no_grad():
        assert torch.allclose(eager(x, with_features=True)[0], compiled(x, with_features=True)[0], atol=1e-5)
    torch._dynamo.reset()


def test_init_from_data_whitens_the_stem_and_the_freeze_survives_a_checkpoint():
    torch.manual_seed(0)
    images = random_pixels(64, seed=2).to(torch.uint8)
    images[:, 1] = images[:, 0] // 2 + images[:, 1] // 2  # correlated channels: whitening has work to do
    model = AirbenchNet((8, 16, 16), (2, 2, 2))
    model.init_from_data(images)
    k = AirbenchNet.STEM_COMPONENTS
    assert not model.stem.weight.requires_grad and model.stem.bias.requires_grad
    with torch.no_grad():
        z = model.stem((images.float() - model.mean) / model.std)[:, :k, 1:-1, 1:-1]  # interior: no padding
    flat = z.permute(1, 0, 2, 3).reshape(k, -1)
    cov = flat @ flat.T / flat.shape[1]
    assert torch.allclose(cov, torch.eye(k), atol=0.05)  # whitened (up to eps), components uncorrelated
    assert torch.equal(model.stem.weight[k:], -model.stem.weight[:k])

    fresh = AirbenchNet((8, 16, 16), (2, 2, 2))
    assert fresh.stem.weight.requires_grad
    fresh.load_state_dict(model.state_dict())
    assert not fresh.stem.weight.requires_grad and torch.equal(fresh.stem.weight, model.stem.weight)

    # the trainer's optimizer leaves the frozen weight alone (no gradient, so no step and no decay)
    cfg = load_config(CONFIG)
    opt = make_optimizer(fresh, cfg)
    before = fresh.stem.weight.clone()
    torch.nn.functional.cross_entropy(fresh.train()(random_pixels(4)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    assert torch.equal(fresh.stem.weight, before)


def test_batchnorm_shift_trains_gain_squared_faster_and_is_not_decayed():
    bn = ShiftBatchNorm(4, gain=8.0)
    x = torch.randn(8, 4, 3, 3)
    bn(x).sum().backward()
    assert torch.allclose(bn.shift.grad, torch.full((4,), 8.0 * 72))  # d/dshift of gain·shift summed over 72 values
    model = AirbenchNet((8, 16, 16), (2, 2, 2))
    decayed = {id(p) for g in make_optimizer(model, load_config(CONFIG)).param_groups if g["weight_decay"] > 0
               for p in g["params"]}
    assert all(id(p) not in decayed for n, p in model.named_parameters() if n.endswith("shift"))
    assert isinstance(bn, torch.nn.BatchNorm2d)  # BatchNorm recalibration finds it
