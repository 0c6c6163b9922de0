"""model.sweep on the CPU, tiny: variants side by side against one teacher, the deadline, bad input."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from model.checkpoint import load_trained_model
from model.config import config_from_dict
from model.errors import ConfigError
from model.sweep import load_sweep, main, yaml_value

from helpers import write_cifar_release

REPO = Path(__file__).resolve().parents[1]
STUDENT = str(REPO / "configs" / "student-small.yaml")
TEACHER = str(REPO / "configs" / "teacher-resnet20.yaml")
# 8 images per class: 60 to train (batch 16, 3 steps), 20 to validate; tiny widths
TINY = {"data.limit_per_class": 8, "data.val_size": 20, "train.batch_size": 16, "model.widths": [8, 16, 32],
        "model.blocks": [1, 1, 1], "train.bn_recalibration_images": 60}
TINY_TEACHER = {"data.limit_per_class": 8, "data.val_size": 20, "train.batch_size": 16, "train.lr": 0.05}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_cifar_release(tmp_path_factory.mktemp("cifar"), per_class_train=10)


@pytest.fixture(scope="module")
def teacher_ckpt(release, tmp_path_factory):
    """A 1-epoch ResNet-20 teacher, trained in this process."""
    from model.train import train
    out = tmp_path_factory.mktemp("teacher")
    train(config_from_dict({"name": "t", "model": {"arch": "resnet20"},
                            "data": {"path": str(release), "val_size": 20, "limit_per_class": 4},
                            "train": {"epochs": 1, "batch_size": 10, "optimizer": "sgd", "lr": 0.05}}), out, progress=False)
    return out / "checkpoint.pt"


def write_sweep(tmp_path, doc, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rows_of(folder):
    return [json.loads(l) for l in (folder / "metrics.jsonl").read_text().splitlines()]


def test_two_variants_against_one_teacher_finish_and_the_table_holds_their_metrics(release, tmp_path, capsys):
    sweep = write_sweep(tmp_path, {
        "deadline_s": 240, "grace_s": 5,
        "teacher": {"config": TEACHER, "epochs": 1, "set": TINY_TEACHER},
        "student": {"config": STUDENT, "set": TINY},
        "variants": [{"name": "kd", "epochs": 1}, {"name": "pure-kd", "epochs": 1, "set": {"distill.lam": 1.0}}]})
    out = tmp_path / "out"
    args = ["--sweep", str(sweep), "--data", str(release), "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "sweep.json").read_text())
    md = (out / "sweep.md").read_text()
    assert md in printed and summary["complete"]
    assert summary["device"].startswith("cpu") and summary["torch"][0].isdigit() and "UTC" in summary["date"]
    assert summary["command"].startswith("python -m model.sweep --sweep")
    t = summary["teacher"]
    assert t["status"] == "finished" and t["epochs_done"] == 1 and t["last_val_acc"] == rows_of(out / "teacher")[-1]["val_acc"]
    assert "| teacher | finished | 1/1 |" in md
    assert [r["name"] for r in summary["variants"]] == ["kd", "pure-kd"]
    for r in summary["variants"]:
        rows = rows_of(out / r["name"])
        assert r["status"] == "finished" and r["epochs_done"] == r["epochs"] == len(rows) == 1
        assert r["last_val_acc"] == r["best_val_acc"] == rows[-1]["val_acc"]
        assert r["train_img_per_s"] == rows[-1]["train_img_per_s"] > 0 and r["wall_s"] > 0
        assert f"| {r['name']} | finished | 1/1 |" in md and f"{100 * rows[-1]['val_acc']:.2f} % (ep 1)" in md
        cfg = yaml.safe_load((out / r["name"] / "config.yaml").read_text())
        assert cfg["distill"]["teacher"] == str(out / "teacher" / "checkpoint.pt")
        assert cfg["model"]["widths"] == [8, 16, 32] and cfg["data"]["limit_per_class"] == 8
        assert (out / r["name"] / "train.log").read_text().startswith("$ ")
    assert yaml.safe_load((out / "pure-kd" / "config.yaml").read_text())["distill"]["lam"] == 1.0

    # again into the same folder: the complete teacher and variants are reused, nothing is trained
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pt")}
    assert len(before) == 3
    assert main(args) == 0
    again = json.loads((out / "sweep.json").read_text())
    assert {r["status"] for r in [again["teacher"], *again["variants"]]} == {"finished (earlier run)"}
    assert [r["last_val_acc"] for r in again["variants"]] == [r["last_val_acc"] for r in summary["variants"]]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pt")} == before


def test_the_deadline_stops_the_slow_variant_at_its_last_epoch_and_keeps_the_others(release, teacher_ckpt, tmp_path):
    """The deadline stops the slow variant; the fast one finished; a failing one does not stop the others."""
    sweep = write_sweep(tmp_path, {
        "deadline_s": 35, "grace_s": 3,
        "teacher": {"checkpoint": str(teacher_ckpt)},
        "student": {"config": STUDENT, "set": TINY},
        "variants": [{"name": "fast", "epochs": 1}, {"name": "slow", "epochs": 5000},
                     {"name": "broken", "epochs": 1, "set": {"train.batch_size": 1000}}]})
    out = tmp_path / "out"
    t0 = time.monotonic()
    assert main(["--sweep", str(sweep), "--data", str(release), "--out", str(out)]) == 0
    assert time.monotonic() - t0 < 35
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["teacher"]["status"] == f"given ({teacher_ckpt})" and summary["teacher"]["epochs_done"] == 1
    assert not (out / "teacher").exists()
    by = {r["name"]: r for r in summary["variants"]}
    assert by["fast"]["status"] == "finished" and len(rows_of(out / "fast")) == 1
    slow, k = by["slow"], by["slow"]["epochs_done"]
    assert slow["state"] == "stopped" and slow["status"] == f"stopped at epoch {k} of 5000" and k >= 0
    assert f"| slow | stopped at epoch {k} of 5000 | {k}/5000 |" in (out / "sweep.md").read_text()
    if k >= 1:
        _, cfg, state = load_trained_model(out / "slow" / "checkpoint.pt")
        assert state["epoch"] == k and cfg.train.epochs == 5000
        rows = [r for r in rows_of(out / "slow") if r["epoch"] <= k]
        assert len(rows) == k and slow["last_val_acc"] == rows[-1]["val_acc"]
        assert slow["best_val_acc"] == max(r["val_acc"] for r in rows)
    assert not list((out / "slow").glob(".*.tmp"))
    broken = by["broken"]
    assert broken["state"] == "failed" and broken["status"].startswith("failed: error:")
    assert "batch_size" in broken["status"] and broken["epochs_done"] == 0


def test_a_bad_variant_fails_at_once_naming_it_and_the_key_and_launches_nothing(release, tmp_path):
    sweep = write_sweep(tmp_path, {
        "deadline_s": 60,
        "teacher": {"config": TEACHER, "epochs": 1},
        "student": {"config": STUDENT, "set": TINY},
        "variants": [{"name": "good"}, {"name": "typo", "set": {"train.nonsense": 1}}]})
    out = tmp_path / "out"
    args = ["--sweep", str(sweep), "--data", str(release), "--out", str(out)]
    with pytest.raises(ConfigError, match=r"variant 'typo': .*unknown config key 'train\.nonsense'"):
        main(args)
    r = subprocess.run([sys.executable, "-m", "model.sweep", *args], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "variant 'typo'" in r.stderr and "train.nonsense" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("doc, message", [
    ({"variants": [{"name": "a"}], "varaints": []}, r"unknown key 'varaints'"),
    ({"variants": [{"name": "a"}, {"name": "a", "epochs": 2}]}, r"variant 'a': duplicate name"),
    ({"variants": [{"name": "teacher"}]}, r"reserved"),
    ({"variants": [{"name": "../x"}]}, r"not a folder name"),
    ({"variants": [{"name": "a", "lr": 1}]}, r"variants\[0\]: unknown key 'lr'"),
    ({"variants": [{"name": "a", "set": {"distill.lam": 2.0}}]}, r"variant 'a': .*distill\.lam = 2\.0 is impossible"),
    ({"variants": [{"name": "a", "set": {"train.epochs": "many"}}]}, r"variant 'a': .*train\.epochs' must be an integer"),
    ({"variants": [{"name": "a", "epochs": 3, "set": {"train.epochs": 4}}]}, r"variant 'a': epochs 3 and set train"),
    ({"variants": [{"name": "a", "epochs": 0}]}, r"epochs: must be a positive integer"),
    ({"variants": []}, r"variants: must be a non-empty list"),
    ({"deadline_s": 4, "variants": [{"name": "a"}]}, r"leaves no time to train"),
    ({"deadline_s": None, "variants": [{"name": "a"}]}, r"deadline_s"),
    ({"teacher": {"checkpoint": "nowhere.pt", "epochs": 3}, "variants": [{"name": "a"}]}, r"cannot go with it"),
    ({"teacher": {"checkpoint": "nowhere.pt"}, "variants": [{"name": "a"}]}, r"teacher\.checkpoint: .*not found"),
    ({"teacher": {"config": TEACHER, "set": {"train.optimizer": "lion"}}, "variants": [{"name": "a"}]},
     r"teacher: .*train\.optimizer"),
])
def test_sweep_file_errors_name_the_place(release, tmp_path, doc, message):
    full = {"deadline_s": 60, "student": {"config": STUDENT, "set": TINY}, **doc}
    if full["deadline_s"] is None:
        del full["deadline_s"]
    with pytest.raises(ConfigError, match=message):
        load_sweep(write_sweep(tmp_path, full), str(release), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_teacher_checkpoint_is_taken_as_it_is_and_overrides_reach_the_trainer_verbatim(release, teacher_ckpt,
                                                                                         tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, {
        "deadline_s": 60, "teacher": {"checkpoint": str(teacher_ckpt)},
        "student": {"config": STUDENT, "set": TINY},
        "variants": [{"name": "a", "epochs": 3, "set": {"train.lr": 1e-05}}]}), str(release), tmp_path / "out")
    assert sweep.teacher.given == teacher_ckpt and sweep.teacher.epochs == 1
    (a,) = sweep.variants
    assert a.cfg.distill.teacher == str(teacher_ckpt) and a.cfg.train.lr == 1e-05
    assert a.cfg.binarize.weights_only_epochs == 1  # student-small's 2 of 6, kept as a share of 3
    cmd = a.command()
    sets = [cmd[i + 1] for i, c in enumerate(cmd) if c == "--set"]
    assert "train.lr=1.0e-05" in sets and "model.widths=[8, 16, 32]" in sets
    for item in sets:  # each value parses back to what was validated
        key, value = item.split("=", 1)
        assert yaml.safe_load(value) == a.sets[key]
    assert yaml_value(True) == "true" and yaml_value("a b") == "a b"


@pytest.mark.parametrize("name", ["recipe-1", "smoke-cpu"])
def test_the_committed_sweep_files_are_valid(release, tmp_path, name):
    sweep = load_sweep(REPO / "configs" / "sweeps" / f"{name}.yaml", str(release), tmp_path / "out")
    assert sweep.deadline_s <= 570 and len({v.name for v in sweep.variants}) == len(sweep.variants)
    if name == "recipe-1":
        assert 4 <= len(sweep.variants) <= 6
        assert {v.config_path.name for v in sweep.variants} == {"student-flagship.yaml"}


# ---------------------------------------------------------------- the orchestration, with stand-in trainers

FAKE = """
import json, shutil, signal, sys, time
from pathlib import Path
out, ckpt, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
out.mkdir(parents=True, exist_ok=True)
if mode != "nothing":
    (out / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "val_acc": 0.5, "train_img_per_s": 100.0}) + "\\n")
    shutil.copy(ckpt, out / "checkpoint.pt")  # holds epoch 1
    (out / ".checkpoint.pt.x1y2.tmp").write_text("a save cut short")
if mode != "exit":
    time.sleep(100)
"""


@pytest.fixture
def fake_trainer(monkeypatch, teacher_ckpt):
    """Each stage runs FAKE instead of model.train: mode by stage name."""
    from model.sweep import Stage
    modes = {}
    monkeypatch.setattr(Stage, "command", lambda self, python=sys.executable:
                        [python, "-c", FAKE, str(self.out), str(teacher_ckpt), modes[self.name]])
    return modes


def test_the_teacher_stage_stops_at_max_s_and_a_run_that_ignores_sigterm_is_killed(release, tmp_path, fake_trainer):
    fake_trainer.update(teacher="sleep", quick="exit", stubborn="ignore-term")
    sweep = write_sweep(tmp_path, {
        "deadline_s": 12, "grace_s": 2,
        "teacher": {"config": TEACHER, "epochs": 5000, "set": TINY_TEACHER, "max_s": 2},
        "student": {"config": STUDENT, "set": TINY},
        "variants": [{"name": "quick", "epochs": 1}, {"name": "stubborn", "epochs": 5000}]})
    out = tmp_path / "out"
    t0 = time.monotonic()
    assert main(["--sweep", str(sweep), "--data", str(release), "--out", str(out)]) == 0
    wall = time.monotonic() - t0
    assert 12 - 5 - 2 + 2 <= wall < 12  # SIGTERM at deadline - grace - 5 s, SIGKILL grace later
    summary = json.loads((out / "sweep.json").read_text())
    t = summary["teacher"]
    assert t["status"] == "stopped at epoch 1 of 5000" and t["wall_s"] < 5  # the students distill from it
    by = {r["name"]: r for r in summary["variants"]}
    assert by["quick"]["status"] == "finished" and by["quick"]["last_val_acc"] == 0.5
    stubborn = by["stubborn"]
    assert stubborn["status"] == "stopped at epoch 1 of 5000" and stubborn["returncode"] == -9
    assert stubborn["train_img_per_s"] == 100.0
    assert not list((out / "stubborn").glob(".*.tmp")) and not list((out / "teacher").glob(".*.tmp"))


def test_a_teacher_without_a_checkpoint_at_max_s_starts_no_variant_and_fails(release, tmp_path, fake_trainer, capsys):
    fake_trainer.update(teacher="nothing")
    sweep = write_sweep(tmp_path, {
        "deadline_s": 30, "grace_s": 1,
        "teacher": {"config": TEACHER, "set": TINY_TEACHER, "max_s": 1},
        "student": {"config": STUDENT, "set": TINY}, "variants": [{"name": "a"}]})
    out = tmp_path / "out"
    assert main(["--sweep", str(sweep), "--data", str(release), "--out", str(out)]) == 1
    assert "error: no variant produced metrics: the teacher had no checkpoint" in capsys.readouterr().err
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["teacher"]["status"] == "stopped at epoch 0 of 30"
    assert summary["variants"][0]["status"].startswith("not started (the teacher had no checkpoint")
    assert not (out / "a").exists()
