"""Run the BNN accelerator on the board (copied into the deploy package as run_on_board.py).

    sudo python3 run_on_board.py [--images N] [--batch B] [--repeat R]

On a PYNQ board (Pynq-Z2, ZCU104; or an Alveo card with PYNQ and XRT), from the deploy folder that
`make bitstream` writes (OUT/deploy) and `make deploy PYNQ_IP=…` copies: loads resizer.bit (FINN's
driver finds resizer.hwh beside it) through FINN's driver (driver.py, driver_base.py), streams the first N
saved test images (test_images.npy, uint8, in the accelerator's input layout) in batches of B, R times,
checks the predicted labels against the golden model's (golden_labels.npy, saved by the build), and
prints the agreement, the accuracy against the dataset's labels (true_labels.npy, when the build had
real images) and the measured FPS (images / time spent in FINN's execute()). Needs only numpy and PYNQ on
the board: no network, no dataset package. Exit status 0 when every label equals the golden one, 1 when
not, 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


class DeployError(Exception):
    pass


def _load(name: str, required: bool = True):
    p = HERE / name
    if not p.is_file():
        if required:
            raise DeployError(f"{p}: missing from the deploy package (rebuild it with make bitstream)")
        return None
    try:
        return np.load(p)
    except (OSError, ValueError) as exc:
        raise DeployError(f"{p}: not a numpy file ({exc})") from None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="run_on_board.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, help="how many of the saved images (default: all)")
    ap.add_argument("--batch", type=int, default=8, help="images per execute() call")
    ap.add_argument("--repeat", type=int, default=1, help="stream the images this many times (for the FPS)")
    ap.add_argument("--bitfile", help="default: the one named in deploy.json (resizer.bit / resizer.xclbin)")
    args = ap.parse_args(argv)
    try:
        meta_path = HERE / "deploy.json"
        if not meta_path.is_file():
            raise DeployError(f"{meta_path}: missing from the deploy package")
        meta = json.loads(meta_path.read_text())
        images, golden, truth = _load("test_images.npy"), _load("golden_labels.npy"), _load("true_labels.npy", False)
        if images.dtype != np.uint8:
            raise DeployError(f"{HERE / 'test_images.npy'}: dtype {images.dtype}, expected uint8")
        golden = golden.reshape(-1).astype(np.int64)
        if len(golden) != len(images):
            raise DeployError(f"{HERE / 'golden_labels.npy'}: {len(golden)} labels for {len(images)} images")
        n = len(images) if args.images is None else args.images
        if not 0 < n <= len(images):
            raise DeployError(f"--images {args.images}: the package holds {len(images)} images")
        if args.batch < 1 or args.repeat < 1:
            raise DeployError(f"--batch {args.batch} / --repeat {args.repeat}: must be >= 1")
        images, golden = images[:n], golden[:n]
        truth = truth.reshape(-1)[:n].astype(np.int64) if truth is not None else None
        bitfile = HERE / (args.bitfile or meta["bitfile"])
        if not bitfile.is_file():
            raise DeployError(f"{bitfile}: bitfile not found")
        sys.path.insert(0, str(HERE))
        from driver import io_shape_dict          # FINN's generated driver (MakePYNQDriver)
        from driver_base import FINNExampleOverlay

        ishape = tuple(io_shape_dict["ishape_normal"][0])
        if tuple(images.shape[1:]) != ishape[1:]:
            raise DeployError(f"test_images.npy: images of shape {images.shape[1:]}, the accelerator takes {ishape[1:]}")
        batch = min(args.batch, n)
        accel = FINNExampleOverlay(bitfile_name=str(bitfile), platform=meta["platform"], io_shape_dict=io_shape_dict,
                                   batch_size=batch, runtime_weight_dir=str(HERE / "runtime_weights") + "/")
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    seconds = 0.0
    pred = np.zeros(n, dtype=np.int64)
    for _ in range(args.repeat):
        for i in range(0, n, batch):
            chunk = images[i:i + batch]
            if accel.batch_size != len(chunk):
                accel.batch_size = len(chunk)
            t0 = time.perf_counter()
            out = accel.execute(chunk)
            seconds += time.perf_counter() - t0
            pred[i:i + len(chunk)] = np.asarray(out).reshape(len(chunk), -1)[:, 0].astype(np.int64)
    equal = pred == golden
    print(f"{meta.get('board', '?')}: {n} images x {args.repeat}, batch {batch}")
    print(f"labels equal to the golden model's: {int(equal.sum())}/{n} ({100.0 * equal.mean():.2f} %)")
    if truth is not None:
        print(f"accuracy: {100.0 * (pred == truth).mean():.2f} % on the board, "
              f"{100.0 * (golden == truth).mean():.2f} % golden model ({n} images)")
    print(f"FPS: {n * args.repeat / seconds:,.1f} (time in execute(): {seconds:.4f} s)" if seconds > 0 else "FPS: n/a")
    if not equal.all():
        print(f"error: {int((~equal).sum())} labels differ from the golden model's (images "
              f"{np.flatnonzero(~equal)[:10].tolist()})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
