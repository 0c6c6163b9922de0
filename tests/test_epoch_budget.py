"""model.epoch_budget: the epochs that fit a device-time budget, from timed steps."""
import shlex
import subprocess
import sys

import pytest
import yaml

from model import epoch_budget
from model.config import load_config

TINY_TEACHER = {"name": "t", "model": {"arch": "resnet20"}, "data": {"val_size": 20},
                "train": {"epochs": 4, "batch_size": 8, "eval_batch_size": 8}}
TINY_STUDENT = {"name": "s", "model": {"arch": "bireal", "widths": [8, 16], "blocks": [1, 1], "shortcut_bits": 4},
                "data": {"val_size": 20}, "train": {"epochs": 9, "batch_size": 8, "eval_batch_size": 8,
                                                    "bn_recalibration_images": 8},
                "binarize": {"weights_only_epochs": 3}}


@pytest.fixture
def configs(tmp_path):
    t, s = tmp_path / "t.yaml", tmp_path / "s.yaml"
    t.write_text(yaml.safe_dump(TINY_TEACHER))
    s.write_text(yaml.safe_dump(TINY_STUDENT))
    return t, s


def fake_epoch_cost(table, once=None):
    return lambda cfg, device, steps, train_images, teacher_cfg=None: epoch_budget.EpochCost(
        table[cfg.name], (once or {}).get(cfg.name, 0.0))


def test_teacher_takes_at_most_its_share_and_the_student_the_rest(configs, monkeypatch):
    t, s = (load_config(p) for p in configs)
    monkeypatch.setattr(epoch_budget, "epoch_cost", fake_epoch_cost({"t": 10.0, "s": 7.0}))
    n_t, n_s, *_ , overrides = epoch_budget.plan(t, s, budget_s=100, teacher_share=0.25, steps=1,
                                                 train_images=100, device=None)
    assert (n_t, n_s, overrides) == (2, 9, {})            # 2 x 10 s <= 25 s; (100 - 20) / 7 = 11 -> capped at 9
    n_t, n_s, *_ = epoch_budget.plan(t, s, budget_s=50, teacher_share=0.25, steps=1, train_images=100, device=None)
    assert (n_t, n_s) == (1, 5)                           # floor(12.5 / 10) = 1; floor(40 / 7) = 5


def test_compilation_is_paid_once_per_run(configs, monkeypatch):
    t, s = (load_config(p) for p in configs)
    monkeypatch.setattr(epoch_budget, "epoch_cost", fake_epoch_cost({"t": 10.0, "s": 7.0}, {"t": 5.0, "s": 12.0}))
    n_t, n_s, *_ = epoch_budget.plan(t, s, budget_s=100, teacher_share=0.25, steps=1, train_images=100, device=None)
    assert (n_t, n_s) == (2, 9)   # floor((25 - 5) / 10) = 2; floor((100 - 5 - 20 - 12) / 7) = 9
    n_t, n_s, *_ = epoch_budget.plan(t, s, budget_s=60, teacher_share=0.25, steps=1, train_images=100, device=None)
    assert (n_t, n_s) == (1, 4)   # floor((15 - 5) / 10) = 1; floor((60 - 5 - 10 - 12) / 7) = 4


def test_a_failing_configured_step_is_timed_again_in_float32(configs, monkeypatch):
    t, s = (load_config(p) for p in configs)
    calls = []

    def flaky(cfg, device, steps, train_images, teacher_cfg=None):
        calls.append(cfg.train.bf16)
        if cfg.train.bf16:
            raise RuntimeError("no bf16 kernel")
        return epoch_budget.EpochCost(1.0, 0.0)

    t.train.bf16 = s.train.bf16 = True
    monkeypatch.setattr(epoch_budget, "epoch_cost", flaky)
    *_, overrides = epoch_budget.plan(t, s, budget_s=100, teacher_share=0.25, steps=1, train_images=100, device=None)
    assert overrides == epoch_budget.FLOAT32 and calls[-1] is False


def run(*args):
    return subprocess.run([sys.executable, "-m", "model.epoch_budget", *args], capture_output=True, text=True)


def test_cli_times_real_steps_and_prints_shell_assignments(configs):
    t, s = configs
    r = run("--teacher-config", str(t), "--student-config", str(s), "--budget-s", "1e6", "--steps", "1",
            "--train-images", "16")
    assert r.returncode == 0, r.stderr
    values = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert (int(values["TEACHER_EPOCHS"]), int(values["STUDENT_EPOCHS"])) == (4, 9)  # a huge budget: the configs' own
    assert shlex.split(values["TRAIN_SET"]) == [""]
    assert "ms/step binary weights" in r.stderr and "epoch budget on cpu" in r.stderr


def test_cli_refuses_a_meaningless_budget(configs):
    t, s = configs
    r = run("--teacher-config", str(t), "--student-config", str(s), "--budget-s", "0")
    assert r.returncode == 2 and "--budget-s 0.0 must be > 0" in r.stderr
