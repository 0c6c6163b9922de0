#!/usr/bin/env bash
# Reference run on one GPU: the airbench-style teacher, then the flagship Bi-Real student distilled
# from it, then the student exported to QONNX. Designed for <= 9 minutes of wall time on one H100.
#
#   DATA=../shared/datasets/cifar10-jpeg/train.zip OUT=runs/gpu bash scripts/gpu_train.sh
#
# Environment (all optional but DATA):
#   PY               python to use (default: .venv/bin/python if present, else python3)
#   TEACHER_CONFIG   default configs/teacher-airbench.yaml
#   STUDENT_CONFIG   default configs/student-flagship.yaml
#   TEACHER_EPOCHS / STUDENT_EPOCHS   override the configs' epochs
#   BUDGET_S         seconds for both trainings: model.epoch_budget times the real steps on this device
#                    first and picks the epochs that fit (never more than the configs'); ignored when
#                    TEACHER_EPOCHS and STUDENT_EPOCHS are both set
#   EXPORT           0 skips the QONNX export (a machine without qonnx; export later with build_flow.export)
#   EXTRA            extra trainer arguments for both runs, e.g. "--set data.limit_per_class=20" (CPU smoke test)
#   STUDENT_EXTRA    extra trainer arguments for the student only, e.g. "--set binarize.weights_only_epochs=1"
#   NPROC            >1 runs each training under torchrun with that many processes (GPUs)
# Writes OUT/teacher/, OUT/student/ (checkpoints, metrics, curves) and OUT/models/ (slim model, .onnx,
# metrics, curves, log): the files to commit under models/.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?set DATA to the training data (zip, ImageFolder or cifar-10-batches-py)}"
OUT=${OUT:-runs/gpu}
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
TEACHER_CONFIG=${TEACHER_CONFIG:-configs/teacher-airbench.yaml}
STUDENT_CONFIG=${STUDENT_CONFIG:-configs/student-flagship.yaml}
NPROC=${NPROC:-1}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
read -r -a STUDENT_ARGS <<< "${STUDENT_EXTRA:-}"
mkdir -p "$OUT/models"
LOG="$OUT/models/gpu_train.log"
: > "$LOG"

run_train() {  # config out [epochs] [teacher]
    local args=(--config "$1" --data "$DATA" --out "$2" --no-progress "${EXTRA_ARGS[@]}")
    [ -n "${3:-}" ] && args+=(--epochs "$3")
    [ -n "${4:-}" ] && args+=(--teacher "$4" "${STUDENT_ARGS[@]}")
    if [ "$NPROC" -gt 1 ]; then
        "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m model.train "${args[@]}"
    else
        "$PY" -m model.train "${args[@]}"
    fi
}

stage() { echo "== $1 ($(date -u +%H:%M:%S))" | tee -a "$LOG"; }
t0=$SECONDS
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" | tee -a "$LOG"

if [ -n "${BUDGET_S:-}" ] && { [ -z "${TEACHER_EPOCHS:-}" ] || [ -z "${STUDENT_EPOCHS:-}" ]; }; then
    stage "epoch budget: $BUDGET_S s"
    plan=$("$PY" -m model.epoch_budget --teacher-config "$TEACHER_CONFIG" --student-config "$STUDENT_CONFIG" \
        --budget-s "$BUDGET_S" 2> >(grep -v fast_hadamard | tee -a "$LOG" >&2))
    eval "$plan"
    read -r -a SET_ARGS <<< "${TRAIN_SET:-}"
    EXTRA_ARGS+=("${SET_ARGS[@]}")
    echo "$plan" | tee -a "$LOG"
fi

stage "teacher: $TEACHER_CONFIG"
run_train "$TEACHER_CONFIG" "$OUT/teacher" "${TEACHER_EPOCHS:-}" 2>&1 | grep -v fast_hadamard | tee -a "$LOG"
t_teacher=$((SECONDS - t0))

stage "student: $STUDENT_CONFIG (teacher $OUT/teacher/checkpoint.pt)"
run_train "$STUDENT_CONFIG" "$OUT/student" "${STUDENT_EPOCHS:-}" "$OUT/teacher/checkpoint.pt" 2>&1 | grep -v fast_hadamard | tee -a "$LOG"
t_student=$((SECONDS - t0 - t_teacher))

name=$(basename "$STUDENT_CONFIG" .yaml)
stage "export: $OUT/models/$name.onnx"
"$PY" -m model.release --ckpt "$OUT/student/checkpoint.pt" --out "$OUT/models/$name.pt" | tee -a "$LOG"
if [ "${EXPORT:-1}" != 0 ]; then
    "$PY" -m build_flow.export --ckpt "$OUT/models/$name.pt" --out "$OUT/models/$name.onnx" 2>&1 | grep -v fast_hadamard | tee -a "$LOG"
fi
cp "$OUT/student/metrics.jsonl" "$OUT/models/$name.metrics.jsonl"
cp "$OUT/student/curves.png" "$OUT/models/$name.curves.png"
cp "$OUT/teacher/metrics.jsonl" "$OUT/models/$(basename "$TEACHER_CONFIG" .yaml).metrics.jsonl"

"$PY" - "$OUT" "$name" "$t_teacher" "$t_student" <<'PYEOF' | tee -a "$LOG"
import json, sys
from model.checkpoint import load_trained_model
from model.student import complexity
out, name, tt, ts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
teacher = [json.loads(l) for l in open(f"{out}/teacher/metrics.jsonl")][-1]
student = [json.loads(l) for l in open(f"{out}/student/metrics.jsonl")][-1]
model, cfg, _ = load_trained_model(f"{out}/models/{name}.pt")
c = complexity(model)
print(f"teacher val acc {100 * teacher['val_acc']:.2f} % ({tt} s); student {name} val acc "
      f"{100 * student['val_acc']:.2f} % ({ts} s); {c.binary_macs / 1e6:.1f} M binary MACs/image, "
      f"{c.weight_bits / 1e6:.2f} Mbit weights")
PYEOF
echo "total $((SECONDS - t0)) s" | tee -a "$LOG"
