"""How integer tensors travel on the RTL's AXI-Stream buses: the one packing convention
every module, testbench and generator shares.

* A tensor streams in (h, w, c) order, channels fastest; a beat carries ``elems``
  consecutive elements (a divisor of the channel count, or of the vector length).
* Element i of a beat sits at bits ``[i*ew +: ew]`` (little-endian, element 0 in the LSBs).
* Signed elements are two's complement in ``ew`` bits. BIPOLAR elements are one bit:
  1 is +1, 0 is −1.
"""
from __future__ import annotations

import numpy as np

from build_flow.ir import dtype_range


def elem_width(dtype: str) -> int:
    """Bits per element of an IR datatype on the bus."""
    if dtype == "BIPOLAR":
        return 1
    lo, hi = dtype_range(dtype)
    return int(hi).bit_length() + (1 if lo < 0 else 0)


def is_signed(dtype: str) -> bool:
    return dtype_range(dtype)[0] < 0 and dtype != "BIPOLAR"


def pack_beats(values, elems: int, ew: int, bipolar: bool = False) -> list[int]:
    """Flat integers (stream order) -> beats of `elems` elements as Python ints."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if len(v) % elems:
        raise ValueError(f"{len(v)} elements do not fill beats of {elems}")
    if bipolar:
        if not np.isin(v, (-1, 1)).all():
            raise ValueError("bipolar values must be -1 or +1")
        v = (v > 0).astype(np.int64)
    lo, hi = (-(1 << (ew - 1)), (1 << (ew - 1)) - 1) if (v < 0).any() else (0, (1 << ew) - 1)
    if len(v) and (v.min() < lo or v.max() > hi):
        raise ValueError(f"values {v.min()}..{v.max()} do not fit {ew} bits")
    mask = (1 << ew) - 1
    beats = []
    for i in range(0, len(v), elems):
        word = 0
        for j, x in enumerate(v[i:i + elems].tolist()):
            word |= (x & mask) << (j * ew)
        beats.append(word)
    return beats


def unpack_beats(beats, elems: int, ew: int, signed: bool = False, bipolar: bool = False) -> np.ndarray:
    """Beats (Python ints) -> flat int64 array in stream order."""
    mask = (1 << ew) - 1
    out = np.empty(len(beats) * elems, dtype=np.int64)
    k = 0
    for word in beats:
        for j in range(elems):
            x = (word >> (j * ew)) & mask
            if bipolar:
                x = 1 if x else -1
            elif signed and x >> (ew - 1):
                x -= 1 << ew
            out[k] = x
            k += 1
    return out
