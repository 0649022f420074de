"""Summarise training runs: ``python -m ampnet.summarize outputs/`` (or a multirun folder).

Finds every ``metrics.json`` below the folder and prints a table sorted by test ESR
(validation ESR where there is no test region), then writes ``summary.md``,
``summary.csv`` and a bar chart ``summary.png`` into the folder.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path

from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from ampnet.atomic import atomic_output
from ampnet.errors import AmpnetError, exit_on_user_error

COLUMNS = [
    ("run", "run"),
    ("data", "data_name"),
    ("model", "model_name"),
    ("parameters", "parameters"),
    ("receptive field", "receptive_field"),
    ("val ESR", "val_esr"),
    ("test ESR", "test_esr"),
    ("epochs", "epochs"),
    ("train s", "train_seconds"),
    ("overrides", "overrides"),
]


def collect(folder: Path) -> list[dict]:
    """One row per run below ``folder``, best first."""
    rows = []
    for path in sorted(folder.rglob("metrics.json")):
        try:
            metrics = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        if not isinstance(metrics, dict) or "val_esr" not in metrics:
            continue
        rows.append({**metrics, "run": str(path.parent.relative_to(folder)) or "."})

    # show only what differs between the runs (the swept values), not what they share
    tokens = [str(r.get("overrides") or "").split() for r in rows]
    shared = set.intersection(*map(set, tokens)) if len(tokens) > 1 else set()
    for row, mine in zip(rows, tokens, strict=True):
        row["overrides"] = " ".join(t for t in mine if t not in shared)

    def score(row):
        value = row.get("test_esr") if row.get("test_esr") is not None else row.get("val_esr")
        return math.inf if value is None else value

    return sorted(rows, key=score)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def markdown(rows: list[dict]) -> str:
    head = "| " + " | ".join(name for name, _ in COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join(
        "| " + " | ".join(_cell(r.get(k)) for _, k in COLUMNS) + " |\n" for r in rows
    )


def bar_chart(rows: list[dict], path: Path) -> None:
    labels = [f"{r.get('data_name')} / {r.get('model_name')}\n{r['run']}" for r in rows]
    fig = Figure(figsize=(10, 1.0 + 0.45 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    y = range(len(rows))
    val = [r.get("val_esr") or 0 for r in rows]
    test = [r.get("test_esr") or 0 for r in rows]
    ax.barh([i + 0.2 for i in y], val, height=0.4, label="validation ESR", color="tab:blue")
    ax.barh([i - 0.2 for i in y], test, height=0.4, label="test ESR", color="tab:orange")
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ESR (log scale, lower is better)")
    ax.set_title("Runs by test ESR")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def summarize(folder: str | Path, write: bool = True) -> list[dict]:
    folder = Path(folder)
    if not folder.is_dir():
        raise AmpnetError(f"{folder}: no such folder; pass outputs/ or a multirun folder")
    rows = collect(folder)
    if not rows:
        raise AmpnetError(f"{folder}: no runs with a metrics.json below it; train one first")
    if write:
        with atomic_output(folder / "summary.md") as tmp:
            tmp.write_text(markdown(rows))
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([name for name, _ in COLUMNS])
        writer.writerows([[r.get(k) for _, k in COLUMNS] for r in rows])
        with atomic_output(folder / "summary.csv") as tmp:
            tmp.write_text(buffer.getvalue())
        bar_chart(rows, folder / "summary.png")
    return rows


def print_table(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for name, _ in COLUMNS:
        table.add_column(name, justify="left" if name in ("run", "data", "model") else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(k)) for _, k in COLUMNS))
    Console(width=160).print(table)


def print_run(metrics: dict) -> None:
    """The lines a finished training run ends with: its ESRs and where its files are."""

    def fmt(value):
        return "n/a" if value is None else f"{value:.5f}"

    run_dir = Path(metrics["run_dir"])
    unseen = metrics.get("unseen_esr")
    unseen = "" if unseen is None else f"   unseen playing (data.unseen) ESR {fmt(unseen)}"
    print(
        f"\nampnet: trained {metrics['model_name']} on {metrics['data_name']} in "
        f"{metrics['train_seconds']:.0f} s ({metrics['epochs']} epochs)\n"
        f"  validation ESR {fmt(metrics['val_esr'])}   test ESR {fmt(metrics['test_esr'])}{unseen}\n"
        f"  model:   {metrics['best_checkpoint']}\n"
        f"  metrics: {run_dir / 'metrics.json'}\n"
        f"  report:  {run_dir / 'report.html'}",
        flush=True,
    )


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ampnet.summarize", description=__doc__.splitlines()[0]
    )
    parser.add_argument("folder", nargs="?", default="outputs")
    args = parser.parse_args(argv)
    rows = summarize(args.folder)
    print_table(rows, f"{len(rows)} runs in {args.folder}, best first")
    print(f"ampnet: wrote {Path(args.folder) / 'summary.md'}, summary.csv and summary.png")


if __name__ == "__main__":
    main()
