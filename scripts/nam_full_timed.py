"""NAM 0.13's ``nam-full`` trainer, unchanged, plus timed snapshots of the model it trains.

    .venv/bin/python scripts/nam_full_timed.py DATA.json MODEL.json LEARNING.json OUTDIR --every 10
    .venv/bin/python scripts/nam_full_timed.py DATA.json MODEL.json LEARNING.json OUTDIR --resume

Runs ``nam.train.full.main`` exactly as ``nam-full DATA MODEL LEARNING OUTDIR --no-show
--no-plots`` does, with one callback added to the ones it creates: every ``--every``
epochs (and after the last) the network as it is at that moment is exported as a
``.nam`` (a SlimmableContainer for NAM's packed A2) to ``OUTDIR/snapshots/epoch<N>/``,
and ``OUTDIR/snapshots/snapshots.json`` records when. The seconds spent exporting are
recorded too, so a benchmark can take them off NAM's clock. After every epoch,
``OUTDIR/snapshots/clock.json`` records the CPU and wall seconds the training has taken
so far.

``--resume`` continues a run that stopped (a killed command, a session that ended) from
the newest of the per-epoch checkpoints ``nam-full`` keeps (``checkpoint_epoch_*.ckpt``),
through Lightning's own ``ckpt_path``: weights, optimiser, learning-rate schedule and its
best-checkpoint bookkeeping come back; the shuffling order after the restart is a new
draw. NAM's ``PackedBestCheckpoint`` (the best epoch of each submodel of a packed A2,
which ``nam-full`` exports at the end) keeps its record in memory only, not in Lightning's
checkpoint; on ``--resume`` it is read back from the ``packed_best.json`` that callback
writes, so the final container is the best over the whole run, not over its last part.
The clock carries on from the last finished epoch, so the work of a part-finished epoch
(redone after the restart) is not counted twice; the restart's start-up is.
For ``scripts/bench_capture.py`` (accuracy against training time); needs the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import pytorch_lightning as pl
from nam.train import full, lightning_module

STARTED = time.time()


def read_json(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default


def write_json(path: Path, value) -> None:
    """Through a temporary name, so a killed run leaves the previous file whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    tmp.replace(path)


class TimedExports(pl.Callback):
    """Every ``every`` epochs, export the network being trained and note the time.

    Times are this run's seconds so far: ``cpu_s`` and ``wall_s`` add the earlier parts of
    a resumed run (the last entry of ``clock.json``) to this process's own.
    """

    def __init__(self, folder: Path, every: int, carry_on: bool = False):
        self.folder, self.every = folder, max(1, every)
        folder.mkdir(parents=True, exist_ok=True)
        self.taken: list[dict] = read_json(folder / "snapshots.json", []) if carry_on else []
        self.clock: list[dict] = read_json(folder / "clock.json", []) if carry_on else []
        earlier = self.clock[-1] if self.clock else {}
        self.cpu0, self.wall0 = earlier.get("cpu_s", 0.0), earlier.get("wall_s", 0.0)
        self.overhead = self.taken[-1]["overhead_s"] if self.taken else 0.0

    def now(self) -> dict:
        return {"cpu_s": self.cpu0 + time.process_time(),
                "wall_s": self.wall0 + time.time() - STARTED}  # fmt: skip

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        reached = time.time()
        clock = self.now()
        if not (epoch % self.every and epoch != trainer.max_epochs):
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
            self.taken.append({"epoch": epoch, "time": reached, **clock,
                               "overhead_s": self.overhead, "path": str(out / "model.nam")})  # fmt: skip
            write_json(self.folder / "snapshots.json", self.taken)
        self.clock.append({"epoch": epoch, **clock, "overhead_s": self.overhead})
        write_json(self.folder / "clock.json", self.clock)


def restore_packed_best(callbacks: list, outdir: Path) -> int:
    """Give NAM's ``PackedBestCheckpoint`` back the best epochs a stopped run had found.

    It writes ``packed_best.json`` beside its ``packed_best_submodel_<i>.ckpt`` files after
    each new best, but has no ``state_dict``, so Lightning's resume leaves it empty and the
    first validation after a restart would overwrite a better checkpoint. Entries whose
    checkpoint file is gone are left out. Returns how many submodels were restored.
    """
    saved = read_json(outdir / "packed_best.json", {}).get("submodels", [])
    kept = {int(s["submodel_index"]): s for s in saved if Path(s["checkpoint_path"]).is_file()}
    packed = getattr(lightning_module, "PackedBestCheckpoint", None)
    for callback in callbacks:
        if packed is not None and isinstance(callback, packed):
            callback.best = dict(kept)
            return len(kept)
    return 0


def newest_checkpoint(outdir: Path) -> Path | None:
    """The per-epoch checkpoint of the latest epoch ``nam-full`` finished in ``outdir``."""
    found = [
        (int(m.group(1)), p)
        for p in outdir.rglob("checkpoint_epoch_*.ckpt")
        if (m := re.search(r"checkpoint_epoch_epoch=(\d+)", p.stem))
    ]
    return max(found)[1] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("model", type=Path)
    parser.add_argument("learning", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--every", type=int, default=10, help="epochs between snapshots")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest per-epoch checkpoint in OUTDIR, if any")  # fmt: skip
    args = parser.parse_args()
    configs = [json.loads(p.read_text()) for p in (args.data, args.model, args.learning)]
    args.outdir.mkdir(parents=True, exist_ok=True)
    checkpoint = newest_checkpoint(args.outdir) if args.resume else None
    if checkpoint is not None:
        configs[2].setdefault("trainer_fit_kwargs", {})["ckpt_path"] = str(checkpoint)
        print(f"nam_full_timed: resuming from {checkpoint}", flush=True)
    snapshots = TimedExports(args.outdir / "snapshots", args.every, carry_on=checkpoint is not None)
    create = full._create_callbacks

    def callbacks(*a, **k) -> list:
        made = create(*a, **k)
        if checkpoint is not None and (n := restore_packed_best(made, args.outdir)):
            print(f"nam_full_timed: kept the best epochs of {n} packed submodels", flush=True)
        return [*made, snapshots]

    full._create_callbacks = callbacks
    full.main(*configs, args.outdir, no_show=True, make_plots=False)


if __name__ == "__main__":
    main()
