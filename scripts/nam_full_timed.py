"""NAM 0.13's ``nam-full`` trainer, unchanged, plus timed snapshots of the model it trains.

    .venv/bin/python scripts/nam_full_timed.py DATA.json MODEL.json LEARNING.json OUTDIR --every 10

Runs ``nam.train.full.main`` exactly as ``nam-full DATA MODEL LEARNING OUTDIR --no-show
--no-plots`` does, with one callback added to the ones it creates: every ``--every``
epochs (and after the last) the network as it is at that moment is exported as a
``.nam`` (a SlimmableContainer for NAM's packed A2) to ``OUTDIR/snapshots/epoch<N>/``,
and ``OUTDIR/snapshots/snapshots.json`` records when. The seconds spent exporting are
recorded too, so a benchmark can take them off NAM's clock. For
``scripts/bench_capture.py`` (accuracy against training time); needs the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytorch_lightning as pl
from nam.train import full


class TimedExports(pl.Callback):
    """Every ``every`` epochs, export the network being trained and note the time."""

    def __init__(self, folder: Path, every: int):
        self.folder, self.every = folder, max(1, every)
        self.taken: list[dict] = []
        self.overhead = 0.0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every and epoch != trainer.max_epochs:
            return
        reached = time.time()
        out = self.folder / f"epoch{epoch:04d}"
        out.mkdir(parents=True, exist_ok=True)
        net = pl_module.net
        was_training = net.training
        net.eval()
        if hasattr(net, "export_container"):  # PackedWaveNet: both sizes, as one container
            net.export_container(out)
        else:
            net.export(out)
        net.train(was_training)
        self.overhead += time.time() - reached
        self.taken.append(
            {
                "epoch": epoch,
                "time": reached,
                "overhead_s": self.overhead,
                "path": str(out / "model.nam"),
            }  # fmt: skip
        )
        (self.folder / "snapshots.json").write_text(json.dumps(self.taken, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("learning", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--every", type=int, default=10, help="epochs between snapshots")
    args = parser.parse_args()
    configs = [json.loads(p.read_text()) for p in (args.data, args.model, args.learning)]
    snapshots = TimedExports(args.outdir / "snapshots", args.every)
    create = full._create_callbacks
    full._create_callbacks = lambda *a, **k: [*create(*a, **k), snapshots]
    args.outdir.mkdir(parents=True, exist_ok=True)
    full.main(*configs, args.outdir, no_show=True, make_plots=False)


if __name__ == "__main__":
    main()
