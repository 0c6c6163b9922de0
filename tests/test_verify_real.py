"""Every stage bit-exact on 256 real training images, for the project's students with 4- and
8-bit shortcuts, both briefly trained and with random weights and randomized BatchNorm
statistics (negative γ included): PyTorch = QONNX = IR numpy = IR onnxruntime."""
import os

import pytest

from build_flow.compile import compile_model
from build_flow.models import Selected, briefly_trained_student
from verify.compare import format_table, load_images, run_stages

from helpers import tiny_student

DATA = os.environ.get("BNN_DATA", "../shared/datasets/cifar10-jpeg/train.zip")
IMAGES = 256


@pytest.fixture(scope="module")
def real_images():
    if not os.path.exists(DATA):
        pytest.skip(f"real images not found at {DATA} (set BNN_DATA)")
    images, what = load_images(DATA, (3, 32, 32), IMAGES, seed=11)
    assert what.startswith(f"{IMAGES} real images"), what
    return images


@pytest.mark.parametrize("trained", [False, True], ids=["random", "trained"])
@pytest.mark.parametrize("bits", [4, 8])
def test_student_is_bit_exact_on_real_images(real_images, tmp_path, bits, trained):
    sel = (briefly_trained_student(bits, DATA, tmp_path / "train") if trained
           else Selected(tiny_student(bits, seed=20 + bits), (3, 32, 32), "tiny", "config"))
    qonnx_model, graph = compile_model(sel, tmp_path / "compiled")
    results = run_stages(sel.model, qonnx_model, graph, real_images)
    print(format_table(results))
    assert [r.images for r in results] == [IMAGES] * 4
    assert [r.mismatches for r in results] == [0, 0, 0, 0], format_table(results)
    assert len(graph.meta["probes"]) >= 8  # internal integers were compared too, not only the scores
