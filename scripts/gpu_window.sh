#!/usr/bin/env bash
# One lent-GPU window as one command (on the device, after scripts/gpu_carry.sh here):
# install the carried wheels, run a sweep (teacher once, then the student variants side by
# side, to the sweep file's deadline), and pack what should come back into $OUT (at most 8
# files): the sweep's table (.md, .json), its log, one slim checkpoint per student variant and
# one tar of every run's metrics, curves, config and train.log.
#
#   bash scripts/gpu_window.sh [configs/sweeps/recipe-1.yaml]        # $OUT: where results go
#
# The device call: run(command="bash scripts/gpu_window.sh configs/sweeps/recipe-1.yaml",
#                      carry=["carry", ".whl"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=${1:-configs/sweeps/recipe-1.yaml}
RESULTS=${OUT:-runs/gpu-window}
RUNS=${RUNS:-runs/sweep}
PY=${PY:-python3}
DATA=${DATA:-carry/train.zip}
mkdir -p "$RESULTS"
if ! "$PY" -c "import brevitas" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" \
    | tee "$RESULTS/sweep.log"
status=0
"$PY" -m model.sweep --sweep "$SWEEP" --data "$DATA" --out "$RUNS" 2>&1 | tee -a "$RESULTS/sweep.log" || status=$?
cp "$RUNS/sweep.md" "$RUNS/sweep.json" "$RESULTS/" 2>/dev/null || true
# slim checkpoints (no optimizer state) of the students, each its own file (the device returns at
# most 8 files of 16 MB: the teacher's 24 MB stays behind), and one tar of every run's metrics,
# curves, config and log
for ckpt in "$RUNS"/*/checkpoint.pt; do
    name=$(basename "$(dirname "$ckpt")")
    [ "$name" = teacher ] && continue
    [ "$(ls "$RESULTS" | wc -l)" -ge 7 ] && break
    "$PY" -m model.release --ckpt "$ckpt" --out "$RESULTS/$name.pt" >/dev/null || true
done
tar -czf "$RESULTS/runs.tar.gz" -C "$RUNS" --exclude '*.pt' .
ls -la "$RESULTS"
exit $status
