"""Experiment loggers that need more than a config line."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter as _LightningCSVWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


def wandb_logged_in() -> bool:
    """True when W&B credentials are present (an API key in the environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def sweep_name() -> str | None:
    """The multirun's folder name (its date and time) when running inside a Hydra sweep."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


def wandb_logger(
    save_dir: str,
    name: str | None = None,
    project: str = "ampnet",
    group: str | None = None,
    tags: Sequence[str] = (),
    mode: str | None = None,
):
    """Lightning's WandbLogger, offline unless the user is logged in or ``mode``/``WANDB_MODE`` says
    otherwise. Runs of one multirun share a group named after the sweep."""
    mode = mode or os.environ.get("WANDB_MODE") or ("online" if wandb_logged_in() else "offline")
    group = group or sweep_name()
    return WandbLogger(
        project=project,
        name=name,
        save_dir=save_dir,
        group=group,
        tags=list(tags),
        offline=mode == "offline",
        mode=mode,
    )


class _KeepingWriter(_LightningCSVWriter):
    """Lightning's CSV writer, except that rows already in metrics.csv are kept and new ones
    appended (Lightning deletes the file when a run is resumed into the same folder)."""

    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = list(next(csv.reader(f), []))


class CSVLogger(_LightningCSVLogger):
    """``metrics.csv`` in the run folder; a resumed run continues the same file."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _KeepingWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment
