"""Configs: every shipped config loads; unknown keys and impossible values are refused by name."""
from pathlib import Path

import pytest

from model.config import load_config
from model.errors import ConfigError
from model.factory import build_model

CONFIGS = sorted(Path("configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load_and_build(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    build_model(cfg.model)


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, needle", [
    ("model:\n  shortcut_bitz: 4\n", "unknown config key 'model.shortcut_bitz'"),
    ("trian:\n  epochs: 3\n", "unknown config key 'trian'"),
    ("model:\n  shortcut_bits: 0\n", "model.shortcut_bits = 0 is impossible"),
    ("model:\n  widths: [16, 24]\n  blocks: [1, 1]\n", "model.widths = [16, 24] is impossible"),
    ("model:\n  widths: [16, 32]\n  blocks: [1]\n", "model.widths"),
    ("train:\n  epochs: 0\n", "train.epochs = 0 is impossible"),
    ("train:\n  epochs: 2\nbinarize:\n  weights_only_epochs: 5\n", "binarize.weights_only_epochs = 5"),
    ("train:\n  lr: fast\n", "'train.lr' must be a number"),
    ("distill:\n  lam: 1.5\n", "distill.lam = 1.5 is impossible"),
    ("model: [1, 2]\n", "'model' must be a mapping"),
    ("model:\n  arch: vgg\n", "model.arch = 'vgg' is impossible"),
])
def test_bad_configs_name_the_key(tmp_path, text, needle):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert needle in str(err.value) and str(p) in str(err.value)
    assert "\n" not in str(err.value)


def test_overrides_and_missing_file(tmp_path):
    cfg = load_config("configs/student-small.yaml", {"train.epochs": 3, "data.path": "x"})
    assert cfg.train.epochs == 3 and cfg.data.path == "x"
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "model: [\n"))
