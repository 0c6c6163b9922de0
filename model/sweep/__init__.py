"""Train K student variants side by side on one GPU, against one teacher trained once, to a deadline.

    python -m model.sweep --sweep configs/sweeps/recipe-1.yaml --data DATA --out runs/sweep [--deadline-s S]

One small binary net leaves a large GPU mostly idle, so a sweep runs its variants as concurrent
`python -m model.train … --no-progress` processes on the one device:

1. It validates everything before it launches anything: the sweep file, and every stage's config
   (spec.py; the file's format is in its docstring).
2. It trains the teacher into OUT/teacher (reused when complete, resumed when not), or uses a teacher
   checkpoint named in the sweep file as it is.
3. It launches all variants at once, each into OUT/<variant>/ with its own log (train.log).
4. At the deadline, counted from the command's start, it stops what still runs: SIGTERM to the run's
   process group, `grace_s` seconds, then SIGKILL (runner.py). A stopped run keeps its last
   checkpointed epoch.
5. It writes OUT/sweep.md and OUT/sweep.json atomically after every run's end and at the finish, and
   prints the table (report.py).

The command line is __main__.py. A stopped variant's cosine schedule is cut short, so its accuracy is
not that of a shorter complete run: size the variants' epochs to fit, and treat the deadline as a
safety net.
"""
from .report import checkpoint_epoch, markdown, progress, read_metrics, row_of, status_of, summary_of, write_summary
from .runner import Runner
from .spec import CHECKPOINT, LOG, RESERVE_S, Stage, Sweep, load_sweep, resolve, yaml_value

__all__ = ["CHECKPOINT", "LOG", "RESERVE_S", "Runner", "Stage", "Sweep", "checkpoint_epoch", "load_sweep", "main",
           "markdown", "progress", "read_metrics", "resolve", "row_of", "status_of", "summary_of", "write_summary",
           "yaml_value"]


def __getattr__(name: str):
    # `main` is imported on first use: importing __main__ here would have `python -m model.sweep` find it
    # imported already, and runpy then warns on stderr, where a bad input's one `error:` line goes
    if name == "main":
        from .__main__ import main
        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
