"""The LightningModule: wires a plain model to a loss and an optimiser, and logs.

It holds no network code of its own: ``self.model`` is a plain ``nn.Module`` from
``ampnet.models`` and is what gets exported, streamed and benchmarked.
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from ampnet.atomic import atomic_output
from ampnet.errors import SettingError
from ampnet.losses import MultiResolutionSTFT, esr

# Lines Lightning prints that a user cannot act on: product tips, and the estimate it
# makes before every fit. Its other lines (GPU available, the model summary) stay.
UNACTIONABLE = ("💡 Tip:", "Loading `train_dataloader` to estimate number of stepping batches")


class _Unactionable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(UNACTIONABLE)


def quiet_lightning() -> None:
    """Keep a training run's output to what a user can act on: drop Lightning's tips and
    the deprecation warning torch raises inside Lightning's own pytree helper."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Unactionable) for f in logger.filters):
            logger.addFilter(_Unactionable())
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )


def length_scale(total_steps: int, points: Sequence[Sequence[float]] | None) -> float:
    """The share of the optimiser's rate a run of ``total_steps`` peaks at.

    ``points``: ``[steps, share]`` pairs in rising steps; between two of them the share is
    interpolated linearly in log(steps), and it stays at the first (last) share for runs
    shorter (longer) than the first (last) point. ``None`` or empty: 1.
    """
    if not points:
        return 1.0
    pairs = [(float(s), float(f)) for s, f in points]
    if any(s < 1 or f <= 0 for s, f in pairs) or any(
        b[0] <= a[0] for a, b in zip(pairs, pairs[1:], strict=False)
    ):
        raise SettingError(
            "optim.scheduler.peak_by_length must be [steps, share] pairs with steps >= 1 "
            f"rising and shares > 0, got {[list(p) for p in points]}; for example "
            "[[2000,1.0],[28800,0.375]] (the default), or null for one peak at any length"
        )
    steps = max(1.0, float(total_steps))
    if steps <= pairs[0][0]:
        return pairs[0][1]
    for (s0, f0), (s1, f1) in zip(pairs, pairs[1:], strict=False):
        if steps <= s1:
            t = math.log(steps / s0) / math.log(s1 / s0)
            return math.exp(math.log(f0) + t * (math.log(f1) - math.log(f0)))
    return pairs[-1][1]


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_fraction: float = 0.05,
    final_fraction: float = 0.01,
    cycles: Sequence[float] | None = None,
    restart_peak: float = 1.0,
    peak_by_length: Sequence[Sequence[float]] | None = None,
    power: float = 1.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps, then a cosine down to ``final_fraction`` of the rate.

    ``power`` raises the cosine's half-wave (1 at the peak, 0 at the end) to a power: above 1
    it spends longer low. With 1.5 over 140 epochs the rate follows the plain cosine over 120
    to within 1% of the peak from the end of the warm-up to epoch 80, then decays over a
    longer tail.

    ``cycles`` splits the run into warm restarts: fractions of ``total_steps``, one per
    cycle (``[0.33, 0.67]``: the first cycle anneals by a third of the run, so a run
    stopped there ends on a settled model; the rest is a second cycle). Each cycle
    warms up over ``warmup_fraction`` of its own steps and decays to ``final_fraction``;
    cycle ``k`` peaks at ``restart_peak ** k`` of the rate. Fractions are normalised to
    sum to one.

    ``peak_by_length`` scales the whole schedule by the run's length (``length_scale``):
    long runs peak lower than short ones. The share is kept on the scheduler as
    ``peak_share``.
    """
    share = length_scale(total_steps, peak_by_length)
    fractions = [1.0] if not cycles else [float(f) for f in cycles]
    if any(f <= 0 for f in fractions):
        raise SettingError(
            f"optim.scheduler.cycles must be positive fractions, got {list(fractions)}; "
            "for example [1, 2], or null for one cycle"
        )
    if not power > 0:
        raise SettingError(
            f"optim.scheduler.power must be positive, got {power}; 1 is the plain cosine"
        )
    if not 0 < restart_peak <= 1:
        raise SettingError(
            f"optim.scheduler.restart_peak must be in (0, 1], got {restart_peak}; for example 0.5"
        )
    scale = sum(fractions)
    bounds, start = [], 0
    for i, fraction in enumerate(fractions):
        end = (
            total_steps
            if i == len(fractions) - 1
            else start + round(total_steps * fraction / scale)
        )
        bounds.append((start, max(start + 1, end)))
        start = bounds[-1][1]

    def factor(step: int) -> float:
        k = next((i for i, (_, end) in enumerate(bounds) if step < end), len(bounds) - 1)
        start, end = bounds[k]
        length = end - start
        local = step - start
        peak = restart_peak**k
        warmup = max(1, int(warmup_fraction * length))
        if local < warmup:
            # The first cycle warms up from zero; a restart climbs from where the last cycle ended.
            floor = 0.0 if k == 0 else final_fraction * restart_peak ** (k - 1)
            return floor + (peak - floor) * (local + 1) / warmup
        progress = min(1.0, (local - warmup) / max(1, length - warmup))
        return peak * (
            final_fraction
            + (1 - final_fraction) * (0.5 * (1 + math.cos(math.pi * progress))) ** power
        )

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: share * factor(step))
    scheduler.peak_share = share
    return scheduler


class AmpModule(L.LightningModule):
    """Trains ``model`` on ``(input window, target segment)`` batches with ``loss``.

    ``optimizer`` and ``scheduler`` are factories (Hydra ``_partial_`` configs): the
    first takes parameters, the second the optimiser and, if it asks for it,
    ``total_steps``. Validation and test always log plain ESR and MR-STFT over whole
    regions, whatever the training loss, so runs compare. ``hparams`` (the model's
    config, sample rate, input gain, the composed run config) go into every checkpoint.
    ``step_budget``: train fewer epochs than ``trainer.max_epochs`` where those would take
    more optimiser steps than this (whole epochs; ``apply_step_budget``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        scheduler_interval: str = "epoch",
        hparams: Mapping | None = None,
        step_budget: int | None = None,
    ):
        super().__init__()
        self.step_budget = int(step_budget) if step_budget else None
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.schedule_takes_steps = (
            scheduler is not None and "total_steps" in inspect.signature(scheduler).parameters
        )
        if scheduler is not None:
            # a meaningless schedule setting fails here, before the trainer starts
            probe = optimizer([nn.Parameter(torch.zeros(1))])
            scheduler(probe, **({"total_steps": 1} if self.schedule_takes_steps else {}))
        self.scheduler_interval = scheduler_interval
        self.mrstft = MultiResolutionSTFT()
        self.save_hyperparameters({"model": model.config(), **dict(hparams or {})})
        # stage -> (di, target, prediction) of the first region, for reports and loggers
        self.examples: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def forward(self, x: torch.Tensor, target_length: int) -> torch.Tensor:
        """The last ``target_length`` output samples: what lines up with the target segment."""
        return self.model(x)[..., -target_length:]

    def on_train_epoch_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if hasattr(datamodule, "set_epoch"):
            datamodule.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        y_hat = self(x, y.shape[-1])
        # under bf16/16-bit mixed precision the network runs in low precision, the loss
        # (ESR ratios, STFTs) in float32: small errors are what it measures
        with torch.autocast(y_hat.device.type, enabled=False):
            total, terms = self.loss(y_hat.float(), y.float(), step=self.global_step)
        self.log("train/loss", total, prog_bar=True, batch_size=x.shape[0])
        for name, value in terms.items():
            self.log(f"train/{name}", value, batch_size=x.shape[0])
        return total

    def _evaluate(self, batch, batch_idx: int, stage: str) -> None:
        x, y = batch
        y_hat = self(x, y.shape[-1]).float()
        target = y.expand_as(y_hat)  # a slimmable model answers once per size
        self.log(f"{stage}/esr", esr(y_hat, target), prog_bar=True, batch_size=1, sync_dist=True)
        self.log(f"{stage}/mrstft", self.mrstft(y_hat, target), batch_size=1, sync_dist=True)
        sizes = y_hat.shape[1]
        for c in range(sizes) if sizes > 1 else ():  # channel 0 is the largest: esr_0 the smallest
            value = esr(y_hat[:, c : c + 1], y)
            self.log(f"{stage}/esr_{sizes - 1 - c}", value, batch_size=1, sync_dist=True)
        if batch_idx == 0:
            n = y.shape[-1]
            self.examples[stage] = (x[0, 0, -n:].cpu(), y[0, 0].cpu(), y_hat[0, 0].detach().cpu())

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def apply_step_budget(self) -> None:
        """Lower ``trainer.max_epochs`` to the whole epochs that fit in ``step_budget``
        optimiser steps (at least one), before the schedule is planned over them.

        Epochs, not Lightning's ``max_steps``: a run still ends on a validated epoch
        boundary, and resuming from ``last.ckpt`` stays the epoch-based resume (Lightning
        treats any run with ``max_steps`` set as restarting mid-epoch). The same data gives
        the same epochs, so a resumed run plans the same schedule.
        """
        trainer = self.trainer
        if not self.step_budget or trainer.max_epochs is None or trainer.max_epochs < 1:
            return
        _ = trainer.estimated_stepping_batches  # sets up the training data if not yet
        batches = trainer.num_training_batches
        if not math.isfinite(batches) or batches < 1:  # an iterable dataset: no epochs to count
            return
        per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
        epochs = max(1, min(trainer.max_epochs, self.step_budget // per_epoch))
        if epochs < trainer.max_epochs:
            if trainer.is_global_zero:
                print(
                    f"step budget: {epochs} epochs of {per_epoch} steps (step_budget="
                    f"{self.step_budget}; trainer.max_epochs={trainer.max_epochs} would take "
                    f"{trainer.max_epochs * per_epoch}; step_budget=null trains them all)"
                )
            trainer.fit_loop.max_epochs = epochs

    def configure_optimizers(self):
        self.apply_step_budget()
        optimizer = self.optimizer_factory(self.model.parameters())
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        if self.schedule_takes_steps:
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, **kwargs)
        share = getattr(scheduler, "peak_share", 1.0)
        if share != 1.0 and self.trainer.is_global_zero:
            rate = optimizer.param_groups[0]["initial_lr"]
            print(
                f"learning rate: peak {rate * share:.3g} ({share:.3g} of optim.lr={rate:g} for a "
                f"run of {kwargs.get('total_steps')} steps: optim.scheduler.peak_by_length; "
                "null peaks every run at optim.lr)"
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves to a temporary file beside the target and renames it into place, so an
    interrupted save never leaves a truncated ``best.ckpt`` or ``last.ckpt``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_output(path) as tmp:
            torch.save(checkpoint, tmp)
