"""Progress of a long run on the terminal: numbered stage headers with the elapsed time, each
stage's wall and CPU seconds, and a live elapsed-time bar (tqdm) around calls that print nothing
while they work (Verilator, Yosys)."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time


def fmt_s(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{seconds:.1f} s"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (Verilator's compiler, Yosys)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Progress:
    """Numbered stage headers with the elapsed time, and each stage's wall and CPU seconds (on a
    shared machine the two differ: the CPU seconds are what the stage costs)."""

    def __init__(self, total: int):
        self.total, self.i, self.t0, self.cpu0 = total, 0, time.perf_counter(), cpu_seconds()
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    @contextlib.contextmanager
    def stage(self, key: str, title: str):
        self.i += 1
        print(f"\n[{self.i}/{self.total}] {title}   (elapsed {fmt_s(self.elapsed())})", flush=True)
        t, c = time.perf_counter(), cpu_seconds()
        yield
        self.seconds[key] = round(time.perf_counter() - t, 1)
        self.cpu[key] = round(cpu_seconds() - c, 1)
        print(f"[{self.i}/{self.total}] {key}: done in {fmt_s(self.seconds[key])} "
              f"(CPU {fmt_s(self.cpu[key])})", flush=True)


@contextlib.contextmanager
def ticking(desc: str):
    """A live elapsed-time bar around a long call with no progress of its own (Verilator, Yosys);
    what the call prints is held back and shown after the bar."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, bar_format="{desc}: {elapsed} elapsed", disable=None, file=sys.stderr)
    stop = threading.Event()

    def tick():
        while not stop.wait(1.0):
            bar.refresh()

    th = threading.Thread(target=tick, daemon=True)
    th.start()
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        stop.set()
        th.join()
        bar.close()
        sys.stdout.write(buf.getvalue())
        sys.stdout.flush()
