"""The sweep's processes: the teacher stage, then every variant at once, each a
`python -m model.train … --no-progress` process in its own process group, stopped at the deadline.

The deadline counts from the command's start. At `deadline_s - grace_s - RESERVE_S` every run still
going gets SIGTERM to its process group, then SIGKILL `grace_s` later; the teacher stage stops the same
way at `teacher.max_s`, and a teacher stopped after at least one epoch still serves as the teacher. The
trainer saves with a temp file and a rename (model/atomic.py), so a stopped run keeps its last
checkpointed epoch; a kill during a save can leave the temp file, which the runner removes. SIGTERM to
the sweep itself stops the runs the same way. The summary is rewritten after every run's end.
"""
from __future__ import annotations

import datetime
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

from .report import is_finite, markdown, percent, progress, read_metrics, row_of, status_of, summary_of, write_summary
from .spec import LOG, RESERVE_S, Stage, Sweep

POLL_S = 0.25
HEARTBEAT_S = 60.0
PROBE = ("import os, torch; print(torch.__version__); "
         "print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else f'cpu ({os.cpu_count()} cores)')")


class Runner:
    """Runs a validated sweep to its deadline and keeps its summary up to date."""

    def __init__(self, sweep: Sweep, t0: float, command: str, python: str = sys.executable):
        self.sweep, self.t0, self.command, self.python = sweep, t0, command, python
        self.stop_at = t0 + sweep.deadline_s - sweep.grace_s - RESERVE_S
        self.date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        self.probe: subprocess.Popen | None = None
        self.device = self.torch = "unknown"
        self.last_beat = t0

    # -- output
    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.0f} s] {text}", flush=True)

    def read_probe(self, wait_s: float) -> None:
        if self.probe is None:
            return
        try:
            out, _ = self.probe.communicate(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return
        lines = out.decode(errors="replace").split("\n") if out else []
        if len(lines) >= 2 and lines[0].strip():
            self.torch, self.device = lines[0].strip(), lines[1].strip()
        self.probe = None

    def summary(self, complete: bool) -> dict:
        self.read_probe(3.0 if complete else 0.0)
        return summary_of(self.sweep, command=self.command, device=self.device, torch=self.torch, date=self.date,
                          wall_s=round(time.monotonic() - self.t0, 1), complete=complete)

    def write(self, complete: bool) -> dict:
        summary = self.summary(complete)
        write_summary(self.sweep.out, summary)
        return summary

    # -- processes
    def launch(self, stage: Stage, threads: int | None = None) -> None:
        stage.out.mkdir(parents=True, exist_ok=True)
        cmd = stage.command(self.python)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if threads is not None and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(threads)  # K processes share the CPU cores too
        with open(stage.out / LOG, "a" if stage.resume else "w") as log:
            log.write(f"$ {shlex.join(cmd)}\n")
            log.flush()
            stage.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, start_new_session=True,  # its own process group
                                          preexec_fn=_die_with_parent())
        stage.started = time.monotonic()
        self.say(f"{stage.name}: started{' (resuming)' if stage.resume else ''}, {stage.epochs} epochs, "
                 f"log {stage.out / LOG}")
        from .. import checkpoint  # noqa: F401  torch, to read the runs' checkpoints: imported while they start

    def reap(self, stage: Stage) -> bool:
        """Record the exit of a stage's process; True once it has ended."""
        if stage.returncode is None and stage.proc is not None:
            rc = stage.proc.poll()
            if rc is None:
                return False
            stage.returncode, stage.ended = rc, time.monotonic()
            if stage.stopped:
                for tmp in stage.out.glob(".*.tmp"):  # a kill during an atomic save leaves its temp file
                    tmp.unlink(missing_ok=True)
            r = row_of(stage, "run")
            val = f", last val {percent(r['last_val_acc'])}" if r["last_val_acc"] is not None else ""
            done = f", {r['epochs_done']}/{r['epochs']} epochs" if r["state"] == "finished" else ""
            self.say(f"{stage.name}: {r['status']}{done}{val}")
            self.write(complete=False)
        return True

    @staticmethod
    def _signal(stage: Stage, sig: int) -> None:
        try:
            os.killpg(stage.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, stages: list[Stage], grace_s: float) -> None:
        """SIGTERM to each run's process group, `grace_s` seconds, then SIGKILL."""
        live = [s for s in stages if s.running]
        if not live:
            return
        for s in live:
            s.stopped = True
            self._signal(s, signal.SIGTERM)
        self.say(f"stopping {', '.join(s.name for s in live)} (SIGTERM, then SIGKILL after {grace_s:g} s)")
        end = time.monotonic() + grace_s
        while any(s.proc.poll() is None for s in live) and time.monotonic() < end:
            time.sleep(0.05)
        for s in live:
            if s.proc.poll() is None:
                self._signal(s, signal.SIGKILL)
            s.proc.wait()
            self._signal(s, signal.SIGKILL)  # anything the run itself started (compile workers)
            self.reap(s)

    def heartbeat(self, stages: list[Stage]) -> None:
        now = time.monotonic()
        if now - self.last_beat < HEARTBEAT_S:
            return
        self.last_beat = now
        parts = []
        for s in stages:
            if s.running:
                rows = read_metrics(s.out / "metrics.jsonl")
                last = rows[-1] if rows else None
                val = f" val {100 * last['val_acc']:.2f} %" if last and is_finite(last.get("val_acc")) else ""
                parts.append(f"{s.name} epoch {last['epoch'] if last else 0}/{s.epochs}{val}")
        if parts:
            self.say("; ".join(parts))

    def wait(self, stages: list[Stage], until: float) -> None:
        """Until every stage has ended, or `until`; then stop what still runs."""
        while True:
            if all([self.reap(s) for s in stages]):
                return
            if time.monotonic() >= until:
                self.stop(stages, self.sweep.grace_s)
                return
            self.heartbeat(stages)
            time.sleep(POLL_S)

    # -- the stages
    def run_teacher(self) -> str | None:
        """None when the students can start, else why not."""
        t = self.sweep.teacher
        if t is None:
            return None
        if t.given is not None or t.reused:
            self.say(f"teacher: {status_of(t, t.epochs)[1]}, {t.checkpoint}")
            return None
        self.launch(t)
        until = self.stop_at if t.max_s is None else min(self.stop_at, t.started + t.max_s)
        self.wait([t], until)
        done, _ = progress(t)
        if t.returncode == 0 and done >= t.epochs:
            return None
        if t.stopped and done >= 1 and time.monotonic() < self.stop_at:
            self.say(f"teacher: stopped at epoch {done} of {t.epochs} (teacher.max_s {t.max_s:g} s); "
                     f"the students distill from that checkpoint")
            return None
        if t.stopped:
            return "the deadline came during the teacher stage" if time.monotonic() >= self.stop_at else \
                f"the teacher had no checkpoint after teacher.max_s {t.max_s:g} s"
        return "the teacher failed"

    def run(self) -> int:
        s = self.sweep
        s.out.mkdir(parents=True, exist_ok=True)
        self.probe = subprocess.Popen([self.python, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      stdin=subprocess.DEVNULL)
        self.say(f"sweep {s.name}: {len(s.variants)} variants, deadline {s.deadline_s:g} s "
                 f"(runs stopped from {self.stop_at - self.t0:.0f} s on), out {s.out}")
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main_thread else None

        def on_sigterm(signum, frame):
            raise KeyboardInterrupt

        if main_thread:
            signal.signal(signal.SIGTERM, on_sigterm)
        try:
            self.write(complete=False)
            why = self.run_teacher()
            pending = [v for v in s.variants if not v.reused]
            if why is not None:
                for v in pending:
                    v.not_started = why
            elif pending:
                if time.monotonic() >= self.stop_at:
                    for v in pending:
                        v.not_started = "the deadline came before the variants"
                else:
                    threads = max(1, (os.cpu_count() or 1) // len(pending))
                    for v in pending:
                        self.launch(v, threads)
                    self.wait(pending, self.stop_at)
        except KeyboardInterrupt:
            self.say("interrupted: stopping the runs")
            everything = ([s.teacher] if s.teacher is not None else []) + s.variants
            self.stop(everything, min(s.grace_s, 5.0))
            for v in everything:
                if v.proc is None and not v.reused and v.given is None:
                    v.not_started = "interrupted"
            self.write(complete=True)
            raise
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
            if self.probe is not None and self.probe.poll() is None:
                self.probe.kill()
                self.probe.wait()
        summary = self.write(complete=True)
        print("\n" + markdown(summary), flush=True)
        print(f"wrote {s.out / 'sweep.md'} and {s.out / 'sweep.json'}", flush=True)
        if any(r["epochs_done"] >= 1 for r in summary["variants"]):
            return 0
        t = summary["teacher"]
        reason = why if why is not None else "no variant completed an epoch"
        if why == "the teacher failed" and t is not None:
            reason += f" ({t['status']})"
        print(f"error: no variant produced metrics: {reason}; see {s.out / 'sweep.md'}", file=sys.stderr)
        return 1



def _die_with_parent():
    """A preexec_fn that has the kernel SIGTERM the run when the sweep dies (Linux), so that runs in
    their own process groups do not outlive a sweep that was killed outright."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
