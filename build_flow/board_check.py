"""The host side of an open bitstream: stream images to the board over its serial link and check
every answer against the IR golden model.

    python -m build_flow.board_check --port /dev/ttyUSB0 --build OUT [--data D] [--split test] [--images 100]
    python -m build_flow.board_check --sim --build OUT [--data D] [--images 4] [--gaps 0.3]

--build OUT is the folder of `make bitstream BOARD=ulx3s-85f OUT=…` (or of `make rtl`, for --sim):
its IR (OUT/ir) gives the golden labels and class scores, design.json the link's frame format,
OUT/bitstream/bitstream.json the baud rate. Each image goes out as one request (hw/uart_link.py)
and the host waits for its response (one frame in flight; a timeout resynchronizes the bridge with
a frame of zero bytes and retries once). Every response must have status 0, the golden label and
the golden class scores (every integer). Prints the label accuracy on labelled data, the measured
images/s (bounded by the link: baud / (10 bits x bytes per frame)) and writes OUT/uart_host.json.

--sim replaces the board with a Verilator simulation of the same top (bnn_uart_top: receiver,
bridge, accelerator, transmitter) driven bit by bit on its serial line (hw/uart_sim.py), with
random idle gaps between bytes (--gaps: the probability of a gap before a byte) and a baud skew
(--skew): bytes of real images in, labels out, checked exactly as on the board. Exit status 1 on
any mismatch.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hw.uart_host import DEFAULT_TIMEOUT_S, SerialLink, SimLink, check_images
from hw.uart_link import LinkFormat
from model.atomic import atomic_write_text
from model.errors import ConfigError, run_cli


def load_labelled(data: str | None, split: str, shape: tuple, n: int, seed: int):
    """(N, H, W, C) uint8 images and their labels (None for seeded random images)."""
    if data:
        from model.data import load_cifar10
        ds = load_cifar10(data, split, limit_per_class=max(1, -(-n // 10)))
        images = np.asarray(ds.images)
        if tuple(images.shape[1:]) != tuple(shape):
            raise ConfigError(f"--data {data}: images of {tuple(images.shape[1:])}, the design takes {tuple(shape)}")
        idx = np.random.default_rng(seed).permutation(len(images))[:n]
        return np.ascontiguousarray(images[idx].transpose(0, 2, 3, 1)), np.asarray(ds.labels)[idx]
    rng = np.random.default_rng(seed)
    c, h, w = shape
    return rng.integers(0, 256, (n, h, w, c), dtype=np.uint8), None


def _args(argv):
    ap = argparse.ArgumentParser(prog="python -m build_flow.board_check", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="the board's serial port (e.g. /dev/ttyUSB0)")
    where.add_argument("--sim", action="store_true", help="simulate the board top in Verilator instead")
    ap.add_argument("--build", required=True, help="the build folder (design.json, ir/, bitstream/)")
    ap.add_argument("--data", help="CIFAR-10 (zip, ImageFolder or cifar-10-batches-py); else seeded random images")
    ap.add_argument("--split", default="test", choices=("train", "test", "all"),
                    help="the CIFAR-10 split the images come from (default test)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baud", type=int, help="default: bitstream.json's")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for a response")
    ap.add_argument("--gaps", type=float, default=0.3, help="--sim: probability of an idle gap before a byte")
    ap.add_argument("--skew", type=float, default=0.0, help="--sim: the host's bit time relative to the board's")
    args = ap.parse_args(argv)
    if args.images < 1:
        ap.error(f"--images {args.images}: give at least 1")
    return args


def main(argv=None) -> int:
    from build_flow.ir import load_ir
    from verify.golden_numpy import run_numpy

    args = _args(argv)
    build = Path(args.build)
    design_path = build / "design.json"
    if not design_path.is_file():
        raise ConfigError(f"--build {build}: no design.json (run make rtl or make bitstream with OUT={build})")
    design = json.loads(design_path.read_text())
    fmt = LinkFormat.from_design(design)
    graph = load_ir(build / "ir")
    shape = tuple(design["ports"]["input"]["shape"])           # (h, w, c)
    images, labels = load_labelled(args.data, args.split, (shape[2], shape[0], shape[1]), args.images, args.seed)
    golden = run_numpy(graph, images)
    if args.sim:
        link = SimLink(build, design, fmt, gaps=args.gaps, skew=args.skew, seed=args.seed)
        where = f"Verilator (bit-level serial line, {link.cpb} cycles/bit, gaps p={args.gaps}, skew {args.skew:+g})"
    else:
        bs = build / "bitstream" / "bitstream.json"
        baud = args.baud or (json.loads(bs.read_text())["baud"] if bs.is_file() else None)
        if baud is None:
            raise ConfigError(f"--build {build}: no bitstream/bitstream.json; give --baud")
        link = SerialLink(args.port, baud, args.timeout)
        where = f"{args.port} at {baud} baud"
    doc = check_images(link, fmt, images, golden, labels)
    doc.update({"link": where, "data": args.data or "seeded random", "split": args.split if args.data else None})
    if args.sim:
        doc.update({"verilator_build_s": round(link.build_s, 1), "cycles_per_image": link.cycles,
                    "gaps": args.gaps, "skew": args.skew, "clks_per_bit": link.cpb})
    name = "uart_sim.json" if args.sim else "uart_host.json"
    atomic_write_text(build / name, json.dumps(doc, indent=1))
    acc = f", accuracy {100 * doc['accuracy']:.2f} %" if "accuracy" in doc else ""
    print(f"{where}: {doc['images']} images, {doc['mismatches']} mismatches against the golden model "
          f"(status {doc['status_errors']}, label {doc['label_mismatches']}, scores {doc['score_mismatches']})"
          f"{acc}, {doc['images_per_s']} images/s; {build / name}")
    return 0 if doc["mismatches"] == 0 else 1


if __name__ == "__main__":
    run_cli(main)
