"""qonnx transformations the project adds to the export clean-up.

Each is a `qonnx.transformation.base.Transformation`: `apply(model) -> (model, modified)`.
"""
from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation


class AbsorbScaleDivIntoBipolarWeights(Transformation):
    """BipolarQuant(W, α) -> Div(α) becomes BipolarQuant(W, 1).

    The student's binary conv computes α·conv(x, ±α/α) so that its accumulators are
    exact integers; the export therefore shows the ±α weights divided by α again.
    ±α/α is exactly ±1 in IEEE arithmetic, so replacing the pair with a unit-scale
    BipolarQuant is exact and leaves the conv with plain ±1 (XNOR) weights.
    """

    def apply(self, model: ModelWrapper):
        for node in model.graph.node:
            if node.op_type != "BipolarQuant":
                continue
            scale = model.get_initializer(node.input[1])
            consumers = model.find_consumers(node.output[0]) or []
            if scale is None or len(consumers) != 1 or consumers[0].op_type != "Div":
                continue
            div = consumers[0]
            divisor = model.get_initializer(div.input[1])
            if div.input[0] != node.output[0] or divisor is None or not np.array_equal(
                    np.broadcast_to(divisor, scale.shape), scale):
                continue
            model.set_initializer(node.input[1], np.ones_like(scale))
            for c in model.find_consumers(div.output[0]) or []:
                for i, name in enumerate(c.input):
                    if name == div.output[0]:
                        c.input[i] = node.output[0]
            model.graph.node.remove(div)
            return model, True
        return model, False
