"""Recipe choices as config values: evaluation interval, LR schedule and batch scaling,
weight decay per phase, binarization order, and the compiled step in a real run."""
import json
import math

import pytest
import torch

from model.checkpoint import load_checkpoint, load_trained_model
from model.config import config_from_dict
from model.errors import ConfigError
from model.phases import FULLY_BINARY, get_phase
from model.train import effective_lr, lr_lambda, make_optimizer, train, weight_decay_for_phase

from helpers import write_cifar_release

BASE = {
    "name": "tiny",
    "model": {"arch": "bireal", "widths": [8, 16], "blocks": [1, 1], "shortcut_bits": 4, "sign_bias": False,
              "block_order": "bn_sign_conv"},
    "data": {"val_size": 20},
    "train": {"epochs": 4, "batch_size": 16, "lr": 0.003, "bn_recalibration_images": 16},
    "binarize": {"weights_only_epochs": 1},
}


def cfg(release=None, **sections):
    d = json.loads(json.dumps(BASE))
    for k, v in sections.items():
        d.setdefault(k, {}).update(v)
    if release is not None:
        d["data"]["path"] = str(release)
    return config_from_dict(d)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_cifar_release(tmp_path_factory.mktemp("cifar"), per_class_train=10)


def test_evaluation_and_checkpoint_every_k_epochs_and_after_the_last(release, tmp_path):
    c = cfg(release, train={"epochs": 3, "eval_every": 2})
    last = train(c, tmp_path, progress=False)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]                        # every epoch's training figures
    assert [r["val_acc"] is not None for r in rows] == [False, True, True]
    assert rows[-1] == last and load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 3
    assert (tmp_path / "curves.png").exists()


def test_resume_from_an_evaluated_epoch_matches_a_straight_run(release, tmp_path):
    c = cfg(release, train={"epochs": 3, "eval_every": 2})
    train(c, tmp_path / "straight", progress=False)
    train(c, tmp_path / "resumed", progress=False, stop_after=2)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["epoch"] == 2
    train(c, tmp_path / "resumed", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_compiled_training_run_on_cpu(release, tmp_path):
    """train.compile on the CPU: the trainer's compiled step (forward and backward traced by
    AOTAutograd) trains and writes a checkpoint that loads and evaluates like any other."""
    c = cfg(release, train={"epochs": 1, "compile": True, "compile_backend": "aot_eager"},  # no C++ build in CI
            binarize={"weights_only_epochs": 0})
    last = train(c, tmp_path, progress=False)
    model, _, state = load_trained_model(tmp_path / "checkpoint.pt")
    assert state["phase"] == FULLY_BINARY and get_phase(model) == FULLY_BINARY
    assert 0 <= last["val_acc"] <= 1 and last["train_img_per_s"] > 0


def test_activations_first_run_trains_both_phases(release, tmp_path):
    c = cfg(release, train={"epochs": 2}, binarize={"weights_only_epochs": 1, "order": "activations_first"})
    train(c, tmp_path, progress=False)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == [1, 2]
    model, _, _ = load_trained_model(tmp_path / "checkpoint.pt")
    assert not model.stem.weight_quant.disable_quant  # the released model is fully binary


def test_linear_schedule_decays_to_zero_and_restarts_at_the_switch():
    c = cfg(train={"epochs": 4, "lr_schedule": "linear", "warmup_epochs": 0}, binarize={"weights_only_epochs": 2})
    f = lr_lambda(c, steps_per_epoch=10)
    assert [f(s) for s in (0, 10, 19)] == pytest.approx([1.0, 1 - 10 / 20, 1 - 19 / 20])
    assert f(20) == 1.0 and f(30) == pytest.approx(0.5) and f(40) == 0.0
    cos = lr_lambda(cfg(train={"epochs": 4, "warmup_epochs": 0}, binarize={"weights_only_epochs": 2}), 10)
    assert cos(10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_learning_rate_follows_the_batch_size():
    adam = cfg(train={"batch_size": 1024, "lr": 0.002, "lr_batch_size": 256})
    sgd = cfg(train={"batch_size": 1024, "lr": 0.1, "lr_batch_size": 256, "optimizer": "sgd"})
    assert effective_lr(adam) == pytest.approx(0.004) and effective_lr(sgd) == pytest.approx(0.4)
    assert effective_lr(cfg(train={"lr": 0.002})) == 0.002
    model = torch.nn.Conv2d(3, 4, 3)
    assert make_optimizer(model, sgd).param_groups[0]["lr"] == pytest.approx(0.4)


def test_weight_decay_per_phase(release, tmp_path):
    c = cfg(release, train={"epochs": 2, "weight_decay": 1e-4, "weight_decay_phase2": 0.0})
    assert weight_decay_for_phase(c, 1) == 1e-4 and weight_decay_for_phase(c, 2) == 0.0
    train(c, tmp_path, progress=False)
    groups = load_checkpoint(tmp_path / "checkpoint.pt")["optimizer"]["param_groups"]
    assert groups[0]["weight_decay"] == 0.0  # the phase-2 value, set at the switch
    assert weight_decay_for_phase(cfg(train={"weight_decay": 1e-4}), 2) == 1e-4  # None: the same in both


def test_branch_biases_and_scales_get_no_weight_decay():
    from model.factory import build_model
    c = cfg(train={"weight_decay": 1e-4})
    model = build_model(c.model)
    decayed = {id(p) for p in make_optimizer(model, c).param_groups[0]["params"]}
    names = [n for n, p in model.named_parameters() if id(p) in decayed]
    assert names and all(n.endswith(".weight") and "bn" not in n for n in names)


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "lr_schedule", "step", "choose one of cosine, linear"),
    ("train", "eval_every", 0, "train.eval_every = 0"),
    ("train", "lr_batch_size", 0, "train.lr_batch_size = 0"),
    ("train", "compile_mode", "fast", "train.compile_mode = 'fast'"),
    ("train", "compile_backend", "tvm", "train.compile_backend = 'tvm'"),
    ("train", "weight_decay_phase2", -1.0, "train.weight_decay_phase2 = -1.0"),
    ("binarize", "order", "both", "binarize.order = 'both'"),
    ("model", "block_order", "conv_sign", "model.block_order = 'conv_sign'"),
    ("model", "sign_bias", True, "model.sign_bias = True"),
])
def test_bad_recipe_values_name_the_key(section, key, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg(**{section: {key: value}})
