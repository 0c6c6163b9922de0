"""Tests for model.data and model.download, on tiny fixtures written in the real formats."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import data, download
from model.data import CIFAR10_CLASSES, Batches, augment_batch, load_cifar10, stratified_split
from model.errors import DataError

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- fixture writers

def _rgb(seed: int, size=(32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def write_release(root: Path, n: int = 20) -> Path:
    """A cifar-10-batches-py folder with n images per batch, pickled like the official files."""
    rel = root / "cifar-10-batches-py"
    rel.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch = {b"batch_label": name.encode(), b"labels": [(i + j) % 10 for j in range(n)],
                 b"data": np.random.default_rng(i).integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"filenames": [b"x.png"] * n}
        with open(rel / name, "wb") as f:
            pickle.dump(batch, f)
    with open(rel / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, f)
    return rel


def _smooth() -> np.ndarray:
    """A gradient image: survives JPEG nearly unchanged, unlike noise."""
    yy, xx = np.mgrid[0:32, 0:32]
    return np.stack([xx * 8, yy * 8, (xx + yy) * 4], axis=-1).astype(np.uint8)


def write_folder(root: Path, classes=("cat", "airplane"), per_class: int = 3) -> dict[str, np.ndarray]:
    """PNG ImageFolder (plus a JPEG and a stray text file); returns {relative path: pixels}."""
    pixels = {}
    for ci, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for k in range(per_class):
            arr = _rgb(100 * ci + k)
            Image.fromarray(arr).save(root / cls / f"{k:04d}.png")
            pixels[f"{cls}/{k:04d}.png"] = arr
        (root / cls / "notes.txt").write_text("not an image")
    Image.fromarray(_smooth()).save(root / classes[0] / "9999.jpg", quality=95)
    return pixels


def zip_dir(src: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                z.write(f, prefix + f.relative_to(src).as_posix())
    return dest


def expect_error(match: str, *args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_cifar10(*args, **kwargs)
    msg = str(info.value)
    assert match in msg and "\n" not in msg, msg
    return msg


# ---------------------------------------------------------------------------- python release

def test_release_splits_and_pixels(tmp_path):
    rel = write_release(tmp_path)
    train = load_cifar10(rel, "train", cache_dir=tmp_path / "c")
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and train.labels[:3].tolist() == [0, 1, 2]
    first = np.random.default_rng(0).integers(0, 256, (20, 3072), dtype=np.uint8)
    assert torch.equal(train.images[:20], torch.from_numpy(first.reshape(20, 3, 32, 32)))
    assert len(load_cifar10(tmp_path, "test").labels) == 20  # parent of cifar-10-batches-py works too
    assert len(load_cifar10(rel, "all")) == 120
    small = load_cifar10(rel, "train", limit_per_class=2)
    assert torch.bincount(small.labels).tolist() == [2] * 10


def test_release_corrupt_and_wrong_shape(tmp_path):
    rel = write_release(tmp_path)
    (rel / "data_batch_3").write_bytes(b"\x80\x04garbage")
    expect_error("data_batch_3", rel)
    with open(rel / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, f)
    expect_error("data_batch_3", rel)
    with open(rel / "data_batch_3", "wb") as f:  # a pickle that would run code is refused
        pickle.dump({b"data": os.getcwd, b"labels": []}, f)
    expect_error("data_batch_3", rel)
    (rel / "test_batch").unlink()
    expect_error("test_batch", rel, "test")


# ---------------------------------------------------------------------------- image folders / zips

def test_folder_pixels_labels_order(tmp_path):
    pixels = write_folder(tmp_path / "d")
    ds = load_cifar10(tmp_path / "d", cache_dir=tmp_path / "c")
    # airplane (label 0) sorts before cat (3); the JPEG 9999.jpg comes last in cat
    assert ds.labels.tolist() == [0, 0, 0, 3, 3, 3, 3]
    assert ds.images.shape == (7, 3, 32, 32)
    for i, key in enumerate(["airplane/0000.png", "airplane/0001.png", "airplane/0002.png", "cat/0000.png"]):
        assert torch.equal(ds.images[i], torch.from_numpy(pixels[key]).permute(2, 0, 1))
    jpeg_err = (ds.images[6].float() - torch.from_numpy(_smooth()).permute(2, 0, 1).float()).abs().mean()
    assert jpeg_err < 3  # lossy, but the right picture
    assert load_cifar10(tmp_path / "d", "all", cache_dir=tmp_path / "c").labels.tolist() == ds.labels.tolist()


def test_grayscale_converted_to_rgb(tmp_path):
    (tmp_path / "d" / "dog").mkdir(parents=True)
    Image.fromarray(np.full((32, 32), 77, np.uint8), "L").save(tmp_path / "d" / "dog" / "a.png")
    ds = load_cifar10(tmp_path / "d", cache_dir=tmp_path / "c")
    assert ds.images.shape == (1, 3, 32, 32) and (ds.images == 77).all() and ds.labels.tolist() == [5]


def test_zip_equals_folder_and_top_level_folder(tmp_path):
    write_folder(tmp_path / "d")
    ref = load_cifar10(tmp_path / "d", cache_dir=tmp_path / "c")
    for prefix in ("", "train/", "cifar/"):
        z = zip_dir(tmp_path / "d", tmp_path / f"x{len(prefix)}.zip", prefix)
        ds = load_cifar10(z, cache_dir=tmp_path / "c")
        assert torch.equal(ds.images, ref.images) and torch.equal(ds.labels, ref.labels)
        expect_error("holds no test split", z, "test", cache_dir=tmp_path / "c")


def test_train_test_subfolders(tmp_path):
    root = tmp_path / "top"
    write_folder(root / "train", classes=("frog",), per_class=2)
    write_folder(root / "test", classes=("ship", "truck"), per_class=1)
    for src in (root, zip_dir(root, tmp_path / "a.zip"), zip_dir(root, tmp_path / "b.zip", "cifar/")):
        kw = dict(cache_dir=tmp_path / "c")
        assert load_cifar10(src, "train", **kw).labels.tolist() == [6, 6, 6]
        assert load_cifar10(src, "test", **kw).labels.tolist() == [8, 8, 9]
        assert load_cifar10(src, "all", **kw).labels.tolist() == [6, 6, 6, 8, 8, 9]


def test_worker_pool_matches_loop(tmp_path, monkeypatch):
    write_folder(tmp_path / "d", per_class=4)
    z = zip_dir(tmp_path / "d", tmp_path / "x.zip")
    ref = load_cifar10(z, cache_dir=tmp_path / "c1")
    monkeypatch.setattr(data, "_POOL_MIN", 0)  # force the 2-process path on a tiny set
    monkeypatch.setattr(data, "_CHUNK", 2)
    assert torch.equal(load_cifar10(z, cache_dir=tmp_path / "c2").images, ref.images)
    (tmp_path / "d" / "cat" / "0002.png").write_bytes(b"broken")
    expect_error("x2.zip:cat/0002.png", zip_dir(tmp_path / "d", tmp_path / "x2.zip"), cache_dir=tmp_path / "c3")


def test_limit_per_class(tmp_path):
    write_folder(tmp_path / "d", per_class=3)
    ds = load_cifar10(tmp_path / "d", limit_per_class=2, cache_dir=tmp_path / "c")
    assert ds.labels.tolist() == [0, 0, 3, 3]
    assert len(load_cifar10(tmp_path / "d", cache_dir=tmp_path / "c")) == 7  # distinct cache entry


def test_cache_reused_and_corrupt_cache_rewritten(tmp_path, monkeypatch):
    write_folder(tmp_path / "d")
    before = sorted(p.name for p in (tmp_path / "d").rglob("*"))
    cache = tmp_path / "c"
    first = load_cifar10(tmp_path / "d", cache_dir=cache)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))
    assert sorted(p.name for p in (tmp_path / "d").rglob("*")) == before  # nothing written next to the data

    def no_decode(*a, **k):
        raise AssertionError("decoded although cached")
    monkeypatch.setattr(data, "_decode", no_decode)
    second = load_cifar10(tmp_path / "d", cache_dir=cache)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert "cached" in second.source

    monkeypatch.undo()
    files[0].write_bytes(b"not an npz")
    third = load_cifar10(tmp_path / "d", cache_dir=cache)
    assert torch.equal(first.images, third.images)
    assert data._read_cache(files[0], 7) is not None  # rewritten


def test_cache_invalidated_by_edit_and_env_default(tmp_path, monkeypatch):
    write_folder(tmp_path / "d")
    monkeypatch.setenv("BNN_CACHE_DIR", str(tmp_path / "env"))
    load_cifar10(tmp_path / "d")
    assert len(list((tmp_path / "env").glob("*.npz"))) == 1
    f = tmp_path / "d" / "cat" / "0000.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(f)
    os.utime(f, ns=(1, 1))
    assert (load_cifar10(tmp_path / "d").images[3] == 0).all()
    assert len(list((tmp_path / "env").glob("*.npz"))) == 2


# ---------------------------------------------------------------------------- loader errors

def test_missing_and_empty(tmp_path):
    expect_error(str(tmp_path / "nope"), tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    expect_error("no images found", tmp_path / "empty", cache_dir=tmp_path / "c")
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    expect_error(str(tmp_path / "empty"), tmp_path / "empty", cache_dir=tmp_path / "c")
    expect_error("unknown split", tmp_path / "empty", "val")


def test_corrupt_zip(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    expect_error("bad.zip", tmp_path / "bad.zip", cache_dir=tmp_path / "c")
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    expect_error("no images found", empty, cache_dir=tmp_path / "c")


def test_corrupt_zip_member(tmp_path):
    write_folder(tmp_path / "d", classes=("cat",), per_class=1)
    z = zip_dir(tmp_path / "d", tmp_path / "x.zip")
    raw = bytearray(z.read_bytes())
    off = raw.index(b"IEND")  # flip a byte inside the stored PNG: CRC check fails
    raw[off - 20] ^= 0xFF
    z.write_bytes(bytes(raw))
    expect_error("x.zip:cat/0000.png", z, cache_dir=tmp_path / "c")


def test_unknown_class_folder(tmp_path):
    write_folder(tmp_path / "d", classes=("cat", "kitten"))
    msg = expect_error("'kitten'", tmp_path / "d", cache_dir=tmp_path / "c")
    assert "airplane" in msg and "truck" in msg


def test_truncated_jpeg(tmp_path):
    write_folder(tmp_path / "d", classes=("cat",), per_class=1)
    jpg = tmp_path / "d" / "cat" / "9999.jpg"
    jpg.write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])
    expect_error("9999.jpg", tmp_path / "d", cache_dir=tmp_path / "c")
    z = zip_dir(tmp_path / "d", tmp_path / "t.zip")
    expect_error("t.zip:cat/9999.jpg", z, cache_dir=tmp_path / "c")


def test_undecodable_and_wrong_size(tmp_path):
    write_folder(tmp_path / "d", classes=("cat",), per_class=1)
    bad = tmp_path / "d" / "cat" / "0000.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    expect_error("0000.png", tmp_path / "d", cache_dir=tmp_path / "c")
    Image.fromarray(_rgb(1, size=(64, 48))).save(bad)
    msg = expect_error("0000.png", tmp_path / "d", cache_dir=tmp_path / "c")
    assert "64x48" in msg


def test_image_outside_class_folder_and_mixed_layout(tmp_path):
    write_folder(tmp_path / "d", classes=("cat",), per_class=1)
    Image.fromarray(_rgb(1)).save(tmp_path / "d" / "loose.png")
    expect_error("loose.png", tmp_path / "d", cache_dir=tmp_path / "c")
    (tmp_path / "d" / "loose.png").unlink()
    write_folder(tmp_path / "d" / "extra", classes=("dog",), per_class=1)
    expect_error("extra/", tmp_path / "d", cache_dir=tmp_path / "c")


# ---------------------------------------------------------------------------- stratified_split

def test_stratified_split():
    labels = torch.arange(500) % 10
    labels = labels[torch.randperm(500, generator=torch.Generator().manual_seed(1))]
    tr, va = stratified_split(labels, val_size=103, seed=3)
    assert tr.dtype == va.dtype == torch.int64
    assert torch.equal(torch.sort(torch.cat([tr, va])).values, torch.arange(500))  # disjoint + covering
    assert torch.equal(tr, tr.sort().values) and torch.equal(va, va.sort().values)
    assert torch.bincount(labels[va], minlength=10).tolist() == [11, 11, 11] + [10] * 7
    tr2, va2 = stratified_split(labels, val_size=103, seed=3)
    assert torch.equal(va, va2) and torch.equal(tr, tr2)
    assert not torch.equal(va, stratified_split(labels, val_size=103, seed=4)[1])
    tr0, va0 = stratified_split(labels, val_size=0)
    assert len(va0) == 0 and torch.equal(tr0, torch.arange(500))


def test_stratified_split_errors():
    labels = torch.tensor([0] * 10 + [1] * 2)
    with pytest.raises(DataError, match="val_size=13"):
        stratified_split(labels, val_size=13)
    with pytest.raises(DataError, match="val_size=6"):
        stratified_split(labels, val_size=6)  # class 1 has only 2 images
    assert len(stratified_split(labels, val_size=4)[1]) == 4


# ---------------------------------------------------------------------------- augment_batch

def test_augment_crop_windows_and_flip():
    b, pad = 64, 4
    x = (torch.arange(b * 3 * 8 * 8) % 251 + 1).to(torch.uint8).reshape(b, 3, 8, 8)
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=pad)
    assert out.shape == x.shape and out.dtype == torch.uint8
    seen_flip = set()
    for i in range(b):
        matches = [(dy, dx, f) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for f in (0, 1)
                   if torch.equal(out[i], (lambda w: w.flip(-1) if f else w)(padded[i, :, dy:dy + 8, dx:dx + 8]))]
        assert matches, f"image {i} is not a (flipped) window of the padded input"
        seen_flip.add(matches[0][2])
    assert seen_flip == {0, 1}


def test_augment_flip_only_and_identity():
    x = torch.rand(32, 3, 5, 5)
    out = augment_batch(x, torch.Generator().manual_seed(1), pad=0)
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    assert out.dtype == torch.float32
    assert torch.equal(augment_batch(x, pad=0, flip=False), x)


def test_augment_deterministic():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    a = augment_batch(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, augment_batch(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, augment_batch(x, torch.Generator().manual_seed(6)))


# ---------------------------------------------------------------------------- Batches

def test_batches_cover_every_index_once():
    n = 103
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    labels = torch.arange(n)
    loader = Batches(images, labels, batch_size=10, shuffle=True, augment=False,
                     generator=torch.Generator().manual_seed(0))
    assert len(loader) == 11
    ys = torch.cat([y for _, y in loader])
    assert torch.equal(ys.sort().values, labels) and not torch.equal(ys, labels)
    assert all(torch.equal(x[:, 0, 0, 0].long(), y) for x, y in loader)
    dropped = Batches(images, labels, 10, shuffle=False, augment=False, drop_last=True)
    assert len(dropped) == 10 and torch.equal(torch.cat([y for _, y in dropped]), torch.arange(100))


def test_batches_resume_reproducible():
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    loader = Batches(images, torch.arange(50), 16, shuffle=True, augment=True, generator=g)
    next(iter(loader))  # advance the state as if an epoch had run
    state = g.get_state()
    epoch = [(x.clone(), y.clone()) for x, y in loader]
    g.set_state(state)
    again = list(loader)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(epoch, again))
    assert epoch[0][0].dtype == torch.uint8 and epoch[0][0].shape == (16, 3, 8, 8)


# ---------------------------------------------------------------------------- download

def _release_tarball(tmp_path: Path, extra: tarfile.TarInfo | None = None) -> Path:
    write_release(tmp_path / "src", n=2)
    archive = tmp_path / "out" / download.ARCHIVE
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", "cifar-10-batches-py")
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x"))
    return archive


def test_check_md5(tmp_path):
    f = tmp_path / "file.tar.gz"
    f.write_bytes(b"hello")
    download.check_md5(f, hashlib.md5(b"hello").hexdigest())
    with pytest.raises(DataError, match="file.tar.gz") as info:
        download.check_md5(f, "0" * 32)
    assert "md5" in str(info.value) and not f.exists()


def test_ensure_from_local_archive_then_skip(tmp_path, monkeypatch):
    archive = _release_tarball(tmp_path)
    monkeypatch.setattr(download, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())

    def offline(*a, **k):
        raise urllib.error.URLError("offline")
    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    rel = download.ensure_cifar10(tmp_path / "out")
    assert rel == tmp_path / "out" / "cifar-10-batches-py" and not archive.exists()
    assert len(load_cifar10(rel, "all")) == 12
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cifar-10-batches-py"]
    assert download.main(["--out", str(tmp_path / "out")]) == 0  # present: nothing to do


def test_ensure_offline_and_unsafe_archive(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"could not download .*offline\?.*DATA=") as info:
        download.ensure_cifar10(tmp_path / "none")
    assert "\n" not in str(info.value) and not list((tmp_path / "none").iterdir())

    evil = tarfile.TarInfo("../evil.txt")
    evil.size = 1
    archive = _release_tarball(tmp_path, evil)
    monkeypatch.setattr(download, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="unsafe archive member '../evil.txt'"):
        download.ensure_cifar10(tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "cifar-10-batches-py").exists()


# ---------------------------------------------------------------------------- the real data, if present

def test_real_zip_sample(tmp_path):
    zpath = Path(os.environ.get("BNN_DATA", REPO / "../shared/datasets/cifar10-jpeg/train.zip"))
    if not zpath.exists():
        pytest.skip(f"real CIFAR-10 zip not found at {zpath} (set BNN_DATA to its path)")
    ds = load_cifar10(zpath, "train", cache_dir=tmp_path, limit_per_class=30)
    assert ds.images.shape == (300, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert torch.bincount(ds.labels).tolist() == [30] * 10
    assert 40 < ds.images.float().mean() < 200  # real photos, not blank
