"""Hydra hooks for sweeps: a summary table when a multirun (grid or Optuna) ends.

Registered in ``conf/train.yaml`` under ``hydra.callbacks``; reuses :mod:`ampnet.summarize`.
"""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ampnet.errors import AmpnetError
from ampnet.summarize import print_table, summarize


class SweepSummary(Callback):
    """Print the runs of the sweep, best first, and write summary.md/.csv/.png beside them."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        folder = Path(config.hydra.sweep.dir)
        try:
            rows = summarize(folder)
        except AmpnetError as err:
            print(f"ampnet: no sweep summary: {err}", flush=True)
            return
        print_table(rows, f"sweep {folder}: {len(rows)} runs, best first")
        print(f"ampnet: wrote {folder / 'summary.md'}, summary.csv and summary.png", flush=True)
