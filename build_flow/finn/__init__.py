"""The FINN backend: the exported QONNX model through FINN (Xilinx/finn, pinned commit) to streaming
XNOR-popcount dataflow IP and a bitstream.

Two environments meet here. The project's environment runs `cli` (export, IR, planner folding, preflight,
comparison with the golden model); FINN's environment (its docker image, or a local venv from
`setup_local_finn.sh`) runs `build` and `custom_steps`. The modules FINN's side imports (`build`,
`custom_steps`, `rewrites`, `boards`, `folding`) need nothing beyond FINN, qonnx, numpy and the standard library.
"""
