#!/usr/bin/env bash
# A local FINN environment without Docker or Vivado: FINN's Python-only build steps (QONNX -> FINN ->
# streamline -> convert to HW -> folding -> estimate reports -> hw codegen) and C++ simulation (cppsim with
# g++ and open HLS simulation headers). Stitched IP, rtlsim, synthesis and bitfiles need the docker image
# and Vivado (`make bitstream`).
#
#   build_flow/finn/setup_local_finn.sh DEST           e.g. DEST=~/finn-env (outside this repository)
#
# DEST gets: a venv (DEST/bin/python), FINN's source tree (DEST/finn, = FINN_ROOT) with its C++ deps under
# DEST/finn/deps (qonnx, finn-hlslib, cnpy), the HLS simulation headers (DEST/hls/include, = HLS_PATH),
# the board files of boards.py (DEST/finn/deps/board_files), FINN's Python environment installed by
# install_finn_python.sh (the same path as the docker image: requirements-finn.txt, real torchvision; a stub
# pyverilator, since rtlsim needs the image), and DEST/env.sh, which exports FINN_ROOT, HLS_PATH,
# FINN_BUILD_DIR, NUM_DEFAULT_WORKERS. It ends with the smoke test (python -m build_flow.finn.smoke).
#
# Sources: GitHub by default. GIT_MIRROR=DIR takes them from local git directories instead (bare or not),
# DIR/<owner>+<name>/repo or DIR/<owner>/<name>.git, e.g. on a machine without GitHub access.
# Commits: FINN main 39f0c9a (v0.10.1-10) and the deps its fetch-repos.sh pins at that commit.
set -euo pipefail

DEST=${1:?usage: setup_local_finn.sh DEST}
PYTHON=${PYTHON:-python3}

FINN_COMMIT=39f0c9a6b7675f62d47390fbf9a591707bcbac9b     # main, v0.10.1-10 (what the FINN_COMMIT in Dockerfile pins)
QONNX_COMMIT=fd61cfeebbdaba351abf7e9d54cd785d7776fa4f    # FINN's fetch-repos.sh at FINN_COMMIT
HLSLIB_COMMIT=16e5847a5e3ef76cffe84c8fad2f010d593457d3   # idem
CNPY_COMMIT=4e8810b1a8637695171ed346ce68f6984e585ef4     # idem
HLS_HEADERS_COMMIT=45c16c6d7a00390ee24c6fa2388a224c37234288  # quetric/hls_sim_headers: open ap_int/ap_fixed
HLS_STREAM_COMMIT=e7e04ab109f9cdb65a64daf9c1e07d55af3a66c7   # Xilinx/hls-lib-stream (2022.2): hls_stream.h
XIL_BDF_COMMIT=20bbb1210350982586fc3e42e9a15ee531417fea     # Xilinx/XilinxBoardStore, branch 2022.2 (has TUL pynq-z2)

# export the files of REPO at COMMIT (only PATHS, if given) into DIR
get_tree() {
  local repo=$1 commit=$2 dir=$3; shift 3
  local gitdir="" m
  if [ -n "${GIT_MIRROR:-}" ]; then
    for m in "$GIT_MIRROR/${repo/\//+}/repo" "$GIT_MIRROR/$repo.git" "$GIT_MIRROR/$repo"; do
      [ -d "$m" ] && { gitdir=$(git -C "$m" rev-parse --absolute-git-dir); break; }
    done
    [ -n "$gitdir" ] || { echo "error: $repo not found under GIT_MIRROR=$GIT_MIRROR" >&2; exit 2; }
  else
    gitdir=$(mktemp -d)/git
    git init -q --bare "$gitdir"
    git --git-dir="$gitdir" fetch -q --depth 1 "https://github.com/$repo.git" "$commit"
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  git --git-dir="$gitdir" archive -o "$dir.tar" "$commit" "$@" \
    || { echo "error: cannot export $repo@$commit ($*)" >&2; exit 2; }
  tar -xf "$dir.tar" -C "$dir" && rm "$dir.tar"
}

echo "[1/5] sources -> $DEST"
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
# a whole-tree archive of FINN can fail on snapshots without its large notebooks: take what the build uses
get_tree Xilinx/finn $FINN_COMMIT "$DEST/finn" \
  src setup.cfg setup.py requirements.txt fetch-repos.sh custom_hls finn-rtllib docker tests
get_tree fastmachinelearning/qonnx $QONNX_COMMIT "$DEST/finn/deps/qonnx" src setup.cfg setup.py pyproject.toml README.md
get_tree Xilinx/finn-hlslib $HLSLIB_COMMIT "$DEST/finn/deps/finn-hlslib"
get_tree rogersce/cnpy $CNPY_COMMIT "$DEST/finn/deps/cnpy"
get_tree quetric/hls_sim_headers $HLS_HEADERS_COMMIT "$DEST/hls"
get_tree Xilinx/hls-lib-stream $HLS_STREAM_COMMIT "$DEST/hls-stream"

echo "[2/5] HLS simulation headers -> $DEST/hls/include"
cp "$DEST"/hls-stream/*.h "$DEST/hls/include/"
echo '#include <cmath>' > "$DEST/hls/include/hls_math.h"
# finn-hlslib's LabelSelect reads Out_T::sign_flag, which Vitis HLS' ap_int_base has and the open one lacks
grep -q "sign_flag" "$DEST/hls/include/ap_int_base.h" || \
  sed -i 's/^  static const int width = _AP_W;$/  static const int width = _AP_W;\n  static const bool sign_flag = _AP_S;/' \
    "$DEST/hls/include/ap_int_base.h"
# finn-hlslib's streamtools.h names qdma_axis (part of Vitis HLS' ap_axi_sdata.h, not of the open headers)
cat >> "$DEST/hls/include/ap_axi_sdata.h" <<'EOF'

#ifndef BNN_FLOW_QDMA_AXIS
#define BNN_FLOW_QDMA_AXIS
template <int D, int U, int TI, int TD> struct qdma_axis;
template <int D> struct qdma_axis<D, 0, 0, 0> {
  ap_uint<D> data;
  ap_uint<(D + 7) / 8> keep;
  ap_uint<1> last;
  ap_uint<D> get_data() const { return data; }
  void set_data(ap_uint<D> d) { data = d; }
  void set_keep(ap_uint<(D + 7) / 8> k) { keep = k; }
  void set_last(ap_uint<1> l) { last = l; }
};
#endif
EOF

echo "[3/5] board files -> $DEST/finn/deps/board_files (XilinxBoardStore $XIL_BDF_COMMIT, branch 2022.2)"
# FINN's Vivado project adds FINN_ROOT/deps/board_files to board.repoPaths; the boards of boards.py:
# tul.com.tw:pynq-z2:part0:1.0 (boards/TUL/pynq-z2/A.0) and xilinx.com:zcu104:part0:1.1 (boards/Xilinx/zcu104)
get_tree Xilinx/XilinxBoardStore $XIL_BDF_COMMIT "$DEST/finn/deps/board_files" boards/TUL/pynq-z2 boards/Xilinx/zcu104
mv "$DEST/finn/deps/board_files/boards/TUL/pynq-z2" "$DEST/finn/deps/board_files/boards/Xilinx/zcu104" \
  "$DEST/finn/deps/board_files/" && rm -rf "$DEST/finn/deps/board_files/boards"

echo "[4/5] venv -> $DEST (python: $($PYTHON --version)), FINN's Python environment (install_finn_python.sh)"
[ -x "$DEST/bin/python" ] || "$PYTHON" -m venv "$DEST"
"$DEST/bin/python" -m pip install -q --upgrade pip wheel
# the same install path as the FINN docker image (without --rtlsim: a stub pyverilator)
bash "$(dirname "${BASH_SOURCE[0]}")/install_finn_python.sh" "$DEST/bin/python" "$DEST/finn"

echo "[5/5] env.sh, smoke test"
mkdir -p "$DEST/build"
cat > "$DEST/env.sh" <<EOF
export FINN_ROOT=$DEST/finn
export HLS_PATH=$DEST/hls
export FINN_BUILD_DIR=\${FINN_BUILD_DIR:-$DEST/build}
export NUM_DEFAULT_WORKERS=\${NUM_DEFAULT_WORKERS:-2}
EOF
. "$DEST/env.sh"
PYTHONPATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)" "$DEST/bin/python" -m build_flow.finn.smoke
echo "done: FINN_VENV=$DEST (source $DEST/env.sh for FINN_ROOT, HLS_PATH)"
