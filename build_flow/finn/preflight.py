"""Checks before any long work: each failure is one line naming what is missing and what to do.

`make bitstream` needs docker (with a reachable daemon) and Vivado on the host (FINN_XILINX_PATH,
FINN_XILINX_VERSION); `make finn-estimate` needs either a local FINN venv (FINN_VENV=) or docker.
Every check raises :class:`PreflightError` (a FlowError: `error: …`, exit status 2).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from model.errors import FlowError

from .boards import Board, get_board


class PreflightError(FlowError):
    """Something the FINN build needs is missing (the message says what to install or set)."""


def check_board(name: str) -> Board:
    try:
        return get_board(name)
    except KeyError as exc:
        raise PreflightError(f"BOARD={name}: {exc.args[0]}") from None


def check_checkpoint(ckpt: str | None) -> None:
    if ckpt is not None and not Path(ckpt).is_file():
        raise PreflightError(f"CKPT={ckpt}: checkpoint not found (train one with `make train`, or give CONFIG=/PEER=)")


def check_docker(which=shutil.which, run=subprocess.run) -> None:
    """docker installed and its daemon reachable."""
    if which("docker") is None:
        raise PreflightError("docker not found: install Docker Engine (https://docs.docker.com/engine/install/) "
                             "and add your user to the docker group; or run `make finn-estimate FINN_VENV=…` "
                             "with a local FINN venv (build_flow/finn/setup_local_finn.sh)")
    try:
        proc = run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PreflightError(f"docker daemon not reachable ({exc}): start it (sudo systemctl start docker)") from None
    if proc.returncode != 0:
        why = " ".join((proc.stderr or proc.stdout or "").split())[:200]
        raise PreflightError(f"docker daemon not reachable ({why or 'docker info failed'}): start it "
                             "(sudo systemctl start docker) and check that your user may use it")


def check_vivado(board: Board, env=os.environ) -> None:
    """Vivado and Vitis HLS (and, for Alveo, Vitis with its platforms) on the host, as FINN's run-docker.sh
    and finn_entrypoint.sh expect."""
    path, version = env.get("FINN_XILINX_PATH"), env.get("FINN_XILINX_VERSION")
    if not path:
        raise PreflightError("FINN_XILINX_PATH is not set: point it at the Xilinx install folder "
                             "(the one holding Vivado/<version>), e.g. FINN_XILINX_PATH=/tools/Xilinx")
    if not version:
        raise PreflightError("FINN_XILINX_VERSION is not set: the Vivado version to use, e.g. FINN_XILINX_VERSION=2022.2")
    settings = Path(path) / "Vivado" / version / "settings64.sh"
    if not settings.is_file():
        raise PreflightError(f"Vivado {version} not found: {settings} does not exist "
                             "(check FINN_XILINX_PATH and FINN_XILINX_VERSION)")
    hls = Path(path) / "Vitis_HLS" / version / "settings64.sh"
    if not hls.is_file():
        raise PreflightError(f"Vitis HLS {version} not found: {hls} does not exist (FINN's step_hw_ipgen needs "
                             "vitis_hls; install Vitis HLS with Vivado, or check FINN_XILINX_PATH)")
    if board.alveo:
        if not (Path(path) / "Vitis" / version / "settings64.sh").is_file():
            raise PreflightError(f"BOARD={board.name} needs Vitis {version} under {path}/Vitis/{version}")
        repo = env.get("PLATFORM_REPO_PATHS")
        if not repo or not any(Path(p, board.platform).exists() for p in repo.split(":")):
            raise PreflightError(f"BOARD={board.name}: platform {board.platform} not found under "
                                 f"PLATFORM_REPO_PATHS={repo or '(unset)'}")


def check_finn_venv(venv: str) -> Path:
    """A local FINN venv made by setup_local_finn.sh: DEST/bin/python and DEST/env.sh."""
    root = Path(venv)
    if not (root / "bin" / "python").is_file() or not (root / "env.sh").is_file():
        raise PreflightError(f"FINN_VENV={venv}: not a FINN venv (no bin/python or env.sh): make one with "
                             f"build_flow/finn/setup_local_finn.sh {venv}")
    return root


def check_folding(graph, folding_path: str | None):
    """A folding file that does not fit the model stops here (names the layer and field)."""
    if folding_path is None:
        return None
    from hw.planner import load_folding

    return load_folding(folding_path, graph)
