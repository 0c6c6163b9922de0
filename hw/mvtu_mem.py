"""Memory files and widths for bnn_mvtu (IR op MatrixVector) and bnn_threshold (IR op Threshold).

Every file is read by ``$readmemh``: one hexadecimal word per line, line i = the word at address
i, most significant digit first, exactly ceil(width/4) digits (the top digit never exceeds the
word width), no address markers or comments.

bnn_mvtu with ``NF = MH/PE`` neuron folds and ``SF = MW/SIMD`` synapse folds:

* weights: depth NF·SF, width PE·SIMD; word ``nf*SF + sf``, bit ``p*SIMD + s`` is the weight of
  row ``nf*PE + p``, column ``sf*SIMD + s`` (1 = +1, 0 = −1);
* thresholds: depth NF, width PE·L·T_W; word ``nf``, element ``p*L + k`` (bits
  ``[(p*L + k)*T_W +: T_W]``, two's complement) = threshold k of channel ``nf*PE + p``;
* directions: depth NF, width PE; word ``nf``, bit ``p`` = 1 where channel ``nf*PE + p`` has
  direction −1 (the unit then counts ``T_k >= acc``; else ``T_k <= acc``).

bnn_threshold uses the same threshold/direction layout with E (elements per beat) in place of PE.

Binary-search mode (THRES_SEARCH = 1, L = 2^S − 1 thresholds per channel; ``search_threshold_words``):
each row is sorted ascending first (exact: the step function counts #{k: T_k <= acc} or
#{k: T_k >= acc}, independent of the order), T_0 <= … <= T_{L−1}, and split into S level files
``<prefix><j>.mem`` (j = 0 … S−1; THRES_FILE = the prefix). Level j compares with threshold
``T[(2Q+1)·2^(S−1−j) − 1]``, Q = the j count bits found so far (MSB first):

* level 0: depth NF, width PE·T_W; word ``nf``, element ``p`` = T[2^(S−1) − 1] of channel ``nf*PE + p``;
* level j >= 1: depth NF·2^(j−1), width PE·2·T_W; word ``nf*2^(j−1) + P``, element ``p*2 + h`` =
  T[(2(2P+h)+1)·2^(S−1−j) − 1] of channel ``nf*PE + p`` (both children of node P, read one level
  early; the bit h found at level j−1 picks one).

The direction memory is unchanged. Direction +1 outputs the count c found with "T <= acc",
direction −1 searches with "T < acc" and outputs L − c = ~c (S bits).

Typical use by a generator (``mvtu_params`` does all of it for one IR layer)::

    acc_w = acc_width(mw, *dtype_range(in_dtype))
    t = clip_thresholds(thresholds, -acc_bound, acc_bound)   # optional: narrower T_W
    write_weight_mem(d / "w.mem", weights, pe, simd)
    write_threshold_mem(d / "t.mem", t, mh, pe, threshold_width(t))
    write_direction_mem(d / "d.mem", direction, mh, pe)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from build_flow.ir import dtype_range
from hw import bram  # block-RAM shapes: slices and banks
from hw.stream import elem_width, is_signed

__all__ = ["signed_width", "acc_width", "acc_bound", "threshold_width", "clip_thresholds", "expand_rows",
           "weight_words", "threshold_words", "direction_words", "write_mem", "write_weight_mem",
           "write_threshold_mem", "write_direction_mem", "search_levels", "use_search", "activation_stages",
           "search_threshold_words", "write_search_threshold_mems", "mvtu_params", "threshold_params",
           "weight_rom", "weight_in_bram", "weight_layout", "weight_banks", "weight_bank_files",
           "logic_rom_bank", "LOGIC_ROM_BANK", "FAMILIES"]


# ---------------------------------------------------------------- weight banks and slices

def weight_rom(mh: int, mw: int, pe: int, simd: int) -> tuple[int, int]:
    """(depth, width) of bnn_mvtu's weight ROM for an MH x MW matrix at PE x SIMD: NF*SF words of PE*SIMD bits."""
    return mh // pe * (mw // simd), pe * simd


def weight_in_bram(depth: int, width: int) -> bool:
    """bnn_mvtu's default weight ROM style (WEIGHT_BRAM = -1): block RAM from 128 words and 16 kbit."""
    return depth >= 128 and depth * width >= 16384


def weight_layout(depth: int, width: int) -> tuple[int, int]:
    """bnn_mvtu's (WBANK, WSLICE) for a depth x width weight ROM: a block-RAM ROM deeper than one
    RAM at its widest port is width-sliced and, where that takes fewer RAMs or it is deeper than
    16,384 words, split into banks (hw/bram.py); else (0, 0), one memory."""
    if not weight_in_bram(depth, width) or depth < bram.SLICE_FROM:
        return 0, 0
    return bram.rom_banks(depth, width), 1


# Words of a weight bank kept in logic, per FPGA family: a bank as deep as one LUT of the part reads
# (ECP5: LUT4, 16 words) makes every weight bit one LUT of the bank's address, read into the bank's
# register, and the bank mux comes in the next cycle (MEM_REG 1). One wide logic ROM of more words is
# left to the synthesizer, which shares decode terms across bits: CNV_1W1A's Conv_1 (36 words of
# 1,024 bits) became 6 LUT4 levels with long routes between them on the ECP5-85F (11.24 ns,
# 88.94 MHz). Each bank is a bnn_rom, synthesized apart: flattened, ABC chained the banks' bits
# through each other's LUTs all the same (5 levels, 91.81 MHz). xc7's LUT6 with its F7/F8 muxes reads 256 words within one slice, deeper than any ROM
# left in logic (block RAM from 128 words and 16 kbit), so it keeps one memory. Banks stop at
# LOGIC_ROM_MAX_BANKS (an 8:1 bank mux, 2 LUT4 levels): a deeper logic ROM is narrow (under 16 kbit),
# its decode drives few bits, and more banks would only move the depth into the bank mux.
LOGIC_ROM_BANK = {"xc7": 0, "ecp5": 16}
LOGIC_ROM_MAX_BANKS = 8
FAMILIES = tuple(LOGIC_ROM_BANK)


def logic_rom_bank(depth: int, width: int, family: str = "xc7") -> int:
    """bnn_mvtu's WBANK for a weight ROM kept in logic on `family` (with WEIGHT_BRAM = 0, MEM_REG 1):
    LOGIC_ROM_BANK words where the ROM takes 2 .. LOGIC_ROM_MAX_BANKS such banks, else 0 (one
    memory, or a block-RAM ROM)."""
    if family not in LOGIC_ROM_BANK:
        raise ValueError(f"unknown FPGA family '{family}' (known: {', '.join(FAMILIES)})")
    bank = LOGIC_ROM_BANK[family]
    if not bank or weight_in_bram(depth, width) or not bank < depth <= bank * LOGIC_ROM_MAX_BANKS:
        return 0
    return bank


def weight_banks(depth: int, width: int) -> int:
    """Banks of bnn_mvtu's weight ROM as `weight_layout` builds it (1: one memory)."""
    bank = weight_layout(depth, width)[0]
    return -(-depth // bank) if bank else 1


def weight_bank_files(prefix: str | Path, words: list[int], width: int, bank: int, sliced: bool = False) -> str:
    """Write bnn_mvtu's weight files for WBANK = `bank` (0: one bank) and WSLICE = `sliced`: the bank
    files ``<prefix><b:03d>.mem``, or with slices ``<prefix><b:03d>_<k:03d>.mem`` (bank b, slice k
    = bits [lo +: n] of `hw.bram.slices`); returns WEIGHT_FILE (the absolute prefix)."""
    bank = bank or len(words)
    n = -(-len(words) // bank)
    if n > 1000:
        raise ValueError(f"{n} weight banks: the RTL names the bank files by three decimal digits (at most 1000)")
    prefix = str(Path(prefix).parent.resolve() / Path(prefix).name)
    for b in range(n):
        part = words[b * bank:(b + 1) * bank]
        if not sliced:
            write_mem(f"{prefix}{b:03d}.mem", part, width)
            continue
        cuts = bram.slices(len(part), width)
        if len(cuts) > 1000:
            raise ValueError(f"{len(cuts)} weight slices: the RTL names the slice files by three decimal digits")
        for k, (lo, bits) in enumerate(cuts):
            write_mem(f"{prefix}{b:03d}_{k:03d}.mem", [(w >> lo) & ((1 << bits) - 1) for w in part], bits)
    return prefix


# ---------------------------------------------------------------- widths

def signed_width(lo: int, hi: int) -> int:
    """Bits of the narrowest two's complement type holding every integer in [lo, hi] (at least 2,
    so that the sign bit is never the only bit)."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    return max(2, (-lo - 1).bit_length() + 1 if lo < 0 else 0, hi.bit_length() + 1)


def acc_bound(mw: int, in_lo: int, in_hi: int) -> int:
    """The largest |acc| of a ±1 row of length `mw` times inputs in [in_lo, in_hi] (pass (−1, 1)
    for BIPOLAR inputs). Partial sums of fewer terms are bounded by it as well."""
    if mw < 1:
        raise ValueError(f"matrix width {mw} must be >= 1")
    return int(mw) * max(abs(int(in_lo)), abs(int(in_hi)))


def acc_width(mw: int, in_lo: int, in_hi: int) -> int:
    """ACC_W for bnn_mvtu: signed bits of every accumulator (and partial sum) value,
    [−acc_bound, acc_bound]."""
    b = acc_bound(mw, in_lo, in_hi)
    return signed_width(-b, b)


def threshold_width(thresholds) -> int:
    """T_W: signed bits holding every threshold value."""
    t = np.asarray(thresholds, dtype=np.int64)
    if t.size == 0:
        return 2
    return signed_width(int(t.min()), int(t.max()))


def clip_thresholds(thresholds, lo: int, hi: int) -> np.ndarray:
    """Thresholds clipped to [lo − 1, hi + 1] for inputs known to lie in [lo, hi].

    No comparison T <= x or T >= x with x in [lo, hi] changes (a threshold above hi stays above it,
    one below lo stays below), so the step function is the same while T_W shrinks to about the
    input width."""
    return np.clip(np.asarray(thresholds, dtype=np.int64), int(lo) - 1, int(hi) + 1)


def expand_rows(arr, channels: int) -> np.ndarray:
    """An IR per-channel array (one row per channel, or a single row shared by all) as `channels` rows."""
    a = np.asarray(arr)
    if a.shape[0] == channels:
        return a
    if a.shape[0] == 1:
        return np.repeat(a, channels, axis=0)
    raise ValueError(f"{a.shape[0]} rows for {channels} channels (need 1 or {channels})")


# ---------------------------------------------------------------- words

def _pack_words(elems: np.ndarray, ew: int) -> list[int]:
    """(depth, n) integers -> `depth` words, element j at bits [j*ew +: ew] (two's complement)."""
    elems = np.asarray(elems, dtype=np.int64)
    depth, n = elems.shape
    bits = ((elems[:, :, None] >> np.arange(ew, dtype=np.int64)) & 1).astype(np.uint8).reshape(depth, n * ew)
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def _check_fold(total: int, fold: int, what: str) -> int:
    if fold < 1 or total % fold:
        raise ValueError(f"{what} = {fold} does not divide {total}")
    return total // fold


def weight_words(weights, pe: int, simd: int) -> list[int]:
    """The bnn_mvtu weight memory (NF·SF words of PE·SIMD bits) of an (MH, MW) ±1 matrix."""
    w = np.asarray(weights)
    if w.ndim != 2 or not np.isin(w, (-1, 1)).all():
        raise ValueError(f"weights must be a 2-D ±1 array, got shape {w.shape}")
    mh, mw = w.shape
    nf, sf = _check_fold(mh, pe, "PE"), _check_fold(mw, simd, "SIMD")
    bits = (w > 0).astype(np.int64).reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe * simd)
    return _pack_words(bits, 1)


def threshold_words(thresholds, channels: int, pe: int, t_w: int) -> list[int]:
    """The threshold memory (C/PE words of PE·L·T_W bits) of a (C or 1, L) threshold array."""
    t = expand_rows(np.asarray(thresholds, dtype=np.int64), channels)
    if t.ndim != 2 or t.shape[1] < 1:
        raise ValueError(f"thresholds must have shape (C or 1, L >= 1), got {t.shape}")
    need = threshold_width(t)
    if t_w < need:
        raise ValueError(f"thresholds {t.min()}..{t.max()} need T_W >= {need}, got {t_w}")
    nf = _check_fold(channels, pe, "PE")
    return _pack_words(t.reshape(nf, pe * t.shape[1]), t_w)


def direction_words(direction, channels: int, pe: int) -> list[int]:
    """The direction memory (C/PE words of PE bits; 1 = direction −1) of a (C or 1,) ±1 array."""
    d = expand_rows(np.asarray(direction).reshape(-1), channels)
    if not np.isin(d, (-1, 1)).all():
        raise ValueError("direction must be ±1")
    nf = _check_fold(channels, pe, "PE")
    return _pack_words((d < 0).astype(np.int64).reshape(nf, pe), 1)


def search_levels(levels: int) -> int:
    """S = log2(L + 1), the binary-search levels for L thresholds per channel (L + 1 a power of two)."""
    levels = int(levels)
    if levels < 1 or levels & (levels + 1):
        raise ValueError(f"binary search needs L = 2^S - 1 thresholds per channel, got L = {levels}")
    return levels.bit_length()


def use_search(levels: int, search: bool | None = None) -> bool:
    """Whether a unit with `levels` thresholds per channel uses the binary search: `search` None (the
    default) means yes when L >= 15 and L + 1 is a power of two; True demands it (ValueError unless
    L + 1 is a power of two; L = 1 still uses the one comparator, the same circuit); False never."""
    levels = int(levels)
    if search is None:
        return levels >= 15 and not levels & (levels + 1)
    if search:
        search_levels(levels)
        return levels > 1
    return False


def activation_stages(levels: int, search: bool | None = None) -> int:
    """Register stages bnn_thres_step adds between an element and its activation: 2S - 3 for the
    binary search over L = 2^S - 1 thresholds (levels >= 2 wait a stage for their ROM), 0 for the
    parallel comparators."""
    return 2 * search_levels(levels) - 3 if use_search(levels, search) else 0


def search_threshold_words(thresholds, channels: int, pe: int, t_w: int) -> list[list[int]]:
    """The S binary-search level memories (module docstring) of a (C or 1, L) threshold array:
    a list of S word lists, level 0 first; pe = PE (bnn_mvtu) or E (bnn_threshold)."""
    t = expand_rows(np.asarray(thresholds, dtype=np.int64), channels)
    if t.ndim != 2:
        raise ValueError(f"thresholds must have shape (C or 1, L), got {t.shape}")
    need = threshold_width(t)
    if t_w < need:
        raise ValueError(f"thresholds {t.min()}..{t.max()} need T_W >= {need}, got {t_w}")
    levels = t.shape[1]
    s = search_levels(levels)
    nf = _check_fold(channels, pe, "PE")
    srt = np.sort(t, axis=1).reshape(nf, pe, levels)
    words = [_pack_words(srt[:, :, (1 << (s - 1)) - 1], t_w)]
    for j in range(1, s):
        q = np.arange(1 << j).reshape(1 << (j - 1), 2)          # Q = 2P + h
        k = (2 * q + 1) * (1 << (s - 1 - j)) - 1                # (2^(j-1), 2) threshold indices
        elems = srt[:, :, k]                                    # (nf, pe, 2^(j-1), 2)
        elems = elems.transpose(0, 2, 1, 3).reshape(nf << (j - 1), pe * 2)
        words.append(_pack_words(elems, t_w))
    return words


def write_search_threshold_mems(prefix: str | Path, thresholds, channels: int, pe: int, t_w: int) -> str:
    """Write the level files ``<prefix><j>.mem`` of THRES_SEARCH = 1 and return THRES_FILE (the
    absolute prefix)."""
    if search_levels(np.asarray(thresholds).shape[1]) > 10:
        raise ValueError("the RTL names the level files by one decimal digit: at most 10 levels (L <= 1023)")
    prefix = str(Path(prefix).parent.resolve() / Path(prefix).name)
    for j, words in enumerate(search_threshold_words(thresholds, channels, pe, t_w)):
        write_mem(f"{prefix}{j}.mem", words, pe * min(2, 1 << j) * t_w)
    return prefix


def write_mem(path: str | Path, words: list[int], width: int) -> Path:
    """Write `words` as a $readmemh file of `width`-bit words (atomically)."""
    digits = max(1, (width + 3) // 4)
    for i, w in enumerate(words):
        if w < 0 or w >> width:
            raise ValueError(f"word {i} does not fit {width} bits")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # renamed into place: never half a file
    tmp.write_text("".join(f"{w:0{digits}x}\n" for w in words))
    os.replace(tmp, path)
    return path


def write_weight_mem(path: str | Path, weights, pe: int, simd: int) -> Path:
    """WEIGHT_FILE of bnn_mvtu for an (MH, MW) ±1 matrix."""
    return write_mem(path, weight_words(weights, pe, simd), pe * simd)


def write_threshold_mem(path: str | Path, thresholds, channels: int, pe: int, t_w: int) -> Path:
    """THRES_FILE of bnn_mvtu (pe = PE) or bnn_threshold (pe = E)."""
    t = np.asarray(thresholds)
    return write_mem(path, threshold_words(t, channels, pe, t_w), pe * t.shape[1] * t_w)


def write_direction_mem(path: str | Path, direction, channels: int, pe: int) -> Path:
    """DIR_FILE of bnn_mvtu (pe = PE) or bnn_threshold (pe = E)."""
    return write_mem(path, direction_words(direction, channels, pe), pe)


# ---------------------------------------------------------------- whole layers

def _out_params(out_dtype: str, thresholds, y_min: int | None) -> dict:
    bipolar = out_dtype == "BIPOLAR"
    if bipolar and np.asarray(thresholds).shape[1] != 1:
        raise ValueError("a BIPOLAR output needs exactly one threshold per channel")
    return {"OUT_EW": elem_width(out_dtype), "OUT_BIPOLAR": int(bipolar),
            "Y_MIN": 0 if bipolar else int(dtype_range(out_dtype)[0] if y_min is None else y_min)}


def _thres_file(mem_dir: Path, name: str, t, channels: int, pe: int, t_w: int, search: bool | None) -> dict:
    """THRES_SEARCH and THRES_FILE (the parallel memory or the prefix of the search levels)."""
    if use_search(t.shape[1], search):
        return {"THRES_SEARCH": 1,
                "THRES_FILE": write_search_threshold_mems(mem_dir / f"{name}_ts", t, channels, pe, t_w)}
    return {"THRES_SEARCH": 0,
            "THRES_FILE": str(write_threshold_mem(mem_dir / f"{name}_t.mem", t, channels, pe, t_w).resolve())}


def mvtu_params(mem_dir: str | Path, name: str, weights, in_dtype: str, out_dtype: str, pe: int, simd: int,
                thresholds=None, direction=None, y_min: int | None = None, search: bool | None = None,
                wbank: int = 0, wslice: int = 0, logic_bank: int = 0) -> dict:
    """Write the memory files of one MatrixVector layer into `mem_dir` (``<name>_w.mem``,
    ``<name>_t.mem``, ``<name>_d.mem``; in binary-search mode ``<name>_ts0.mem`` … instead of
    ``<name>_t.mem``) and return bnn_mvtu's parameters (absolute file paths).

    `weights` (MH, MW) ±1; `in_dtype`/`out_dtype` IR datatypes (`out_dtype` is the accumulator's
    own datatype when there are no thresholds: OUT_EW = its width, the accumulator sign-extended);
    `thresholds` (MH or 1, L) and `direction` (MH or 1,) ±1, or None for no activation; `y_min`
    defaults to the output datatype's minimum. Thresholds are clipped to the accumulator range
    ± 1 (clip_thresholds), which keeps T_W near ACC_W without changing any output. `search`
    chooses THRES_SEARCH (use_search: None = binary search when L >= 15 and L + 1 is a power of two).
    `wbank` > 0 splits the weights into bank files ``<name>_w<b:03d>.mem`` (bnn_mvtu's WBANK; set
    MEM_REG = 2 beside it) instead of ``<name>_w.mem``; `wslice` 1 splits every bank in width,
    ``<name>_w<b:03d>_<k:03d>.mem`` (WSLICE; `weight_layout` gives both). `logic_bank` > 0 instead
    splits a ROM kept in logic into banks of that many words (WEIGHT_BRAM = 0, MEM_REG 1 beside it;
    `logic_rom_bank` gives it).
    """
    mem_dir = Path(mem_dir)
    w = np.asarray(weights)
    mh, mw = w.shape
    in_bipolar = in_dtype == "BIPOLAR"
    lo, hi = dtype_range(in_dtype)
    bound = acc_bound(mw, lo, hi)
    acc_w = acc_width(mw, lo, hi)
    params = {"MW": mw, "MH": mh, "SIMD": simd, "PE": pe, "IN_EW": elem_width(in_dtype),
              "IN_SIGNED": int(is_signed(in_dtype)), "IN_BIPOLAR": int(in_bipolar),
              "WBANK": wbank, "WSLICE": wslice}
    if logic_bank:
        if wbank or wslice:
            raise ValueError("a weight ROM is banked in logic or in block RAM, not both")
        wbank = params["WBANK"] = logic_bank
        params["WEIGHT_BRAM"] = 0
    if wbank or wslice:
        params["WEIGHT_FILE"] = weight_bank_files(mem_dir / f"{name}_w", weight_words(w, pe, simd), pe * simd,
                                                  wbank, bool(wslice))
    else:
        params["WEIGHT_FILE"] = str(write_weight_mem(mem_dir / f"{name}_w.mem", w, pe, simd).resolve())
    if thresholds is None:
        out_ew = elem_width(out_dtype)
        params.update(ACC_W=acc_w, N_THRES=0, T_W=2, THRES_SEARCH=0, OUT_EW=out_ew, OUT_BIPOLAR=0, Y_MIN=0)
        # THRES_FILE / DIR_FILE keep their defaults: nothing reads them without thresholds
        return params
    if direction is None:
        raise ValueError("thresholds need a direction array")
    t = clip_thresholds(thresholds, -bound, bound)
    t_w = threshold_width(t)
    params.update(ACC_W=acc_w, N_THRES=int(t.shape[1]), T_W=t_w,
                  **_thres_file(mem_dir, name, t, mh, pe, t_w, search),
                  DIR_FILE=str(write_direction_mem(mem_dir / f"{name}_d.mem", direction, mh, pe).resolve()),
                  **_out_params(out_dtype, t, y_min))
    return params


def threshold_params(mem_dir: str | Path, name: str, channels: int, elems: int, in_dtype: str, out_dtype: str,
                     thresholds, direction, y_min: int | None = None, search: bool | None = None) -> dict:
    """Write the memory files of one Threshold layer (``<name>_t.mem`` or the search levels
    ``<name>_ts<j>.mem``, ``<name>_d.mem``) and return bnn_threshold's parameters; `elems` = E, the
    elements per beat (divides `channels`); `search` as in mvtu_params."""
    mem_dir = Path(mem_dir)
    if in_dtype == "BIPOLAR":
        raise ValueError("bnn_threshold takes integer inputs (a BIPOLAR input is already binary)")
    lo, hi = dtype_range(in_dtype)
    t = clip_thresholds(thresholds, lo, hi)
    t_w = threshold_width(t)
    return {"C": channels, "E": elems, "IN_EW": elem_width(in_dtype), "IN_SIGNED": int(is_signed(in_dtype)),
            "N_THRES": int(t.shape[1]), "T_W": t_w,
            **_thres_file(mem_dir, name, t, channels, elems, t_w, search),
            "DIR_FILE": str(write_direction_mem(mem_dir / f"{name}_d.mem", direction, channels, elems).resolve()),
            **_out_params(out_dtype, t, y_min)}
