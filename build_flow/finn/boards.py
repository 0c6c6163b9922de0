"""Boards the FINN build targets: FPGA part, shell flow, platform and clock.

Clocks are what finn-examples builds these boards at (a starting point: timing is checked by Vivado).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Board:
    name: str            # FINN's board name (finn.util.basic.pynq_part_map / alveo_part_map)
    part: str            # FPGA part
    shell: str           # FINN ShellFlowType: "vivado_zynq" (PYNQ bitfile + hwh) or "vitis_alveo" (xclbin)
    clk_ns: float        # synthesis clock period
    platform: str | None = None   # Vitis platform (Alveo), found under PLATFORM_REPO_PATHS

    @property
    def clock_mhz(self) -> float:
        return round(1000.0 / self.clk_ns, 3)

    @property
    def alveo(self) -> bool:
        return self.shell == "vitis_alveo"


BOARDS = {b.name: b for b in (
    Board("Pynq-Z2", "xc7z020clg400-1", "vivado_zynq", 10.0),
    Board("ZCU104", "xczu7ev-ffvc1156-2-e", "vivado_zynq", 5.0),
    Board("U250", "xcu250-figd2104-2L-e", "vitis_alveo", 4.0, "xilinx_u250_gen3x16_xdma_2_1_202010_1"),
)}
DEFAULT_BOARD = "Pynq-Z2"


def get_board(name: str) -> Board:
    """The board called `name` (case-insensitive); KeyError lists the known ones."""
    for key, board in BOARDS.items():
        if key.lower() == str(name).lower():
            return board
    raise KeyError(f"unknown board '{name}' (known: {', '.join(BOARDS)})")
