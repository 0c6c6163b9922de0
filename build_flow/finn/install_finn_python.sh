#!/usr/bin/env bash
# FINN's Python environment, one install path for the FINN docker image (Dockerfile, target finn) and the
# local FINN venv (setup_local_finn.sh).
#
#   build_flow/finn/install_finn_python.sh PYTHON FINN_ROOT [--rtlsim]
#
# PYTHON: the interpreter to install into (the image's python3, or DEST/bin/python of a venv).
# FINN_ROOT: FINN's source tree with deps/qonnx (and, with --rtlsim, deps/finn-experimental and
#   deps/pyverilator), as FINN's fetch-repos.sh lays them out.
# --rtlsim: the real pyverilator and finn-experimental (the image: Verilator is installed there).
#   Without it a stub pyverilator is installed (imported at module level by FINN; rtlsim raises).
# TORCH_INDEX: where torch comes from (default the CPU index of download.pytorch.org;
#   `none`: the configured pip index / find-links, e.g. local wheels).
# Steps: torch 2.13.0 (CPU), requirements-finn.txt, qonnx and FINN editable with --no-deps (so protobuf
# stays at FINN's pin), then a small torchvision stub, the same in the image and the venv: FINN's
# finn.util.test imports torchvision.transforms.functional at module level (build_dataflow_steps imports
# finn.util.test) but only its ImageNet test helpers call it, which this flow never runs. (The real
# torchvision 0.28.0 from PyPI fails to import over CPU torch: "operator torchvision::nms does not exist";
# the matching +cpu wheel is not reachable from the measuring machine, so it could not be tested here.)
set -euo pipefail

PY=${1:?usage: install_finn_python.sh PYTHON FINN_ROOT [--rtlsim]}
ROOT=${2:?usage: install_finn_python.sh PYTHON FINN_ROOT [--rtlsim]}
RTLSIM=${3:-}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REQ=$HERE/requirements-finn.txt
[ -z "$RTLSIM" ] || [ "$RTLSIM" = --rtlsim ] || { echo "error: unknown option '$RTLSIM' (known: --rtlsim)" >&2; exit 2; }
"$PY" -c "" 2>/dev/null || { echo "error: PYTHON=$PY does not run" >&2; exit 2; }
[ -f "$ROOT/setup.py" ] || { echo "error: FINN_ROOT=$ROOT: no FINN source tree (no setup.py)" >&2; exit 2; }
[ -f "$ROOT/deps/qonnx/setup.cfg" ] || { echo "error: FINN_ROOT=$ROOT: no deps/qonnx" >&2; exit 2; }
if [ -n "$RTLSIM" ]; then
  for d in finn-experimental pyverilator; do
    [ -d "$ROOT/deps/$d" ] || { echo "error: FINN_ROOT=$ROOT: no deps/$d (needed by --rtlsim)" >&2; exit 2; }
  done
fi
PIP="$PY -m pip --no-cache-dir"
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

echo "[install_finn_python] torch ($TORCH_INDEX)"
if [ "$TORCH_INDEX" = none ]; then $PIP install -q torch==2.13.0
else $PIP install -q torch==2.13.0 --index-url "$TORCH_INDEX"; fi
echo "[install_finn_python] $REQ"
# torch named again so that pip cannot swap the CPU build for another release while resolving the file
$PIP install -q -r "$REQ" torch==2.13.0
echo "[install_finn_python] qonnx, FINN (editable, --no-deps)"
SETUPTOOLS_SCM_PRETEND_VERSION=0.4.0 $PIP install -q --no-deps --no-build-isolation -e "$ROOT/deps/qonnx"
SETUPTOOLS_SCM_PRETEND_VERSION=0.10.1 $PIP install -q --no-deps --no-build-isolation -e "$ROOT"
SITE=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "[install_finn_python] torchvision stub"
$PIP uninstall -y -q torchvision >/dev/null 2>&1 || true
rm -rf "$SITE/torchvision" && mkdir -p "$SITE/torchvision/transforms"
cat > "$SITE/torchvision/__init__.py" <<'PY'
"""Stub (build_flow/finn/install_finn_python.sh), the same in the FINN image and the local venv: FINN's
finn.util.test imports torchvision.transforms.functional at module level; only its ImageNet helpers use it."""
BNN_FLOW_STUB = True
PY
: > "$SITE/torchvision/transforms/__init__.py"
cat > "$SITE/torchvision/transforms/functional.py" <<'PY'
def __getattr__(name):
    raise ImportError(f"torchvision.transforms.functional.{name}: torchvision is a stub in FINN's environment "
                      "(build_flow/finn/install_finn_python.sh)")
PY
if [ -n "$RTLSIM" ]; then
  echo "[install_finn_python] finn-experimental, pyverilator (editable, --no-deps)"
  $PIP install -q --no-deps --no-build-isolation -e "$ROOT/deps/finn-experimental" -e "$ROOT/deps/pyverilator"
else
  echo "[install_finn_python] pyverilator stub (rtlsim needs the FINN docker image)"
  mkdir -p "$SITE/pyverilator/util"
  cat > "$SITE/pyverilator/__init__.py" <<'PY'
"""Stub (build_flow/finn/install_finn_python.sh): FINN imports pyverilator at module level; rtlsim needs
the FINN docker image, where the real one is installed."""


class PyVerilator:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("pyverilator is a stub in the local FINN venv: rtlsim needs the FINN docker image")

    @classmethod
    def build(cls, *args, **kwargs):
        cls()
PY
  : > "$SITE/pyverilator/util/__init__.py"
  cat > "$SITE/pyverilator/util/axi_utils.py" <<'PY'
def _unavailable(*args, **kwargs):
    raise RuntimeError("pyverilator is a stub in the local FINN venv: rtlsim needs the FINN docker image")


_read_signal = reset_rtlsim = rtlsim_multi_io = toggle_clk = _unavailable
PY
fi
"$PY" -c "
import torchvision.transforms.functional, finn.builder.build_dataflow_steps, qonnx, google.protobuf as p
import torch
assert p.__version__ == '5.29.6', 'protobuf ' + p.__version__ + ', expected 5.29.6 (FINN requirements.txt)'
assert torch.__version__.split('+')[0] == '2.13.0', 'torch ' + torch.__version__ + ', expected 2.13.0'
print('[install_finn_python] ok: FINN builder imports, protobuf', p.__version__)"
