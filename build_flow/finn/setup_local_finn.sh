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
# stub packages for pyverilator/torchvision (imported at module level by FINN, unusable without Docker),
# and DEST/env.sh, which exports FINN_ROOT, HLS_PATH, FINN_BUILD_DIR, NUM_DEFAULT_WORKERS.
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

echo "[3/5] venv -> $DEST (python: $($PYTHON --version))"
[ -x "$DEST/bin/python" ] || "$PYTHON" -m venv "$DEST"
PIP="$DEST/bin/python -m pip"
$PIP install -q --upgrade pip "setuptools<70" wheel
# torch first: on PyPI a bare requirement pulls a multi-GB CUDA build
# (TORCH_INDEX=none: torch==2.13.0 from the configured index/find-links, e.g. a local CPU wheel)
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
if [ "$TORCH_INDEX" = none ]; then $PIP install -q torch==2.13.0
else $PIP install -q torch==2.13.0 --index-url "$TORCH_INDEX"; fi
# FINN's requirements.txt pins at FINN_COMMIT (the ones the Python steps import), brevitas for its helpers
$PIP install -q numpy==1.24.1 scipy==1.10.1 onnx==1.17.0 onnxruntime==1.18.1 onnxoptimizer \
  protobuf==5.29.6 bitstring==3.1.7 clize==5.0.1 sigtools==4.0.1 dataclasses-json==0.5.7 \
  toposort==1.7.0 psutil importlib-resources==6.1.0 pytest setuptools-scm "brevitas==0.13.4" pyyaml pillow

echo "[4/5] qonnx, FINN (editable, no deps)"
SETUPTOOLS_SCM_PRETEND_VERSION=0.4.0 $PIP install -q --no-deps --no-build-isolation -e "$DEST/finn/deps/qonnx"
SETUPTOOLS_SCM_PRETEND_VERSION=0.10.1 $PIP install -q --no-deps --no-build-isolation -e "$DEST/finn"

echo "[5/5] stubs for pyverilator/torchvision, env.sh"
SITE=$("$DEST/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
mkdir -p "$SITE/pyverilator/util" "$SITE/torchvision/transforms"
cat > "$SITE/pyverilator/__init__.py" <<'PY'
class PyVerilator:
    """Stub: Verilator-based rtlsim needs the FINN docker image."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("pyverilator is a stub in the local FINN venv: rtlsim needs the FINN docker image")

    @classmethod
    def build(cls, *args, **kwargs):
        cls()
PY
touch "$SITE/torchvision/__init__.py" "$SITE/torchvision/transforms/__init__.py"
cat > "$SITE/pyverilator/util/__init__.py" <<'EOF'
EOF
cat > "$SITE/pyverilator/util/axi_utils.py" <<'EOF'
def _unavailable(*args, **kwargs):
    raise RuntimeError("pyverilator is a stub in the local FINN venv: rtlsim needs the FINN docker image")


_read_signal = reset_rtlsim = rtlsim_multi_io = toggle_clk = _unavailable
EOF
cat > "$SITE/torchvision/transforms/functional.py" <<'EOF'
def __getattr__(name):
    raise ImportError("torchvision is a stub in the local FINN venv")
EOF
mkdir -p "$DEST/build"
cat > "$DEST/env.sh" <<EOF
export FINN_ROOT=$DEST/finn
export HLS_PATH=$DEST/hls
export FINN_BUILD_DIR=\${FINN_BUILD_DIR:-$DEST/build}
export NUM_DEFAULT_WORKERS=\${NUM_DEFAULT_WORKERS:-2}
EOF
. "$DEST/env.sh"
"$DEST/bin/python" -c "import finn.builder.build_dataflow as b, qonnx; print('FINN ok:', b.__file__)"
echo "done: FINN_VENV=$DEST (source $DEST/env.sh for FINN_ROOT, HLS_PATH)"
