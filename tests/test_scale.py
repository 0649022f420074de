"""Scaling out: DDP on CPU processes, resuming (also after SIGKILL), Optuna search, SLURM config."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ampnet.checkpoints import load_model
from ampnet.errors import AmpnetError
from ampnet.losses import esr
from ampnet.runs import resume_argv

from .conftest import REPO, run_module
from .test_train_cli import pair_args

QUICK = [
    "model=wavenet_nano",
    "data.segment_length=2304",
    "data.batch_size=4",
    "optim=adam_exponential",  # a few steps learn visibly without the cosine's warm-up and decay
    "optim.lr=0.01",
    "trainer.check_val_every_n_epoch=1",
    "callbacks.progress_bar=null",
    "callbacks.audio_examples=null",
    "logger=csv",
]


def val_esr_offline(run_dir: Path) -> float:
    """Validation ESR of the run's best checkpoint, computed here in one process."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    model, _ = load_model(run_dir / "checkpoints" / "best.ckpt")
    data = instantiate(cfg.data, history=model.history)
    data.setup("fit")
    values = []
    with torch.no_grad():
        for x, y in data.val_dataloader():
            values.append(float(esr(model(x)[..., -y.shape[-1] :], y)))
    return sum(values) / len(values)


def val_curve(run_dir: Path) -> list[float]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [float(r["val/esr"]) for r in csv.DictReader(f) if r.get("val/esr")]


@pytest.mark.slow
def test_ddp_two_cpu_processes_trains_writes_once_reduces_right_and_resumes(tmp_path, make_pair):
    inp, out = make_pair(seconds=6.0, sr=16000)
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    ddp = [*QUICK, *pair_args(inp, out), "trainer=ddp", "trainer.accelerator=cpu"]
    result = run_module(
        "ampnet.train",
        *ddp,
        "trainer.devices=2",
        "trainer.max_epochs=4",
        f"hydra.run.dir={ddp_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((ddp_dir / "metrics.json").read_text())
    assert metrics["devices"] == 2 and metrics["epochs"] == 4

    # rank 0 alone wrote: one metrics.json, one pair of checkpoints, nothing per rank
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("metrics.json")] == [
        Path("ddp/metrics.json")
    ]
    assert sorted(p.name for p in (ddp_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    curve = val_curve(ddp_dir)
    assert len(curve) == 5 and curve[3] < 0.8 * curve[0]  # 4 epochs + the final re-check; falls

    # the logged validation ESR is the model's own on the whole region: not a per-rank
    # share, not a duplicate-padded mean
    assert metrics["val_esr"] == pytest.approx(val_esr_offline(ddp_dir), rel=1e-4)

    # same data in one process: the same kind of number
    single = run_module(
        "ampnet.train", *QUICK, *pair_args(inp, out), "trainer.max_epochs=4",
        f"hydra.run.dir={single_dir}",
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    one = json.loads((single_dir / "metrics.json").read_text())
    assert one["devices"] == 1
    # each rank takes half the windows per epoch (drop_last rounds each share down)
    assert metrics["global_steps"] < one["global_steps"] <= 2 * metrics["global_steps"]
    assert 0.2 < metrics["val_esr"] / one["val_esr"] < 5

    # resume the DDP run in place for two more epochs
    more = run_module("ampnet.train", f"resume={ddp_dir}", "trainer.max_epochs=6")
    assert more.returncode == 0, more.stderr[-3000:]
    resumed = json.loads((ddp_dir / "metrics.json").read_text())
    assert resumed["resumed"] and resumed["devices"] == 2 and resumed["epochs"] == 6
    assert resumed["global_steps"] == metrics["global_steps"] * 6 // 4
    assert len(val_curve(ddp_dir)) == 5 + 3  # the first run's rows, 2 more epochs, 1 re-check


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_with_every_epoch(tmp_path, make_pair):
    inp, out = make_pair(seconds=20.0, sr=16000)
    run_dir = tmp_path / "run"
    args = [*QUICK, *pair_args(inp, out), "trainer.max_epochs=5", f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ampnet.train", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # into the next epoch
    assert proc.poll() is None, "training ended before it could be killed; make the data longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["epoch"] < 4  # it was killed with epochs still to run
    assert not (run_dir / "metrics.json").exists()

    result = run_module("ampnet.train", f"resume={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 5 and metrics["resumed"]
    steps_per_epoch = metrics["global_steps"] // 5
    assert metrics["global_steps"] == 5 * steps_per_epoch > 0
    assert 0 < metrics["val_esr"] < 1.0
    assert not list((run_dir / "checkpoints").glob("*.tmp*"))


def test_resume_argv_reuses_the_runs_overrides_and_lets_new_ones_win(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(["model=lstm", "trainer.max_epochs=10", "hydra.run.dir=/old"])
    )
    argv = resume_argv(["train", f"resume={run_dir}", "trainer.max_epochs=20"])
    assert argv == [
        "train",
        "model=lstm",
        "trainer.max_epochs=20",
        f"hydra.run.dir={run_dir}",
        "ckpt_path=last",
    ]
    assert resume_argv(["train", "model=lstm"]) == ["train", "model=lstm"]
    with pytest.raises(AmpnetError, match="no checkpoint to resume from"):
        resume_argv(["train", f"resume={tmp_path / 'nothing'}"])


@pytest.mark.slow
def test_optuna_search_minimises_validation_esr_and_ends_with_a_summary(tmp_path, make_pair):
    inp, out = make_pair(seconds=3.0, sr=16000)
    sweep = tmp_path / "optuna"
    result = run_module(
        "ampnet.train",
        "hparams_search=wavenet_optuna",
        "hydra.sweeper.n_trials=2",
        "trainer=debug",
        *(a for a in QUICK if not a.startswith(("optim.lr", "data.segment_length"))),
        *pair_args(inp, out),
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
    assert len(runs) == 2
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(r["val_esr"] for r in runs))
    assert set(best["best_params"]) == {
        "optim.lr",
        "model.layers.0.channels",
        "data.segment_length",
    }
    assert f"sweep {sweep}: 2 runs, best first" in result.stdout
    assert "optim.lr=" in (sweep / "summary.md").read_text()


@pytest.mark.slow
def test_slurm_launcher_is_configured_with_overridable_gpus_and_time():
    result = run_module(
        "ampnet.train",
        "hydra/launcher=slurm",
        "hydra.launcher.gpus_per_node=4",
        "hydra.launcher.timeout_min=90",
        "--cfg",
        "hydra",
        "--package",
        "hydra.launcher",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    launcher = yaml.safe_load(result.stdout)  # just the hydra.launcher package
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["gpus_per_node"] == 4 and launcher["timeout_min"] == 90
