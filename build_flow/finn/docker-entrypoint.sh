#!/bin/bash
# Entry point of the FINN image (Dockerfile, target finn): the Xilinx tools mounted from the host are put
# on the path, as FINN's own docker/finn_entrypoint.sh does, then the command runs.
mkdir -p "$HOME" "$FINN_BUILD_DIR"
export PATH=$PATH:$OHMYXILINX
if [ -f "${VITIS_PATH:-}/settings64.sh" ]; then
  export XILINX_VITIS=$VITIS_PATH XILINX_XRT=/opt/xilinx/xrt
  source "$VITIS_PATH/settings64.sh"
  [ -f "$XILINX_XRT/setup.sh" ] && source "$XILINX_XRT/setup.sh"
elif [ -f "${VIVADO_PATH:-}/settings64.sh" ]; then
  export XILINX_VIVADO=$VIVADO_PATH
  source "$VIVADO_PATH/settings64.sh"
else
  echo "note: no Vivado under VIVADO_PATH=${VIVADO_PATH:-} (only FINN's Python steps will work)" >&2
fi
if [ -f "${HLS_PATH:-}/settings64.sh" ]; then
  source "$HLS_PATH/settings64.sh"
fi
exec "$@"
