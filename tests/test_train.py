"""The trainer: outputs, progressive phases, distillation, exact resume, multi-process."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from model.checkpoint import load_checkpoint, load_trained_model
from model.config import config_from_dict
from model.train import train

from helpers import write_cifar_release

TINY_STUDENT = {
    "name": "tiny",
    "model": {"arch": "bireal", "widths": [8, 16], "blocks": [1, 1], "shortcut_bits": 4},
    "data": {"val_size": 20},
    "train": {"epochs": 3, "batch_size": 16, "lr": 0.003},
    "binarize": {"weights_only_epochs": 1},
}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_cifar_release(tmp_path_factory.mktemp("cifar"), per_class_train=15)


def cfg_with(release, **sections):
    d = json.loads(json.dumps(TINY_STUDENT))
    for k, v in sections.items():
        d.setdefault(k, {}).update(v)
    d["data"]["path"] = str(release)
    return config_from_dict(d)


def test_training_writes_checkpoint_metrics_and_curves(release, tmp_path):
    cfg = cfg_with(release)
    last = train(cfg, tmp_path, progress=False)
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["phase"] for r in rows] == [1, 2, 2]
    assert rows[-1] == last and 0 <= last["val_acc"] <= 1
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,phase,lr")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 3 and state["phase"] == 2
    assert state["config"] == cfg.to_dict()
    for key in ("model", "optimizer", "scheduler", "rng"):
        assert key in state
    model, _, _ = load_trained_model(tmp_path / "checkpoint.pt")
    assert not model.training and not model.stage_quants[0].act_quant.disable_quant


def test_resume_after_interruption_is_bit_identical(release, tmp_path):
    cfg = cfg_with(release)
    train(cfg, tmp_path / "straight", progress=False)
    train(cfg, tmp_path / "resumed", progress=False, stop_after=1)  # "interrupted" after epoch 1 (phase 1)
    train(cfg, tmp_path / "resumed", progress=False, resume=True, stop_after=1)
    train(cfg, tmp_path / "resumed", progress=False, resume=True)
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert (tmp_path / "straight" / "metrics.jsonl").read_text().count("\n") == 3
    strip = lambda p: [{k: v for k, v in json.loads(l).items() if "per_s" not in k and "time" not in k}
                       for l in p.read_text().splitlines()]
    assert strip(tmp_path / "straight" / "metrics.jsonl") == strip(tmp_path / "resumed" / "metrics.jsonl")


def test_resume_refuses_another_config(release, tmp_path):
    train(cfg_with(release, train={"epochs": 1}), tmp_path, progress=False)
    from model.errors import CheckpointError
    with pytest.raises(CheckpointError, match="another config"):
        train(cfg_with(release, train={"epochs": 2, "lr": 0.01}), tmp_path, progress=False, resume=True)


def test_teacher_then_student_with_distillation(release, tmp_path):
    teacher_cfg = config_from_dict({"name": "t", "model": {"arch": "resnet20"}, "data": {"path": str(release), "val_size": 20},
                                    "train": {"epochs": 1, "batch_size": 16, "optimizer": "sgd", "lr": 0.05}})
    train(teacher_cfg, tmp_path / "teacher", progress=False)
    cfg = cfg_with(release, distill={"teacher": str(tmp_path / "teacher" / "checkpoint.pt"), "lam": 0.9,
                                     "feature_weight": 1.0}, train={"epochs": 2})
    last = train(cfg, tmp_path / "student", progress=False)
    assert last["epoch"] == 2 and torch.isfinite(torch.tensor(last["train_loss"]))


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=os.getcwd())


def test_training_cli_and_eval_cli(release, tmp_path):
    cfgfile = tmp_path / "c.yaml"
    import yaml
    cfgfile.write_text(yaml.safe_dump({k: v for k, v in TINY_STUDENT.items()}))
    r = run_cli("-m", "model.train", "--config", str(cfgfile), "--data", str(release), "--out", str(tmp_path / "run"),
                "--epochs", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == [1, 2]  # --epochs keeps phase 1's share (1 of 3 -> 1 of 2)
    r = run_cli("-m", "model.evaluate", "--ckpt", str(tmp_path / "run" / "checkpoint.pt"), "--data", str(release),
                "--split", "test")
    assert r.returncode == 0, r.stderr
    assert "top-1" in r.stdout and "of 40 images" in r.stdout
    r = run_cli("-m", "model.evaluate", "--ckpt", str(tmp_path / "run" / "checkpoint.pt"), "--split", "val")
    assert r.returncode == 0 and "of 20 images" in r.stdout, r.stderr



def test_shorter_epochs_than_the_configs_phase_one_scale_it_down(release, tmp_path):
    """--epochs below the config's binarize.weights_only_epochs used to fail validation before scaling."""
    import yaml
    cfgfile = tmp_path / "c.yaml"
    d = json.loads(json.dumps(TINY_STUDENT))
    d["train"]["epochs"], d["binarize"]["weights_only_epochs"] = 6, 3
    cfgfile.write_text(yaml.safe_dump(d))
    r = run_cli("-m", "model.train", "--config", str(cfgfile), "--data", str(release), "--out", str(tmp_path / "run"),
                "--epochs", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == [1, 2]  # 3 of 6 -> 1 of 2

@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(release, tmp_path):
    """DDP through torchrun (gloo on CPU): the same code path a multi-GPU run takes."""
    import yaml
    cfgfile = tmp_path / "c.yaml"
    d = json.loads(json.dumps(TINY_STUDENT))
    d["train"]["epochs"] = 2
    cfgfile.write_text(yaml.safe_dump(d))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "model.train", "--config", str(cfgfile), "--data", str(release),
                        "--out", str(tmp_path / "ddp"), "--no-progress"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2  # written once (rank 0), not once per process


def test_batchnorm_recalibration_replaces_running_statistics_by_the_calibration_average():
    from model.train import recalibrate_batchnorm
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    images = torch.rand(64, 3, 4, 4) * 255
    net.eval()
    recalibrate_batchnorm(net, images, batch_size=16)
    assert not net.training and net[1].momentum == 0.1
    with torch.no_grad():
        z = net[0](images)
    assert torch.allclose(net[1].running_mean, z.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-4)
    per_batch_var = torch.stack([z[i:i + 16].var(dim=(0, 2, 3), unbiased=True) for i in range(0, 64, 16)])
    assert torch.allclose(net[1].running_var, per_batch_var.mean(0), rtol=1e-4)
