"""``scripts/nam_full_timed.py``: NAM's own trainer, timed, and resumable after a stop.

A NAM training on the 3-minute capture signal takes about three hours a capture on a
2-core machine, longer than one sitting; ``--resume`` must carry on where it stopped
(weights, optimiser, learning-rate schedule) with its clock carried over, or the
benchmark's NAM row would be a fresh start timed from zero.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("nam", reason="needs the bench extra (neural-amp-modeler)")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "nam_full_timed.py"
RATE = 48_000

# A small NAM WaveNet (its own classes, its own trainer): seconds an epoch, not minutes.
MODEL = {
    "net": {
        "name": "WaveNet",
        "config": {
            "layers_configs": [
                {
                    "condition_size": 1,
                    "input_size": 1,
                    "channels": 4,
                    "kernel_size": 3,
                    "dilations": [1, 2, 4, 8],
                    "activation": "Tanh",
                    "head": {"out_channels": 1, "kernel_size": 1, "bias": True},
                }
            ],
            "head_scale": 0.02,
        },
    },
    "optimizer": {"lr": 0.004},
    "lr_scheduler": {"class": "ExponentialLR", "kwargs": {"gamma": 0.9}},
}


def configs(folder: Path, epochs: int, model: dict) -> list[Path]:
    x = (0.3 * np.random.default_rng(0).standard_normal(int(3.4 * RATE))).astype(np.float32)
    x[int(2.5 * RATE) : int(2.9 * RATE)] = 0.0  # NAM wants 0.4 s of silence before validation
    sf.write(folder / "x.wav", x, RATE, subtype="FLOAT")
    sf.write(folder / "y.wav", np.tanh(3 * x), RATE, subtype="FLOAT")
    data = {
        "train": {"start_seconds": 0.0, "stop_seconds": 2.5, "ny": 4096},
        "validation": {"start_seconds": 2.9, "stop_seconds": 3.4, "ny": None},
        "common": {"x_path": str(folder / "x.wav"), "y_path": str(folder / "y.wav"), "delay": 0},
    }
    learning = {
        "train_dataloader": {"batch_size": 4, "shuffle": True, "drop_last": True},
        "val_dataloader": {},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": epochs},
        "trainer_fit_kwargs": {},
    }
    paths = []
    for name, config in (("data", data), ("model", model), ("learning", learning)):
        paths.append(folder / f"{name}.json")
        paths[-1].write_text(json.dumps(config))
    return paths


def run(folder: Path, epochs: int, *extra: str, model: dict = MODEL) -> str:
    paths = configs(folder, epochs, model)
    cmd = [sys.executable, str(SCRIPT), *map(str, paths), str(folder / "runs")]
    done = subprocess.run([*cmd, "--every", "2", *extra], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


def lr_and_epoch(folder: Path) -> tuple[float, int]:
    newest = max((folder / "runs").rglob("checkpoint_epoch_*.ckpt"), key=lambda p: p.stem)
    state = torch.load(newest, map_location="cpu", weights_only=False)  # our own file
    return state["lr_schedulers"][0]["_last_lr"][0], state["epoch"]


@pytest.mark.slow
def test_a_stopped_nam_run_resumes_where_it_stopped_and_its_clock_carries_on(tmp_path):
    run(tmp_path, 2)  # stands for a run that stopped after its second epoch
    first = json.loads((tmp_path / "runs" / "snapshots" / "clock.json").read_text())
    assert [c["epoch"] for c in first] == [1, 2]
    assert lr_and_epoch(tmp_path)[0] == pytest.approx(0.004 * 0.9**2)

    log = run(tmp_path, 4, "--resume")
    assert "resuming from" in log and "checkpoint_epoch_epoch=0001" in log
    clock = json.loads((tmp_path / "runs" / "snapshots" / "clock.json").read_text())
    assert [c["epoch"] for c in clock] == [1, 2, 3, 4]  # epochs 3 and 4, not 1 and 2 again
    assert clock[:2] == first
    cpu = [c["cpu_s"] for c in clock]
    wall = [c["wall_s"] for c in clock]
    assert np.all(np.diff(cpu) > 0) and np.all(np.diff(wall) > 0)
    # the schedule went on from the stop (two more decays), not from the start
    assert lr_and_epoch(tmp_path)[0] == pytest.approx(0.004 * 0.9**4)
    snaps = json.loads((tmp_path / "runs" / "snapshots" / "snapshots.json").read_text())
    assert [s["epoch"] for s in snaps] == [2, 4]
    assert snaps[1]["cpu_s"] == pytest.approx(clock[3]["cpu_s"], abs=1.0)
    assert (tmp_path / "runs" / "model.nam").is_file()

    # without --resume the same folder starts again from nothing
    run(tmp_path, 1)
    again = json.loads((tmp_path / "runs" / "snapshots" / "clock.json").read_text())
    assert [c["epoch"] for c in again] == [1]


def packed_model() -> dict:
    """NAM's packed A2 shape (two WaveNets of different widths in one container), tiny."""

    def submodel(name: str, channels: int) -> dict:
        layers = {"input_size": 1, "condition_size": 1, "channels": channels,
                  "kernel_sizes": [3, 3, 3], "dilations": [1, 2, 4], "activation": "LeakyReLU",
                  "gated": False, "head": {"out_channels": 1, "kernel_size": 2, "bias": True}}  # fmt: skip
        return {"name": name, "config": {"layers_configs": [layers], "head_scale": 0.02}}

    return {
        "net": {
            "name": "PackedWaveNet",
            "config": {
                "submodels": [submodel("channels_2", 2), submodel("channels_4", 4)],
                "export": {"container_max_values": "uniform"},
            },
        },
        "loss": {"val_loss": "esr"},
        "optimizer": {"lr": 0.004},
        "lr_scheduler": {"class": "ExponentialLR", "kwargs": {"gamma": 0.9}},
    }


@pytest.mark.slow
def test_a_resumed_packed_run_keeps_the_best_epochs_found_before_the_stop(tmp_path):
    run(tmp_path, 2, model=packed_model())
    runs = tmp_path / "runs"
    record = json.loads((runs / "packed_best.json").read_text())
    assert [s["submodel_name"] for s in record["submodels"]] == ["channels_2", "channels_4"]
    # Stand for a first part whose best epochs no later epoch beats: NAM's callback must
    # keep them (and their checkpoint files) after the restart, as an unbroken run would.
    for s in record["submodels"]:
        s["best_metric"] = 1e-12
    (runs / "packed_best.json").write_text(json.dumps(record))
    files = {p.name: p.read_bytes() for p in runs.glob("packed_best_submodel_*.ckpt")}
    assert len(files) == 2

    log = run(tmp_path, 4, "--resume", model=packed_model())
    assert "kept the best epochs of 2 packed submodels" in log
    assert json.loads((runs / "packed_best.json").read_text()) == record
    assert {p.name: p.read_bytes() for p in runs.glob("packed_best_submodel_*.ckpt")} == files
    assert (runs / "model.nam").is_file()
