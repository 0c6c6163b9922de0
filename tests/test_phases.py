"""Progressive binarization: each phase enables exactly the quantizers it should."""
import pytest
import torch
from brevitas.nn import QuantIdentity

from model.phases import FULLY_BINARY, WEIGHTS_ONLY, activation_quantizers, get_phase, phase_for_epoch, set_phase

from helpers import random_pixels, tiny_student




def test_phase_one_disables_sign_and_shortcut_quantizers_together():
    model = tiny_student()
    quants = activation_quantizers(model)
    n_blocks = sum(len(s) for s in model.stages)
    assert len(quants) == n_blocks + len(model.stage_quants)  # one sign per block + the stage quantizers
    set_phase(model, WEIGHTS_ONLY)
    assert all(q.act_quant.disable_quant for q in quants)
    assert not model.input_quant.act_quant.disable_quant  # the UINT8 input stays quantized
    assert get_phase(model) == WEIGHTS_ONLY
    set_phase(model, FULLY_BINARY)
    assert not any(q.act_quant.disable_quant for q in quants)
    assert get_phase(model) == FULLY_BINARY


def test_phase_really_changes_what_the_net_computes():
    model = tiny_student()
    x = random_pixels(2)
    seen = {}
    block = model.stages[0][0]
    block.conv.register_forward_hook(lambda m, inp, out: seen.__setitem__("branch_in", inp[0]))
    set_phase(model, WEIGHTS_ONLY)
    with torch.no_grad():
        y1 = model(x)
        feats1 = model.features(x)
    branch1 = seen["branch_in"]
    # real-valued activations feed the binary conv; weights stay ±α
    assert len(branch1.unique()) > 2
    assert len(model.stages[0][0].conv.quant_weight().value[0].abs().unique()) == 1
    set_phase(model, FULLY_BINARY)
    with torch.no_grad():
        y2 = model(x)
        feats2 = model.features(x)
    assert set(seen["branch_in"].unique().tolist()) == {-1.0, 1.0}
    scale = model.stage_quants[0].act_quant.scale()
    assert not torch.equal(feats1[0] / scale, torch.round(feats1[0] / scale))  # phase 1: shortcut is real
    assert torch.equal(feats2[0] / scale, torch.round(feats2[0] / scale))      # phase 2: shortcut is integer
    assert not torch.equal(y1, y2)


def test_phase_schedule():
    assert [phase_for_epoch(e, 2) for e in range(4)] == [1, 1, 2, 2]
    assert [phase_for_epoch(e, 0) for e in range(2)] == [2, 2]
    with pytest.raises(ValueError):
        set_phase(tiny_student(), 3)
