"""Smoke test of FINN's environment (the docker image and the local venv): seconds, no Vivado.

    python -m build_flow.finn.smoke [--image]

Run by the Dockerfile at image build time (with --image) and by setup_local_finn.sh, and by
tests/test_finn_bitstream.py in the local venv when FINN_VENV is set. Checks:

* FINN's builder imports (finn.builder.build_dataflow and build_dataflow_steps, which imports
  finn.util.test, which imports torchvision.transforms.functional at module level: the stub of
  install_finn_python.sh), protobuf at FINN's pin 5.29.6;
* the board files of every Zynq board in boards.py are under FINN_ROOT/deps/board_files, with the
  vendor, name and file_version of the board_part FINN's Vivado template (templates.py) asks for;
* every step of build.py's step lists resolves: the project's custom steps import and FINN's named
  steps exist in build_dataflow_step_lookup;
* --image: the real pyverilator, verilator on PATH, XRT (/opt/xilinx/xrt/setup.sh) for the Alveo flow
  (not with --no-xrt, for an image built with SKIP_XRT=1).

Prints one `ok:` line per check; the first failure is one `error:` line and exit status 1.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


class SmokeError(Exception):
    pass


def board_parts(templates_text: str) -> dict[str, str]:
    """FINN board name -> board_part, from the `if {$BOARD == "…"} { set_property board_part …` blocks."""
    parts = {}
    for m in re.finditer(r'\$BOARD == "([^"]+)"\}\s*\{(.*?)\}', templates_text, re.S):
        bp = re.search(r"set_property board_part (\S+)", m.group(2))
        if bp:
            parts[m.group(1)] = bp.group(1)
    return parts


def find_board_files(board_dir: Path, board_part: str) -> Path:
    """The board.xml under board_dir matching board_part (vendor:name:part0:file_version)."""
    vendor, name, _, version = board_part.split(":")
    seen = []
    for xml in sorted(board_dir.rglob("board.xml")):
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError:
            continue
        fv = root.findtext("file_version") or root.findtext("./*/file_version")
        seen.append(f"{root.get('vendor')}:{root.get('name')}:{fv}")
        if root.get("vendor") == vendor and root.get("name") == name and (fv or "").strip() == version:
            return xml
    raise SmokeError(f"board files for {board_part} not found under {board_dir} "
                     f"(found: {', '.join(seen) or 'none'})")


def check_imports() -> None:
    import finn.builder.build_dataflow  # noqa: F401
    import finn.builder.build_dataflow_steps  # noqa: F401
    import google.protobuf
    import torchvision

    kind = "the documented stub" if getattr(torchvision, "BNN_FLOW_STUB", False) else \
        f"torchvision {getattr(torchvision, '__version__', '?')}"
    if google.protobuf.__version__ != "5.29.6":
        raise SmokeError(f"protobuf {google.protobuf.__version__}, FINN's requirements.txt pins 5.29.6 "
                         "(install with build_flow/finn/install_finn_python.sh)")
    print(f"ok: FINN's builder imports (torchvision: {kind}; protobuf {google.protobuf.__version__})")


def check_boards(finn_root: Path) -> None:
    from .boards import BOARDS

    tpl = (finn_root / "src/finn/transformation/fpgadataflow/templates.py").read_text()
    parts = board_parts(tpl)
    for board in BOARDS.values():
        if board.alveo:
            print(f"ok: {board.name}: Vitis platform {board.platform} (no board files; PLATFORM_REPO_PATHS at run time)")
            continue
        if board.name not in parts:
            raise SmokeError(f"{board.name}: FINN's templates.py has no board_part for it")
        xml = find_board_files(finn_root / "deps" / "board_files", parts[board.name])
        print(f"ok: {board.name}: {parts[board.name]} in {xml.parent}")


def check_steps() -> None:
    from finn.builder.build_dataflow_steps import build_dataflow_step_lookup

    from .build import BITSTREAM_STEPS, _resolve

    for name, step in zip(BITSTREAM_STEPS, _resolve(BITSTREAM_STEPS)):
        if isinstance(step, str) and step not in build_dataflow_step_lookup:
            raise SmokeError(f"step {name}: not one of FINN's steps")
    print(f"ok: {len(BITSTREAM_STEPS)} build steps resolve (custom steps import)")


def check_image(xrt: bool = True) -> None:
    import pyverilator

    if "stub" in (pyverilator.__doc__ or ""):
        raise SmokeError(f"pyverilator at {pyverilator.__file__} is the local venv's stub")
    if shutil.which("verilator") is None:
        raise SmokeError("verilator not on PATH")
    if xrt and not Path("/opt/xilinx/xrt/setup.sh").is_file():
        raise SmokeError("XRT not installed (/opt/xilinx/xrt/setup.sh missing): the U250 (Vitis) flow needs it")
    print("ok: pyverilator, verilator" + (", XRT" if xrt else " (image built with SKIP_XRT: no U250)"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m build_flow.finn.smoke", description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", action="store_true", help="also check what only the docker image has")
    ap.add_argument("--no-xrt", action="store_true", help="with --image: an image built with SKIP_XRT=1")
    args = ap.parse_args(argv)
    root = os.environ.get("FINN_ROOT")
    try:
        if not root or not Path(root, "src", "finn").is_dir():
            raise SmokeError(f"FINN_ROOT={root or '(unset)'}: not a FINN source tree")
        check_imports()
        check_boards(Path(root))
        check_steps()
        if args.image:
            check_image(xrt=not args.no_xrt)
    except (SmokeError, ImportError, OSError) as exc:
        print(f"error: smoke test: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
