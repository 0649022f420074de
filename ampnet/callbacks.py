"""Lightning callbacks: listening to and looking at the model while it trains."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ampnet.atomic import atomic_output
from ampnet.report.figures import comparison_figure
from ampnet.report.metrics import compare_signals


def loudest_window(target: np.ndarray, length: int) -> int:
    """Start of the ``length``-sample window of ``target`` with the most energy."""
    if len(target) <= length:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(np.asarray(target, np.float64) ** 2)])
    return int(np.argmax(energy[length:] - energy[:-length]))


def figure_pixels(figure) -> np.ndarray:
    """A figure rendered to an (height, width, 3) uint8 image."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class AudioExamples(L.Callback):
    """Every ``every_n_epochs`` validations, log a few seconds of target and prediction
    audio and the comparison figure to TensorBoard and W&B (other loggers skip them)."""

    def __init__(self, every_n_epochs: int = 10, seconds: float = 5.0):
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.seconds = float(seconds)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or "val" not in pl_module.examples:
            return
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs and epoch + 1 != trainer.max_epochs:
            return
        rate = int(pl_module.hparams["sample_rate"])  # train() always stores it
        _, target, prediction = (t.numpy() for t in pl_module.examples["val"])
        length = int(self.seconds * rate)
        start = loudest_window(target, length)
        target, prediction = target[start : start + length], prediction[start : start + length]
        metrics = compare_signals(target, prediction, rate)
        image = figure_pixels(
            comparison_figure(target, prediction, rate, metrics, f"validation, epoch {epoch}")
        )
        step = trainer.global_step
        # a hot amp's output can run past full scale, which TensorBoard clips with a warning
        # each time: scale both by the same factor instead, so they stay comparable
        peak = max(1.0, float(np.abs(target).max()), float(np.abs(prediction).max()))
        target, prediction = target / peak, prediction / peak
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                board = logger.experiment
                board.add_audio(
                    "val/target", torch.from_numpy(target)[None], step, sample_rate=rate
                )
                board.add_audio(
                    "val/prediction", torch.from_numpy(prediction)[None], step, sample_rate=rate
                )
                board.add_image("val/comparison", image, step, dataformats="HWC")
            elif isinstance(logger, WandbLogger):
                logger.log_audio(
                    key="val/audio",
                    audios=[target, prediction],
                    sample_rate=[rate, rate],
                    caption=["target", "prediction"],
                    step=step,
                )
                logger.log_image(key="val/comparison", images=[image], step=step)


class BestPerSize(L.Callback):
    """For a model trained at several sizes at once (``val/esr_0``, ``val/esr_1``, ... logged):
    ``checkpoints/best_size<i>.ckpt`` holds the weights at which size ``i`` validated best, as
    NAM's packed trainer keeps a best checkpoint per size. Other models log no such metric."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.best: dict[int, float] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        for key, value in trainer.callback_metrics.items():
            if not key.startswith("val/esr_"):
                continue
            size, value = int(key.rsplit("_", 1)[1]), float(value)
            if value < self.best.get(size, float("inf")):
                self.best[size] = value
                trainer.save_checkpoint(self.dirpath / f"best_size{size}.ckpt", weights_only=False)

    def state_dict(self) -> dict:
        return {"best": dict(self.best)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = {int(k): float(v) for k, v in state_dict.get("best", {}).items()}


class TimedSnapshots(L.Callback):
    """Every ``every_n_epochs`` epochs (and after the last), the weights and the wall-clock time
    they were reached: ``<dirpath>/epoch<NNNN>.ckpt`` (weights only, readable like best.ckpt)
    and a line in ``<dirpath>/snapshots.json``. For plots of accuracy against training time
    (``scripts/bench_capture.py``); add with ``+callbacks.snapshots._target_=...``."""

    def __init__(self, dirpath: str, every_n_epochs: int = 5):
        self.dirpath = Path(dirpath)
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.taken: list[dict] = []
        self.overhead = 0.0  # seconds spent taking snapshots, for a benchmark to take off

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1  # epochs done
        if epoch % self.every_n_epochs and epoch != trainer.max_epochs:
            return
        reached = time.time()
        path = self.dirpath / f"epoch{epoch:04d}.ckpt"
        trainer.save_checkpoint(path, weights_only=True)
        self.overhead += time.time() - reached
        self.taken.append(
            {
                "epoch": epoch,
                "step": trainer.global_step,
                "time": reached,
                "overhead_s": self.overhead,
                "path": str(path),
            }  # fmt: skip
        )
        if trainer.is_global_zero:
            with atomic_output(self.dirpath / "snapshots.json") as tmp:
                tmp.write_text(json.dumps(self.taken, indent=1) + "\n")
