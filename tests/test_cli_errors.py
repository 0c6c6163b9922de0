"""Bad input: one clear line naming the file and what is wrong, exit status 2, no traceback."""
import os
import subprocess
import sys
import zipfile

import pytest
import torch
import yaml

from helpers import write_cifar_release

SMALL = "configs/student-small.yaml"


def run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True)


def assert_one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-1500:])
    assert "Traceback" not in r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def train_args(tmp_path, data, config=SMALL, *extra):
    return ("-m", "model.train", "--config", str(config), "--data", str(data), "--out", str(tmp_path / "run"),
            "--no-progress", *extra)


def test_missing_data_path(tmp_path):
    assert_one_line_error(run(*train_args(tmp_path, tmp_path / "nope")), str(tmp_path / "nope"))


def test_empty_data_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run(*train_args(tmp_path, tmp_path / "empty")), str(tmp_path / "empty"))


def test_corrupt_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip file at all" * 10)
    assert_one_line_error(run(*train_args(tmp_path, bad)), str(bad))


def test_unknown_class_folder(tmp_path):
    z = tmp_path / "d.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("spaceship/0001.png", b"")
    assert_one_line_error(run(*train_args(tmp_path, z)), "spaceship")


def test_truncated_image(tmp_path):
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, "JPEG")
    d = tmp_path / "imgs" / "cat"
    d.mkdir(parents=True)
    (d / "0001.jpg").write_bytes(buf.getvalue()[:200])
    assert_one_line_error(run(*train_args(tmp_path, tmp_path / "imgs")), "0001.jpg")


def test_unknown_config_key(tmp_path):
    c = tmp_path / "c.yaml"
    c.write_text("model:\n  widht: [8, 16]\n")
    assert_one_line_error(run(*train_args(tmp_path, tmp_path, c)), str(c), "model.widht")


def test_impossible_config(tmp_path):
    c = tmp_path / "c.yaml"
    c.write_text("model:\n  shortcut_bits: 0\n")
    assert_one_line_error(run(*train_args(tmp_path, tmp_path, c)), str(c), "shortcut_bits = 0")


def test_impossible_override(tmp_path):
    assert_one_line_error(run(*train_args(tmp_path, tmp_path, SMALL, "--set", "model.shortcut_bits=0")),
                          "shortcut_bits = 0")


def test_corrupt_checkpoint(tmp_path):
    ck = tmp_path / "c.pt"
    ck.write_bytes(os.urandom(4096))
    assert_one_line_error(run("-m", "model.evaluate", "--ckpt", str(ck), "--data", str(tmp_path)), str(ck), "corrupt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    release = write_cifar_release(tmp)
    cfg = tmp / "c.yaml"
    cfg.write_text(yaml.safe_dump({"name": "tiny", "model": {"widths": [8, 16], "blocks": [1, 1]},
                                   "data": {"val_size": 20}, "train": {"epochs": 1, "batch_size": 16}}))
    r = run("-m", "model.train", "--config", str(cfg), "--data", str(release), "--out", str(tmp / "run"), "--no-progress")
    assert r.returncode == 0, r.stderr
    return tmp / "run" / "checkpoint.pt", release


def test_truncated_checkpoint(tmp_path, trained):
    ckpt, release = trained
    cut = tmp_path / "cut.pt"
    data = ckpt.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run("-m", "model.evaluate", "--ckpt", str(cut), "--data", str(release)), str(cut))


def test_mismatched_checkpoint(tmp_path, trained):
    ckpt, release = trained
    state = torch.load(ckpt, weights_only=True)
    state["config"]["model"]["widths"] = [16, 32]  # weights no longer fit the recorded architecture
    bad = tmp_path / "mismatch.pt"
    torch.save(state, bad)
    assert_one_line_error(run("-m", "model.evaluate", "--ckpt", str(bad), "--data", str(release)), str(bad),
                          "do not match")


def test_missing_checkpoint(tmp_path):
    assert_one_line_error(run("-m", "model.evaluate", "--ckpt", str(tmp_path / "x.pt")), "x.pt", "not found")
