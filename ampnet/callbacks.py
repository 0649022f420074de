"""Lightning callbacks: listening to and looking at the model while it trains."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ampnet.atomic import atomic_output
from ampnet.report.figures import comparison_figure
from ampnet.report.metrics import compare_signals


def is_last_epoch(trainer: L.Trainer, epochs_done: int) -> bool:
    """Whether the epoch just finished (``epochs_done`` counted from 1) ends the training:
    ``trainer.max_epochs`` reached, or a ``trainer.max_steps`` that stops it mid-epoch."""
    if trainer.max_epochs is not None and epochs_done == trainer.max_epochs:
        return True
    return 0 < trainer.max_steps <= trainer.global_step


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


class DeferredInterrupt(L.Callback):
    """Ctrl+C during a one-process fit stops it at the next batch boundary.

    Python raises ``KeyboardInterrupt`` at whatever bytecode runs when SIGINT lands. Inside
    a finaliser (a ``__del__``, a weakref callback) it is printed and dropped and training
    goes on; between a lock's acquire and its ``with`` block it can leave the lock held for
    the loggers' shutdown to wait on. While ``installed`` the signal only sets a flag, and
    the next batch hook raises ``KeyboardInterrupt`` from a clean state, which Lightning
    shuts down from as from any Ctrl+C. A second Ctrl+C raises at once.
    """

    def __init__(self) -> None:
        self.pressed = False

    def handle(self, signum: int, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    @contextmanager
    def installed(self, enabled: bool = True) -> Iterator[None]:
        """The handler in place of Python's own for the block; left out when ``enabled`` is
        false (several processes: DDP keeps Python's) or SIGINT is not Python's default
        (ignored in a background job, or someone else's handler)."""
        if not enabled or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return
        signal.signal(signal.SIGINT, self.handle)
        try:
            yield
        finally:
            if signal.getsignal(signal.SIGINT) == self.handle:  # Lightning may have set SIG_IGN
                signal.signal(signal.SIGINT, signal.default_int_handler)

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.check()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.check()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:  # fmt: skip
        self.check()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.check()


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
        if (epoch + 1) % self.every_n_epochs and not is_last_epoch(trainer, epoch + 1):
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
    they were reached: ``<dirpath>/epoch<NNNN>.ckpt`` (readable like best.ckpt)
    and a line in ``<dirpath>/snapshots.json`` (``time``: the clock; ``seconds``: training
    time since the fit started, less the time spent writing snapshots). For plots of
    accuracy against training time (``scripts/bench_capture.py``,
    ``scripts/bench_architectures.py --every``); add with ``+callbacks.snapshots._target_=...``."""

    def __init__(self, dirpath: str, every_n_epochs: int = 5):
        self.dirpath = Path(dirpath)
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.taken: list[dict] = []
        self.overhead = 0.0  # seconds spent taking snapshots, for a benchmark to take off
        self.started: float | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1  # epochs done
        if epoch % self.every_n_epochs and not is_last_epoch(trainer, epoch):
            return
        reached = time.time()
        seconds = reached - (self.started if self.started is not None else reached) - self.overhead
        path = self.dirpath / f"epoch{epoch:04d}.ckpt"
        # a full checkpoint: callbacks that change the saved weights (EMA) take part
        trainer.save_checkpoint(path, weights_only=False)
        self.overhead += time.time() - reached
        self.taken.append(
            {
                "epoch": epoch,
                "step": trainer.global_step,
                "time": reached,
                "seconds": round(seconds, 3),
                "overhead_s": self.overhead,
                "path": str(path),
            }  # fmt: skip
        )
        if trainer.is_global_zero:
            with atomic_output(self.dirpath / "snapshots.json") as tmp:
                tmp.write_text(json.dumps(self.taken, indent=1) + "\n")


class EMA(WeightAveraging):
    """An exponential moving average of the weights, updated after every optimiser step:
    validation scores it, every checkpoint stores it as its ``state_dict`` (the live
    weights ride along as ``current_model_state`` for resuming) and training ends with it.

    At a high learning rate the live weights carry a lot of noise; averaging them over the
    last ~``1/(1 - decay)`` steps removes most of it, so a model stopped early, or a
    snapshot taken mid-schedule, is close to what the schedule would reach by decaying.
    As the learning rate decays, the schedule itself does that averaging and a long
    average only lags behind: so the horizon shrinks with the learning rate, ``(1 -
    decay)`` is divided by the rate's fraction of its peak so far, and at the end of a
    decayed schedule the average is the live weights. The decay also ramps up as ``(1 +
    n) / (10 + n)`` over the first updates (n = updates so far), so the average does not
    hold on to the initial weights."""

    def __init__(self, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.peak_lr = 0.0
        self.lr_fraction = 1.0  # the learning rate now over its peak so far
        # buffers (start states, loss filters) are copied, not averaged
        super().__init__(use_buffers=False, multi_avg_fn=self._average)

    def step_decay(self, n: int) -> float:
        """The decay of update ``n`` (0-based) at the current learning rate."""
        follow = 1.0 - min(1.0, (1.0 - self.decay) / max(self.lr_fraction, 1e-12))
        return min(follow, (1.0 + n) / (10.0 + n))

    def _average(self, averaged: list, current: list, n_averaged: torch.Tensor) -> None:
        torch._foreach_lerp_(averaged, current, 1.0 - self.step_decay(int(n_averaged)))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        lr = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else 0.0
        self.peak_lr = max(self.peak_lr, lr)
        self.lr_fraction = lr / self.peak_lr if self.peak_lr > 0 else 1.0
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)  # the module now holds the average ...
        # ... and from here on, validating and saving see the module's own weights (the
        # run picks its best checkpoint after training by loading weights into the module)
        self._average_model = None

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint):
        if self._average_model is not None:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "peak_lr": self.peak_lr}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.peak_lr = float(state_dict.get("peak_lr", 0.0))
