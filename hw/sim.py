"""Cycle-accurate AXI-Stream simulation of an RTL module with Verilator.

``build`` compiles a module with a generated C++ testbench (template ``hw/sim/tb_main.cpp.in``)
and caches the binary; ``Simulator.run`` feeds beats into the input streams with seeded random
``tvalid`` stalls, takes the output streams with seeded random ``tready`` stalls and returns the
beats and the cycle of every transfer::

    sim = build(top="bnn_addsat", sources=[Path("hw/rtl/bnn_addsat.sv")],
                params={"E": 4, "IN_EW": 4}, inputs=[Port("s0_axis", 16), Port("s1_axis", 16)],
                outputs=[Port("m_axis", 16)])
    res = sim.run(inputs={"s0_axis": [...], "s1_axis": [...]}, expect={"m_axis": 8},
                  in_stall=0.3, out_stall=0.3, seed=1)
    res.outputs["m_axis"], res.in_cycles["s0_axis"], res.out_cycles["m_axis"], res.cycles

The testbench holds ``rst`` high for 4 cycles (registers start random, so reset bugs show), then
counts cycles from 0. It stops once every input beat was accepted and every expected output beat
arrived, then keeps ``tready`` high for ``drain`` more cycles: any further output beat is an error.
It also checks the AXI-Stream rule on every output (``tvalid``/``tdata`` stable while
``tvalid && !tready``), and reports a deadlock when no beat moves for ``max_idle`` cycles.

A port with ``count=N`` is N independent streams on packed vectors (``<p>_tvalid[N-1:0]``,
``<p>_tready[N-1:0]``, ``<p>_tdata[N*W-1:0]``); its streams are named ``"<p>[0]"`` ... in
``inputs``/``expect``/results (``expect`` also accepts ``"<p>"`` for all of them).

Binaries are cached in ``$BNN_CACHE_DIR/verilator`` (default ``~/.cache/bnn-flow/verilator``),
keyed by a hash of the sources' names and contents, parameters, ports, template and Verilator version; builds go to a
temporary directory that is renamed into place, so parallel test workers do not collide.
``_build_binary`` (template, substitutions, cache, lock) is shared with the bit-level UART testbench
(``hw/uart_sim.py``, template ``hw/sim/tb_uart.cpp.in``).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from model.errors import FlowError

_TEMPLATE_DIR = Path(__file__).parent / "sim"
_TEMPLATE_VERSION = "1"


class SimError(FlowError):
    """The RTL failed to build, deadlocked, broke the stream protocol or produced extra beats."""


@dataclass(frozen=True)
class Port:
    """An AXI-Stream port: signal prefix (``s_axis`` -> ``s_axis_tdata`` ...), tdata bits per stream,
    and ``count`` streams packed into vectors."""
    name: str
    width: int
    count: int = 1

    def streams(self) -> list[str]:
        return [self.name] if self.count == 1 else [f"{self.name}[{k}]" for k in range(self.count)]


@dataclass
class SimResult:
    outputs: dict[str, list[int]]
    in_cycles: dict[str, list[int]]
    out_cycles: dict[str, list[int]]
    cycles: int


def cache_dir() -> Path:
    root = os.environ.get("BNN_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "bnn-flow"
    return base / "verilator"


def _param_arg(name: str, value) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return f"-G{name}={value}"
    if isinstance(value, str):
        if '"' in value or "\\" in value:
            raise ValueError(f"parameter {name}: string value {value!r} may not contain quotes or backslashes")
        return f'-G{name}="{value}"'
    raise TypeError(f"parameter {name}: {type(value).__name__} is not int or str")


def _stream_code(port: Port, direction: str) -> str:
    """C++ that appends the streams of one port to `ins`/`outs`."""
    w, nw, p = port.width, (port.width + 31) // 32, port.name
    lines = []
    for k, sname in enumerate(port.streams()):
        lo = k * w
        if direction == "in":
            lines.append(f"""    {{
        InStream s;
        s.name = "{sname}"; s.w = {w}; s.nw = {nw};
        s.set_data = [&top](const uint32_t* d) {{ tb::put_slice(top->{p}_tdata, {lo}, {w}, d); }};
        s.set_valid = [&top](bool v) {{ tb::put_bit(top->{p}_tvalid, {k}, v); }};
        s.get_ready = [&top]() {{ return tb::get_bit(top->{p}_tready, {k}); }};
        ins.push_back(std::move(s));
    }}""")
        else:
            lines.append(f"""    {{
        OutStream s;
        s.name = "{sname}"; s.w = {w}; s.nw = {nw};
        s.get_data = [&top](uint32_t* d) {{ tb::get_slice(top->{p}_tdata, {lo}, {w}, d); }};
        s.get_valid = [&top]() {{ return tb::get_bit(top->{p}_tvalid, {k}); }};
        s.set_ready = [&top](bool r) {{ tb::put_bit(top->{p}_tready, {k}, r); }};
        outs.push_back(std::move(s));
    }}""")
    return "\n".join(lines)


def _verilator_version() -> str:
    try:
        return subprocess.run(["verilator", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SimError(f"verilator is not available: {exc}") from exc


_VERSION_CACHE: list[str] = []


def _check(top: str, proc: subprocess.CompletedProcess, product: Path) -> None:
    if proc.returncode != 0 or not product.is_file():
        text = (proc.stderr + "\n" + proc.stdout).splitlines()
        errs = [ln for ln in text if "%Error" in ln or "error:" in ln]
        shown = "\n".join((errs or [ln for ln in text if ln.strip()])[:12])
        raise SimError(f"{top}: verilator build failed:\n{shown}")


def _global_objs(obj: Path, top: str) -> list[str]:
    """The Verilator runtime objects (verilated.o, ...) the generated makefile links."""
    names, grab = [], False
    for line in (obj / f"V{top}_classes.mk").read_text().splitlines():
        if line.startswith("VM_GLOBAL_"):
            grab = True
            continue
        if grab:
            name = line.strip().rstrip("\\").strip()
            if name:
                names.append(name + ".o")
            if not line.rstrip().endswith("\\"):
                grab = False
    return sorted(names)


def _reuse_runtime(root: Path, obj: Path, top: str, extra_args) -> tuple[Path, list[str]]:
    """Copy cached Verilator runtime objects into `obj` (newer than its makefiles, so make keeps
    them): every build would otherwise compile verilated.cpp again, most of a small build's time."""
    names = _global_objs(obj, top)
    key = hashlib.sha256(repr((_VERSION_CACHE[0], names, list(extra_args))).encode()).hexdigest()[:16]
    cached = root / f"runtime-{key}"
    if all((cached / n).is_file() for n in names):
        for n in names:
            shutil.copy(cached / n, obj / n)
    return cached, names


def _save_runtime(runtime: tuple[Path, list[str]], obj: Path) -> None:
    cached, names = runtime
    if cached.exists() or not all((obj / n).is_file() for n in names):
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{cached.name}-", dir=cached.parent))
    for n in names:
        shutil.copy(obj / n, tmp / n)
    try:
        os.rename(tmp, cached)
    except OSError:  # saved by a parallel build
        shutil.rmtree(tmp, ignore_errors=True)


class Simulator:
    """A compiled testbench; `run` may be called any number of times."""

    def __init__(self, binary: Path, top: str, inputs: list[Port], outputs: list[Port]):
        self.binary, self.top = binary, top
        self.inputs, self.outputs = list(inputs), list(outputs)
        self._in_streams = [(s, p.width) for p in self.inputs for s in p.streams()]
        self._out_streams = [(s, p.width) for p in self.outputs for s in p.streams()]

    def run(self, inputs: dict[str, list[int]], expect: dict[str, int], in_stall: float = 0.0,
            out_stall: float = 0.0, seed: int = 1, max_idle: int = 10000, max_cycles: int = 0,
            drain: int = 64) -> SimResult:
        """Simulate until all inputs are accepted and `expect[port]` beats left every output."""
        names = {s for s, _ in self._in_streams}
        unknown = set(inputs) - names
        if unknown:
            raise ValueError(f"{self.top}: unknown input streams {sorted(unknown)} (ports: {sorted(names)})")
        counts = []
        for s, _ in self._out_streams:
            base = s.split("[")[0]
            if s in expect:
                counts.append(int(expect[s]))
            elif base in expect:
                counts.append(int(expect[base]))
            else:
                raise ValueError(f"{self.top}: expect has no beat count for output {s}")
        out_names = {s for s, _ in self._out_streams} | {p.name for p in self.outputs}
        if set(expect) - out_names:
            raise ValueError(f"{self.top}: unknown output streams {sorted(set(expect) - out_names)}")
        for p in (in_stall, out_stall):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"stall probability {p} is not in [0, 1)")
        with tempfile.TemporaryDirectory(prefix="bnn-sim-") as tmp:
            for k, (s, w) in enumerate(self._in_streams):
                beats = inputs.get(s, [])
                lines = []
                for i, b in enumerate(beats):
                    b = int(b)
                    if b < 0 or b >> w:
                        raise ValueError(f"{self.top}: input {s} beat {i} = {b} does not fit {w} unsigned bits")
                    lines.append(format(b, "x"))
                Path(tmp, f"in{k}.hex").write_text("\n".join(lines) + ("\n" if lines else ""))
            cmd = [str(self.binary), tmp, repr(float(in_stall)), repr(float(out_stall)), str(int(seed)),
                   str(int(max_idle)), str(int(max_cycles)), str(int(drain))] + [str(c) for c in counts]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                err = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}")
                raise SimError(f"{self.top}: simulation failed: {err}")
            in_cycles = {s: [int(x) for x in Path(tmp, f"in{k}.cyc").read_text().split()]
                         for k, (s, _) in enumerate(self._in_streams)}
            outputs, out_cycles = {}, {}
            for k, (s, _) in enumerate(self._out_streams):
                vals, cyc = [], []
                for line in Path(tmp, f"out{k}.txt").read_text().splitlines():
                    h, c = line.split()
                    vals.append(int(h, 16))
                    cyc.append(int(c))
                outputs[s], out_cycles[s] = vals, cyc
            cycles = int(Path(tmp, "summary.txt").read_text().split()[1])
        return SimResult(outputs=outputs, in_cycles=in_cycles, out_cycles=out_cycles, cycles=cycles)


def _compile(top, root, final, sources, pargs, extra_args, main_name, main) -> None:
    """Write the generated testbench `main`, verilate and compile it in a temporary directory, then
    rename the directory into place (atomic for concurrent readers)."""
    binary = final / "sim"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        (tmp / main_name).write_text(main)
        shutil.copy(_TEMPLATE_DIR / "tb_util.h", tmp / "tb_util.h")
        incdirs = sorted({f"-I{s.parent}" for s in sources})
        obj = tmp / "obj"
        cmd = ["verilator", "--cc", "--exe", "-O1", "--top-module", top, "-Wno-fatal", "-Wno-lint",
               "-Wno-style", "--Mdir", str(obj), "-o", str(tmp / "sim"), "-CFLAGS", f"-O1 -I{tmp}",
               *incdirs, *pargs, *extra_args, str(tmp / main_name), *map(str, sources)]
        _check(top, subprocess.run(cmd, capture_output=True, text=True, cwd=tmp), tmp / f"obj/V{top}.mk")
        runtime = _reuse_runtime(root, obj, top, extra_args)
        make = ["make", "-s", "-C", str(obj), "-f", f"V{top}.mk", "-j", "2"]
        _check(top, subprocess.run(make, capture_output=True, text=True), tmp / "sim")
        _save_runtime(runtime, obj)
        shutil.rmtree(tmp / "obj", ignore_errors=True)  # keep the binary only
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished the same build first (no flock)
            if not binary.is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _build_binary(top: str, sources, params: dict, template_name: str, substitutions: dict[str, str],
                  extra_args=(), key_parts=()) -> Path:
    """Compile (or fetch from the cache) module `top` with the testbench template
    `hw/sim/<template_name>`, its ``@TOP@`` and the `substitutions` replaced; returns the binary.
    The cache key covers the template's text and `key_parts` (what the substitutions derive from)."""
    sources = [Path(s).resolve() for s in sources]
    for s in sources:
        if not s.is_file():
            raise SimError(f"{top}: source file {s} does not exist")
    if not _VERSION_CACHE:
        _VERSION_CACHE.append(_verilator_version())
    template = (_TEMPLATE_DIR / template_name).read_text()
    util = (_TEMPLATE_DIR / "tb_util.h").read_text()
    pargs = [_param_arg(k, v) for k, v in sorted(dict(params or {}).items())]
    extra_args = list(extra_args)
    h = hashlib.sha256()
    for part in [_TEMPLATE_VERSION, _VERSION_CACHE[0], template, util, top, repr(pargs), repr(extra_args),
                 *key_parts]:
        h.update(part.encode())
        h.update(b"\0")
    for s in sources:
        h.update(s.name.encode() + b"\0" + s.read_bytes() + b"\0")  # content, not location
    key = f"{top}-{h.hexdigest()[:20]}"
    root = cache_dir()
    final = root / key
    binary = final / "sim"
    if not binary.is_file():
        root.mkdir(parents=True, exist_ok=True)
        # one build per key at a time: a parallel worker asking for the same simulator waits for it
        with open(root / f".{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not binary.is_file():
                main = template.replace("@TOP@", top)
                for name, text in substitutions.items():
                    main = main.replace(name, text)
                _compile(top, root, final, sources, pargs, extra_args, template_name.removesuffix(".in"), main)
    return binary


def build(top: str, sources, params: dict | None = None, inputs: list[Port] = (), outputs: list[Port] = (),
          extra_args: list[str] = ()) -> Simulator:
    """Compile (or fetch from the cache) a Verilator testbench for module `top`."""
    inputs, outputs = list(inputs), list(outputs)
    if not outputs:
        raise ValueError(f"{top}: a testbench needs at least one output port")
    streams = "\n".join([_stream_code(p, "in") for p in inputs] + [_stream_code(p, "out") for p in outputs])
    subs = {"@N_OUT@": str(sum(p.count for p in outputs)), "@STREAMS@": streams}
    ports = [repr([(p.name, p.width, p.count) for p in inputs]), repr([(p.name, p.width, p.count) for p in outputs])]
    binary = _build_binary(top, sources, params or {}, "tb_main.cpp.in", subs, extra_args, ports)
    return Simulator(binary, top, inputs, outputs)
