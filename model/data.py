"""CIFAR-10 loading (python release, ImageFolder dir or zip), splits, GPU-side augmentation.

Whole splits are decoded into memory as uint8 NCHW tensors; JPEG/PNG sources are decoded
once and cached as .npz under a cache dir (never next to the data, which may be read-only).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
import pickle
import sys
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from model.errors import DataError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")  # official label order
IMAGE_SIZE = 32
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "test", "all")
RELEASE_DIR = "cifar-10-batches-py"
RELEASE_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CACHE_VERSION = 1  # bump when decoding or the cache layout changes
_CHUNK = 1000      # images per worker task
_POOL_MIN = 4000   # below this, starting worker processes costs more than it saves


@dataclass
class Dataset:
    """A whole split decoded in memory."""
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    source: str           # where it came from, for logs

    def __len__(self) -> int:
        return len(self.labels)


def _oneline(exc: BaseException) -> str:
    """Exception text squeezed onto one line (errors must be single-line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


# ---------------------------------------------------------------------------- loading

def load_cifar10(path: str | Path, split: str = "train", cache_dir: str | Path | None = None,
                 limit_per_class: int | None = None) -> Dataset:
    """Load a CIFAR-10 split from the python release, an ImageFolder directory or a zip of one.

    `limit_per_class` keeps only the first k images of each class (after sorting), to make
    quick runs and tests cheap.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}' (expected one of: {', '.join(SPLITS)})")
    if limit_per_class is not None and limit_per_class < 1:
        raise DataError(f"limit_per_class={limit_per_class} must be a positive number")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    release = _release_dir(path)
    if release is not None:
        return _load_release(release, split, limit_per_class)
    return _load_images(path, split, cache_dir, limit_per_class)


def _release_dir(path: Path) -> Path | None:
    """The python-release folder at or directly under `path`, if there is one."""
    if not path.is_dir():
        return None
    for cand in (path, path / RELEASE_DIR):
        if cand.is_dir() and any((cand / f).is_file() for f in ("batches.meta", "data_batch_1", "test_batch")):
            return cand
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Only lets numpy arrays through: a pickle from the internet must not run arbitrary code."""
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def _load_release(root: Path, split: str, limit: int | None) -> Dataset:
    names = RELEASE_FILES["train"] + RELEASE_FILES["test"] if split == "all" else RELEASE_FILES[split]
    images, labels = [], []
    for name in names:
        file = root / name
        if not file.is_file():
            raise DataError(f"{file}: missing batch file of the CIFAR-10 python release")
        try:
            with open(file, "rb") as f:
                batch = _ArrayUnpickler(f, encoding="bytes").load()
            data = np.asarray(batch[b"data"])
            lab = np.asarray(batch[b"labels"], dtype=np.int64)
        except DataError:
            raise
        except Exception as exc:  # unpickling a corrupt file raises many types
            raise DataError(f"{file}: corrupt CIFAR-10 batch ({_oneline(exc)})") from None
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * IMAGE_SIZE ** 2:
            raise DataError(f"{file}: b'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
        if lab.shape != (len(data),):
            raise DataError(f"{file}: {lab.size} labels for {len(data)} images")
        if lab.size and (lab.min() < 0 or lab.max() >= len(CIFAR10_CLASSES)):
            raise DataError(f"{file}: labels outside 0..{len(CIFAR10_CLASSES) - 1}")
        images.append(data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE))  # rows are R, G, B planes
        labels.append(lab)
    imgs, labs = np.concatenate(images), np.concatenate(labels)
    if limit is not None:
        keep = _first_per_class(labs, limit)
        imgs, labs = imgs[keep], labs[keep]
    return Dataset(torch.from_numpy(imgs), torch.from_numpy(labs),
                   f"{root} (python release, split={split})")


def _first_per_class(labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the first k occurrences of every label, in original order."""
    seen: dict[int, int] = {}
    keep = []
    for i, lab in enumerate(labels.tolist()):
        if seen.get(lab, 0) < k:
            seen[lab] = seen.get(lab, 0) + 1
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def _list_files(path: Path) -> list[str]:
    """All file names in the zip or under the directory, '/'-separated and relative."""
    if path.is_dir():
        out = []
        for dirpath, _, files in os.walk(path):
            rel = os.path.relpath(dirpath, path)
            out += [f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in files]
        return out
    try:
        with zipfile.ZipFile(path) as z:
            return [i.filename for i in z.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({_oneline(exc)})") from None


def _select(names: list[str], split: str, where: Path, limit: int | None) -> list[tuple[str, int]]:
    """Pick (member, label) pairs of `split` from an ImageFolder listing, sorted by class then name.

    Accepted layouts: <class>/<file>, <top>/<class>/<file>, and [<top>/]train|test/<class>/<file>.
    """
    files = []
    for name in names:
        parts = name.split("/")
        # skip non-images and OS junk such as .DS_Store or __MACOSX/ folders in zips
        if name.lower().endswith(IMAGE_EXTS) and not any(p.startswith(".") or p == "__MACOSX" for p in parts):
            files.append(parts)
    if not files:
        raise DataError(f"{where}: no images found (expected <class>/<file>.jpg|png or a {RELEASE_DIR} folder)")
    groups: dict[tuple[str, ...], list[list[str]]] = {}  # folders above the class folder -> files
    for parts in files:
        if len(parts) < 2:
            raise DataError(f"{where}: image '{parts[0]}' is not inside a class folder")
        groups.setdefault(tuple(parts[:-2]), []).append(parts)

    only = next(iter(groups))
    if len(groups) == 1 and only[-1:] not in (("train",), ("test",)):
        splits = {None: only}  # only class folders: everything is training data
    else:
        splits = {p[-1]: p for p in groups if p[-1:] in (("train",), ("test",))}
        if len(splits) != len(groups) or len({p[:-1] for p in splits.values()}) > 1:
            found = ", ".join(sorted("/".join(p) + "/" if p else "./" for p in groups))
            raise DataError(f"{where}: images found in {found}; expected <class>/<file> "
                            "or train/<class>/<file> and test/<class>/<file>")
    if None in splits:
        if split == "test":
            raise DataError(f"{where} holds no test split (only class folders, no test/ folder)")
        chosen = [splits[None]]
    elif split == "all":
        chosen = [splits[s] for s in ("train", "test") if s in splits]
    elif split in splits:
        chosen = [splits[split]]
    else:
        raise DataError(f"{where} holds no {split} split (no {split}/ folder)")

    items: list[tuple[str, int]] = []
    for prefix in chosen:
        labelled = []
        for parts in groups[prefix]:
            if parts[-2] not in CIFAR10_CLASSES:
                raise DataError(f"{where}: unknown class folder '{'/'.join(parts[:-1])}' "
                                f"(expected one of: {', '.join(CIFAR10_CLASSES)})")
            labelled.append((CIFAR10_CLASSES.index(parts[-2]), parts[-1], "/".join(parts)))
        items += [(member, label) for label, _, member in sorted(labelled)]
    if limit is not None:
        keep = _first_per_class(np.asarray([lab for _, lab in items]), limit)
        items = [items[i] for i in keep]
    return items


def _load_images(path: Path, split: str, cache_dir, limit: int | None) -> Dataset:
    items = _select(_list_files(path), split, path, limit)
    members = [m for m, _ in items]
    labels = np.asarray([lab for _, lab in items], dtype=np.int64)
    kind = "image folder" if path.is_dir() else "zip"
    source = f"{path.resolve()} ({kind}, split={split}, {len(items)} images)"

    cache = _cache_file(path, split, limit, members, cache_dir)
    cached = _read_cache(cache, len(items))
    if cached is not None and np.array_equal(cached[1], labels):
        return Dataset(torch.from_numpy(cached[0]), torch.from_numpy(labels), f"{source}, cached {cache}")

    images = _decode_all(str(path), path.is_dir(), members)
    _write_cache(cache, images, labels)
    return Dataset(torch.from_numpy(images), torch.from_numpy(labels), source)


# ---------------------------------------------------------------------------- decoding

def _decode(data: bytes, where: str) -> np.ndarray:
    """One encoded image -> uint8 (H, W, 3). Truncated files raise: load() decodes eagerly."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.size != (IMAGE_SIZE, IMAGE_SIZE):
                raise DataError(f"{where}: image is {img.size[0]}x{img.size[1]}, "
                                f"expected {IMAGE_SIZE}x{IMAGE_SIZE}")
            return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    except DataError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... for bad files
        raise DataError(f"{where}: cannot decode image ({_oneline(exc)})") from None


class _Reader:
    """Reads and decodes images from a zip or a dir; opens the zip once (its 50k-entry index costs ~0.3 s)."""

    def __init__(self, root: str, is_dir: bool):
        self.root, self.is_dir = root, is_dir
        self.zf = None
        if not is_dir:
            try:
                self.zf = zipfile.ZipFile(root)
            except (zipfile.BadZipFile, OSError, ValueError) as exc:
                raise DataError(f"{root}: not a readable zip archive ({_oneline(exc)})") from None

    def decode(self, names: list[str]) -> np.ndarray:
        out = np.empty((len(names), 3, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        for i, name in enumerate(names):
            where = os.path.join(self.root, name) if self.is_dir else f"{self.root}:{name}"
            try:
                if self.zf is None:
                    with open(where, "rb") as f:
                        data = f.read()
                else:
                    data = self.zf.read(name)
            except (OSError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, ValueError) as exc:
                raise DataError(f"{where}: cannot read ({_oneline(exc)})") from None
            out[i] = _decode(data, where).transpose(2, 0, 1)  # HWC -> CHW
        return out

    def close(self) -> None:
        if self.zf is not None:
            self.zf.close()


_WORKER_READER: _Reader | None = None  # one per worker process, reused across its tasks


def _worker_decode(task: tuple[str, bool, list[str]]) -> np.ndarray:
    global _WORKER_READER
    root, is_dir, names = task
    if _WORKER_READER is None or _WORKER_READER.root != root:
        _WORKER_READER = _Reader(root, is_dir)
    return _WORKER_READER.decode(names)


def _decode_all(root: str, is_dir: bool, names: list[str]) -> np.ndarray:
    """Decode all images to uint8 NCHW; 2 forked workers for big sets, a plain loop for small ones."""
    chunks = [names[i:i + _CHUNK] for i in range(0, len(names), _CHUNK)]
    bar = tqdm(total=len(names), unit="img", desc="decoding", disable=None if len(names) > 1000 else True)
    parts = []
    # fork avoids re-importing torch in each worker (~2 s); workers only use PIL/numpy
    use_pool = len(names) >= _POOL_MIN and (os.cpu_count() or 1) > 1 and sys.platform == "linux"
    with bar:
        if use_pool:
            with multiprocessing.get_context("fork").Pool(2) as pool:
                for arr in pool.imap(_worker_decode, [(root, is_dir, c) for c in chunks]):
                    parts.append(arr)
                    bar.update(len(arr))
        else:
            reader = _Reader(root, is_dir)
            try:
                for c in chunks:
                    parts.append(reader.decode(c))
                    bar.update(len(c))
            finally:
                reader.close()
    return np.concatenate(parts)


# ---------------------------------------------------------------------------- cache

def _cache_file(path: Path, split: str, limit: int | None, members: list[str], cache_dir) -> Path:
    """Cache path keyed on the source's identity and timestamps, so edited data is re-decoded."""
    if cache_dir is None:
        cache_dir = os.environ.get("BNN_CACHE_DIR") or Path.home() / ".cache" / "bnn-flow"
    h = hashlib.sha256()
    st = path.stat()
    h.update(json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, split, limit, CACHE_VERSION]).encode())
    if path.is_dir():  # a dir's own mtime misses edits to files inside: include every file's stat
        for m in members:
            fst = (path / m).stat()
            h.update(f"{m}\0{fst.st_size}\0{fst.st_mtime_ns}\n".encode())
    return Path(cache_dir).expanduser() / f"cifar10-{split}-{h.hexdigest()[:24]}.npz"


def _read_cache(file: Path, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(images, labels) from the cache, or None if absent or unusable (it is then rewritten)."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            images, labels = z["images"], z["labels"]
    except Exception:  # any corruption just means "decode again"
        return None
    if images.dtype != np.uint8 or images.shape != (n, 3, IMAGE_SIZE, IMAGE_SIZE) or labels.shape != (n,):
        return None
    return images, labels


def _write_cache(file: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written cache."""
    tmp = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=file.stem, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=images, labels=labels)
        os.replace(tmp, file)
    except OSError as exc:  # an unwritable cache only costs time, so warn and go on
        warnings.warn(f"could not write dataset cache {file}: {_oneline(exc)}")
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------------- splits

def stratified_split(labels: torch.Tensor, val_size: int = 5000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stratified (train_idx, val_idx), both sorted int64 on the CPU.

    Each class gets val_size // num_classes validation images; the remainder goes one each to
    the lowest-numbered classes.
    """
    labels = labels.detach().cpu().long()
    n = len(labels)
    if val_size < 0 or val_size > n:
        raise DataError(f"val_size={val_size} must be between 0 and the number of images ({n})")
    classes = torch.unique(labels).tolist()
    per, extra = divmod(val_size, max(len(classes), 1))
    gen = torch.Generator().manual_seed(seed)
    val = []
    for i, c in enumerate(classes):
        idx = (labels == c).nonzero().squeeze(1)
        k = per + (i < extra)
        if k > len(idx):
            raise DataError(f"val_size={val_size} needs {k} images of class {c}, but it has only {len(idx)}")
        val.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
    val_idx = torch.sort(torch.cat(val)).values if val else torch.empty(0, dtype=torch.long)
    in_val = torch.zeros(n, dtype=torch.bool)
    in_val[val_idx] = True
    return (~in_val).nonzero().squeeze(1), val_idx


# ---------------------------------------------------------------------------- augmentation

def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4,
                  flip: bool = True) -> torch.Tensor:
    """Random crop (zero padding `pad`) and random horizontal flip, per image, in one gather.

    Works on any dtype/device; `generator` (on x's device) is the only randomness used.
    """
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(f"generator is on {generator.device}, images on {x.device}")
    b, _, h, w = x.shape
    dev = x.device
    if pad > 0:
        x = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev)
    else:
        dy = dx = torch.zeros(b, dtype=torch.long, device=dev)
    cols = torch.arange(w, device=dev).expand(b, w)
    if flip:  # a flipped crop just reads its columns backwards
        flipped = torch.rand(b, generator=generator, device=dev) < 0.5
        cols = torch.where(flipped[:, None], w - 1 - cols, cols)
    rows = dy[:, None] + torch.arange(h, device=dev)  # (B, H)
    cols = dx[:, None] + cols                          # (B, W)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(x.shape[1], device=dev)[None, :, None, None]
    return x[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


class Batches:
    """Iterate minibatches of a dataset resident on one device (data stays on GPU; airbench style).

    Shuffling and augmentation draw only from `generator` (on the data's device; None means
    torch's global RNG), so saving/restoring generator.get_state() reproduces an epoch.
    """

    def __init__(self, images, labels, batch_size, shuffle, augment, generator=None, drop_last=False,
                 pad: int = 4, flip: bool = True):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be positive")
        if generator is not None and generator.device.type != images.device.type:
            raise ValueError(f"generator is on {generator.device}, images on {images.device}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.generator, self.drop_last = generator, drop_last
        self.pad, self.flip = pad, flip

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n, dev = len(self.labels), self.images.device
        order = (torch.randperm(n, generator=self.generator, device=dev) if self.shuffle
                 else torch.arange(n, device=dev))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment:
                x = augment_batch(x, self.generator, self.pad, self.flip)
            yield x, self.labels[idx]
