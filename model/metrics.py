"""Per-epoch metrics as JSONL and CSV, and a PNG of the curves (rank 0 only)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .atomic import atomic_write, atomic_write_text


class MetricsLog:
    def __init__(self, out_dir: str | Path):
        self.dir = Path(out_dir)
        self.rows: list[dict] = []

    def truncate(self, epochs: int) -> None:
        """Keep the first `epochs` rows of an existing log (resume) and rewrite the files."""
        path = self.dir / "metrics.jsonl"
        rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
        self.rows = [r for r in rows if r["epoch"] <= epochs]
        if self.rows or path.exists():
            self._write()

    def append(self, row: dict, write: bool = True) -> None:
        """Add an epoch's row; `write=False` keeps it in memory until the next written one
        (epochs between evaluations: the files then always match the last checkpoint)."""
        self.rows.append(row)
        if write:
            self._write()

    def _write(self) -> None:
        atomic_write_text(self.dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.rows))
        if self.rows:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(self.rows[0]))
            w.writeheader()
            w.writerows(self.rows)
            atomic_write_text(self.dir / "metrics.csv", buf.getvalue())
            plot_curves(self.rows, self.dir / "curves.png")


def plot_curves(rows: list[dict], path: Path, title: str | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in rows]
    # epochs without an evaluation have val_* = None: plotted as gaps, markers where evaluated
    val = [r for r in rows if r.get("val_acc") is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ep, [r["train_loss"] for r in rows], "o-", label="train")
    ax1.plot([r["epoch"] for r in val], [r["val_loss"] for r in val], "s-", label="validation")
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax2.plot(ep, [100 * r["train_acc"] for r in rows], "o-", label="train")
    ax2.plot([r["epoch"] for r in val], [100 * r["val_acc"] for r in val], "s-", label="validation")
    ax2.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="accuracy")
    switch = [r["epoch"] for a, r in zip(rows, rows[1:]) if a.get("phase") == 1 and r.get("phase") == 2]
    from matplotlib.ticker import MaxNLocator
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for e in switch:
            ax.axvline(e - 0.5, color="grey", ls="--", lw=1, label="binary activations from here")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or f"training curves ({path.parent.name})")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
