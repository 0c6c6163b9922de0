"""scripts/gpu_train.sh end to end on the CPU with a tiny setting (the GPU run uses the same script)."""
import json
import os
import subprocess

import numpy as np
import pytest
import torch
from qonnx.core.onnx_exec import execute_onnx
from qonnx.core.modelwrapper import ModelWrapper

from model.checkpoint import load_trained_model

from helpers import random_pixels, write_cifar_release


@pytest.mark.slow
def test_gpu_script_trains_teacher_student_and_exports(tmp_path):
    release = write_cifar_release(tmp_path / "data", per_class_train=10)
    out = tmp_path / "gpu"
    # the small ResNet-20 teacher: the default airbench one (6 M parameters) takes minutes on a CPU
    env = {**os.environ, "DATA": str(release), "OUT": str(out), "TEACHER_EPOCHS": "1", "STUDENT_EPOCHS": "2",
           "TEACHER_CONFIG": "configs/teacher-resnet20.yaml",
           # compile off: inductor's C++ builds would take minutes on a CPU (tests/test_compile.py and
           # tests/test_train_recipe.py cover the compiled path)
           "EXTRA": "--set data.val_size=20 --set train.batch_size=20 --set train.eval_batch_size=20 "
                    "--set train.compile=false",
           "STUDENT_EXTRA": "--set binarize.weights_only_epochs=1"}
    r = subprocess.run(["bash", "scripts/gpu_train.sh"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    models = out / "models"
    for f in ("student-flagship.pt", "student-flagship.onnx", "student-flagship.metrics.jsonl",
              "student-flagship.curves.png", "teacher-resnet20.metrics.jsonl", "gpu_train.log"):
        assert (models / f).is_file(), f
    assert "student student-flagship val acc" in (models / "gpu_train.log").read_text()
    student = torch.load(models / "student-flagship.pt", weights_only=True)
    assert "optimizer" not in student and student["phase"] == 2 and len(student["metrics"]) == 2
    assert student["config"]["distill"]["teacher"] == str(out / "teacher" / "checkpoint.pt")
    # the exported file computes what the released checkpoint computes
    model, _, _ = load_trained_model(models / "student-flagship.pt")
    w = ModelWrapper(str(models / "student-flagship.onnx"))
    x = random_pixels(1, seed=3)
    got = execute_onnx(w, {w.graph.input[0].name: x.numpy()})[w.graph.output[0].name]
    with torch.no_grad():
        assert np.array_equal(got, model(x).numpy())
