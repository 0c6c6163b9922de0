"""Fetch the official CIFAR-10 python release: `python -m model.download --out DIR`.

An archive already at DIR/cifar-10-python.tar.gz (copied by hand on an offline machine) is
used instead of downloading.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from model.errors import DataError, run_cli

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
RELEASE_DIR = "cifar-10-batches-py"
RELEASE_FILES = ("batches.meta", "test_batch") + tuple(f"data_batch_{i}" for i in range(1, 6))


def check_md5(file: str | Path, expected: str | None = None) -> None:
    """Raise DataError (and delete the file, so the next run fetches it again) on a mismatch."""
    file, expected = Path(file), expected or MD5
    h = hashlib.md5()
    try:
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise DataError(f"{file}: cannot read ({exc.strerror or exc})") from None
    if h.hexdigest() != expected:
        file.unlink(missing_ok=True)
        raise DataError(f"{file}: md5 {h.hexdigest()} does not match {expected} (corrupt download; file removed)")


def _is_complete(release: Path) -> bool:
    return all((release / f).is_file() and (release / f).stat().st_size > 0 for f in RELEASE_FILES)


def _download(url: str, dest: Path) -> None:
    """Download to a temp file beside `dest`, then rename, so a broken transfer leaves nothing."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            shutil.copyfileobj(resp, out, 1 << 20)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as exc:  # URLError, timeouts, resets are all OSErrors
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"could not download {url} ({' '.join(str(reason).split())}) (offline?): "
                        "pass DATA=<path> to an existing copy") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Refuse links, devices, absolute paths and '..' so extraction stays inside the target."""
    members = tar.getmembers()
    for m in members:
        parts = Path(m.name).parts
        if m.name.startswith(("/", "\\")) or ".." in parts or not (m.isfile() or m.isdir()):
            raise DataError(f"{archive}: refusing unsafe archive member '{m.name}'")
    return members


def _extract(archive: Path, out_dir: Path) -> Path:
    """Extract into a temp dir inside out_dir, then rename into place (no half-extracted release)."""
    target = out_dir / RELEASE_DIR
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = _safe_members(tar, archive)
                # the stdlib "data" filter (3.11.4+) also checks; older Pythons rely on our check
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **extra)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{archive}: cannot extract ({' '.join(str(exc).split())})") from None
        if not _is_complete(tmp / RELEASE_DIR):
            raise DataError(f"{archive}: does not contain a complete {RELEASE_DIR}/ folder")
        if target.exists():  # an incomplete earlier copy
            shutil.rmtree(target)
        os.replace(tmp / RELEASE_DIR, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_cifar10(out_dir: str | Path) -> Path:
    """Return out_dir/cifar-10-batches-py, downloading and extracting it if absent."""
    out_dir = Path(out_dir).expanduser()
    target = out_dir / RELEASE_DIR
    if _is_complete(target):
        return target
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out_dir}: cannot create directory ({exc.strerror or exc})") from None
    archive = out_dir / ARCHIVE
    if not archive.is_file():
        _download(URL, archive)
    check_md5(archive)
    target = _extract(archive, out_dir)
    archive.unlink()  # the extracted copy is all we need
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.download",
                                     description=f"Download and extract the CIFAR-10 python release ({URL}).")
    parser.add_argument("--out", default="data", metavar="DIR",
                        help=f"folder to put {RELEASE_DIR}/ in (default: %(default)s)")
    args = parser.parse_args(argv)
    print(ensure_cifar10(args.out))
    return 0


if __name__ == "__main__":
    run_cli(main)
