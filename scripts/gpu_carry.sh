#!/usr/bin/env bash
# Prepare what a lent GPU machine needs and lacks, in ignored folders of this checkout: the
# training zip (carry/train.zip) and pure-Python wheels of the packages that machine has no
# copy of (.whl/: Brevitas and its dependencies missing there; torch, numpy, onnx, sympy,
# onnxruntime, matplotlib, pyyaml and tqdm are there; training needs no qonnx). Name `carry` and `.whl` in the
# device call and run scripts/gpu_window.sh there.
#
#   DATA=../shared/datasets/cifar10-jpeg/train.zip bash scripts/gpu_carry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:?set DATA to the training zip}
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
WHEELS="brevitas==0.13.4 dependencies==2.0.1 unfoldNd==0.2.3"
mkdir -p carry .whl
cp "$DATA" carry/train.zip
# pure-Python wheels install on the device's Python whatever this machine's is
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
  --abi none --platform any -d .whl $WHEELS
du -sh carry .whl
