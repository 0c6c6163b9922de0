#!/bin/bash
# Entry point of the FINN image (Dockerfile, target finn): the Xilinx tools mounted from the host are put
# on the path, as FINN's own docker/finn_entrypoint.sh does, then the command runs. Vitis (the Alveo flow:
# build_flow/finn/cli.py passes VITIS_PATH only for an Alveo board) needs XRT, which the image installs
# (not when built with SKIP_XRT=1): without it this stops, as FINN's entrypoint does.
export SHELL=/bin/bash
export HOME=${HOME:-/tmp/home_dir}
mkdir -p "$HOME" "$FINN_BUILD_DIR"
export PATH=$PATH:$OHMYXILINX
# Vivado's licence manager on Ubuntu 22.04 (FINN's run-docker.sh passes the same)
[ -f /lib/x86_64-linux-gnu/libudev.so.1 ] && export LD_PRELOAD=/lib/x86_64-linux-gnu/libudev.so.1
if [ -n "${VITIS_PATH:-}" ] && [ -f "$VITIS_PATH/settings64.sh" ]; then
  export XILINX_VITIS=$VITIS_PATH XILINX_XRT=/opt/xilinx/xrt
  if [ ! -f "$XILINX_XRT/setup.sh" ]; then
    echo "error: XRT not found at $XILINX_XRT (image built with SKIP_XRT=1?): the Vitis flow needs it; rebuild the image (make finn-image)" >&2
    exit 2
  fi
  source "$VITIS_PATH/settings64.sh"
  source "$XILINX_XRT/setup.sh"
elif [ -n "${VITIS_PATH:-}" ]; then
  echo "error: VITIS_PATH=$VITIS_PATH: no settings64.sh there" >&2
  exit 2
elif [ -f "${VIVADO_PATH:-}/settings64.sh" ]; then
  export XILINX_VIVADO=$VIVADO_PATH
  source "$VIVADO_PATH/settings64.sh"
else
  echo "note: no Vivado under VIVADO_PATH=${VIVADO_PATH:-} (only FINN's Python steps will work)" >&2
fi
if [ -f "${HLS_PATH:-}/settings64.sh" ]; then
  source "$HLS_PATH/settings64.sh"
elif [ -n "${HLS_PATH:-}" ]; then
  echo "note: no Vitis HLS under HLS_PATH=$HLS_PATH (step_hw_ipgen will fail)" >&2
fi
exec "$@"
