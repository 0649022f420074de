"""Shared fixtures: tiny paired recordings the tests make themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
# The reference recordings beside the repository (CI has them; a fresh clone does not).
SHARED = Path(os.environ.get("AMPNET_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core (pytest-xdist): each worker, and every ampnet
    # command it starts, then uses one thread, so the workers do not fight over the cores.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def synth_pair(seconds: float, sr: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A guitar-ish DI (decaying tones and noise) and a simple 'amp': gain, tanh, low-pass."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for start in np.arange(0, seconds, 0.25):
        f = rng.uniform(80, 600)
        env = np.where(t >= start, np.exp(-(t - start) * rng.uniform(3, 12)), 0.0)
        x += rng.uniform(0.05, 0.4) * env * np.sin(2 * np.pi * f * (t - start))
    x += 0.01 * rng.standard_normal(n)
    x = (0.5 * x / np.max(np.abs(x))).astype(np.float32)
    b, a = scipy.signal.butter(1, 3000, fs=sr)
    y = scipy.signal.lfilter(b, a, np.tanh(4 * x)) * 0.5
    return x, y.astype(np.float32)


@pytest.fixture
def make_pair(tmp_path):
    """Write a DI/amp pair as WAV files; returns (input_path, output_path)."""

    def make(seconds: float = 3.0, sr: int = 16000, seed: int = 0, folder: str = "pair"):
        d = tmp_path / folder
        d.mkdir(parents=True, exist_ok=True)
        x, y = synth_pair(seconds, sr, seed)
        sf.write(d / "input.wav", x, sr, subtype="FLOAT")
        sf.write(d / "output.wav", y, sr, subtype="FLOAT")
        return d / "input.wav", d / "output.wav"

    return make


def user_env() -> dict:
    """The environment a test's ``python -m ampnet...`` runs in: quiet, W&B offline."""
    return dict(os.environ, PYTHONWARNINGS="ignore", WANDB_MODE="offline", WANDB_SILENT="true")


def run_module(module: str, *args: str, cwd: Path | None = None, timeout: int = 600):
    """Run ``python -m module args`` the way a user would; returns the CompletedProcess."""
    env = user_env()
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Overrides that make a training run take seconds on tiny data.
FAST = [
    "model=wavenet_nano",
    "trainer=debug",
    "data.segment_length=2304",  # long enough for the MR-STFT losses (2048 + pre-emphasis)
    "data.batch_size=4",
    "callbacks.progress_bar=null",
]


def write_checkpoint(
    model,
    path: Path,
    sample_rate: int = 16000,
    input_gain_db: float = 0.0,
    config: dict | None = None,
) -> Path:
    """A checkpoint shaped like ampnet.train's (the parts ampnet reads back), without training;
    ``config``: the run's resolved config (``data`` names its recordings)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "hyper_parameters": {
                "model": model.config(),
                "sample_rate": sample_rate,
                "input_gain_db": input_gain_db,
                "model_name": "test",
                **({"config": config} if config is not None else {}),
            },
        },
        path,
    )
    return path
