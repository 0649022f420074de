"""The training callbacks that change what a run produces (not only what it shows)."""

from __future__ import annotations

import json
import signal
import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ampnet.callbacks import EMA, DeferredInterrupt, TimedSnapshots


class Line(L.LightningModule):
    """y = w x + b by plain SGD: every weight after every step is easy to follow."""

    def __init__(self):
        super().__init__()
        self.fit = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.fit(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Trail(L.Callback):
    """The live weights after every optimiser step (runs before the EMA's own update)."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append([p.detach().clone() for p in pl_module.parameters()])


def test_ema_ramps_its_decay_then_holds_it():
    ema = EMA(decay=0.99)
    averaged, current = [torch.zeros(2)], [torch.ones(2)]
    ema._average(averaged, current, torch.tensor(0))  # first average: decay 1/10
    assert torch.allclose(averaged[0], torch.full((2,), 0.9))
    ema._average(averaged, current, torch.tensor(10_000))  # later: the decay itself
    assert torch.allclose(averaged[0], torch.full((2,), 0.9 + 0.01 * 0.1))
    # the horizon shrinks with the learning rate: at a tenth of its peak, a tenth as long
    ema.lr_fraction = 0.1
    assert ema.step_decay(10_000) == pytest.approx(0.9)
    ema.lr_fraction = 0.001  # at the end of a decayed schedule: the live weights
    assert ema.step_decay(10_000) == 0.0
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)


@pytest.mark.filterwarnings(
    "ignore:.*LeafSpec:DeprecationWarning", "ignore:.*LeafSpec:FutureWarning"
)
def test_training_ends_with_the_moving_average_of_every_step(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    data = DataLoader(TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3), 8)
    trail, ema = Trail(), EMA(decay=0.9)
    trainer = L.Trainer(
        max_epochs=2, callbacks=[trail, ema], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    model = Line()
    trainer.fit(model, data)
    assert len(trail.seen) == 16
    expected = [p.clone() for p in trail.seen[0]]  # the first update copies
    for n, step in enumerate(trail.seen[1:], start=1):
        decay = min(0.9, (1 + n) / (10 + n))
        expected = [e * decay + s * (1 - decay) for e, s in zip(expected, step, strict=True)]
    for got, want, last in zip(model.parameters(), expected, trail.seen[-1], strict=True):
        assert torch.allclose(got, want, atol=1e-6)
        assert not torch.allclose(got, last, atol=1e-4)  # not simply the last step's weights


class Slow(L.Callback):
    """Each epoch takes at least ``pause`` seconds."""

    def __init__(self, pause: float):
        self.pause = pause

    def on_train_epoch_end(self, trainer, pl_module):
        time.sleep(self.pause)


def _snapshot_fit(tmp_path, callbacks, **limits):
    """Fit ``Line`` on 32 rows in batches of 8 (4 steps an epoch), snapshots every 2 epochs;
    returns the trainer and the snapshots taken."""
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), 8)
    snaps = TimedSnapshots(tmp_path / "snapshots", every_n_epochs=2)
    trainer = L.Trainer(
        callbacks=[*callbacks, snaps], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        **limits,
    )  # fmt: skip
    trainer.fit(Line(), data)
    return trainer, json.loads((tmp_path / "snapshots" / "snapshots.json").read_text())


@pytest.mark.filterwarnings(
    "ignore:.*LeafSpec:DeprecationWarning", "ignore:.*LeafSpec:FutureWarning"
)
def test_snapshots_keep_the_weights_and_the_training_time_they_were_reached(tmp_path):
    time.sleep(0.3)  # before the fit: not training time
    started = time.time()
    _, taken = _snapshot_fit(tmp_path, [Slow(0.2)], max_epochs=5)
    fit_seconds = time.time() - started
    assert [t["epoch"] for t in taken] == [2, 4, 5]  # every second epoch, and the last
    seconds = [t["seconds"] for t in taken]
    # measured from the fit's start: at least the epochs' pauses, never more than the fit took
    for epochs, s in zip([2, 4, 5], seconds, strict=True):
        assert 0.2 * epochs <= s <= fit_seconds
    for t in taken:
        saved = torch.load(t["path"], weights_only=True)["state_dict"]
        assert set(saved) == {"fit.weight", "fit.bias"}


@pytest.mark.filterwarnings(
    "ignore:.*LeafSpec:DeprecationWarning", "ignore:.*LeafSpec:FutureWarning"
)
def test_a_step_budget_ending_mid_epoch_still_takes_the_last_snapshot(tmp_path):
    # 4 steps an epoch; trainer.max_steps=10 stops two steps into epoch 3
    trainer, taken = _snapshot_fit(tmp_path, [], max_epochs=10, max_steps=10)
    assert trainer.global_step == 10
    assert [(t["epoch"], t["step"]) for t in taken] == [(2, 8), (3, 10)]


class Press(L.Callback):
    """Ctrl+C as the handler sees it, in the middle of the step with index ``at``."""

    def __init__(self, interrupt: DeferredInterrupt, at: int, times: int = 1):
        self.interrupt, self.at, self.times = interrupt, at, times

    def on_before_backward(self, trainer, pl_module, loss):
        if trainer.global_step == self.at:
            for _ in range(self.times):
                self.interrupt.handle(signal.SIGINT, None)


def test_ctrl_c_stops_training_at_the_next_batch_boundary(tmp_path):
    """One press mid-step: that step finishes (its weights updated), then Lightning's own
    Ctrl+C shutdown; a second press raises at once, in the step."""
    data = TensorDataset(torch.randn(64, 3), torch.randn(64, 1))
    before = signal.getsignal(signal.SIGINT)
    try:
        for times, steps in ((1, 4), (2, 3)):
            interrupt = DeferredInterrupt()
            trainer = L.Trainer(max_epochs=5, callbacks=[interrupt, Press(interrupt, 3, times)],
                                logger=False, enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
            with pytest.raises(SystemExit) as stop:
                trainer.fit(Line(), DataLoader(data, batch_size=4))
            assert isinstance(stop.value.__context__, KeyboardInterrupt)
            assert trainer.interrupted and trainer.global_step == steps
    finally:
        signal.signal(signal.SIGINT, before)  # Lightning's shutdown set it to be ignored


def test_the_deferred_handler_stands_in_for_pythons_only_for_its_block():
    interrupt = DeferredInterrupt()
    before = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with interrupt.installed():
            assert signal.getsignal(signal.SIGINT) == interrupt.handle
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with interrupt.installed(enabled=False):  # several processes
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job's: left ignored
        with interrupt.installed():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
