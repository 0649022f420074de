"""``python -m ampnet.process``: whole files through a model, as a player hears them."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from ampnet.formats.nam import wavenet_to_nam
from ampnet.models import LSTM, WaveNet

from .conftest import run_module, synth_pair, write_checkpoint
from .test_stream import MIXED


@pytest.fixture
def wavenet():
    torch.manual_seed(0)
    return WaveNet(MIXED).eval()


def offline(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)[None, None], pad_start=True)[0, 0].numpy()


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wavenet", "lstm"])
def test_process_matches_the_model_on_the_whole_file(kind, tmp_path, wavenet):
    model = wavenet if kind == "wavenet" else LSTM(hidden_size=8).eval()
    ckpt = write_checkpoint(
        model, tmp_path / "run" / "checkpoints" / "best.ckpt", sample_rate=16000
    )
    x, _ = synth_pair(8.0, 16000)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="PCM_24")
    before = sha(tmp_path / "in.wav")
    result = run_module(
        "ampnet.process",
        str(tmp_path / "in.wav"),
        "-o",
        str(tmp_path / "out.wav"),
        "--model",
        str(ckpt),
        "-c",
        "5000",
    )
    assert result.returncode == 0, result.stderr
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    x_read, _ = sf.read(tmp_path / "in.wav", dtype="float32")
    assert rate == 16000 and y.shape == x_read.shape
    np.testing.assert_allclose(y, offline(model, x_read), rtol=0, atol=1e-5)
    assert sha(tmp_path / "in.wav") == before  # the input is never touched
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.slow
def test_other_rates_are_resampled_and_said_so(tmp_path, wavenet):
    ckpt = write_checkpoint(wavenet, tmp_path / "m.ckpt", sample_rate=48000)
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(44100) / 44100)).astype(np.float32)
    sf.write(tmp_path / "in.flac", x, 44100)
    result = run_module(
        "ampnet.process",
        str(tmp_path / "in.flac"),
        "-o",
        str(tmp_path / "out.wav"),
        "--model",
        str(ckpt),
    )
    assert result.returncode == 0, result.stderr
    assert "44100 Hz, the model 48000 Hz: resampling with soxr" in result.stderr
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert rate == 44100 and len(y) == len(x)
    # the same as resampling by hand, processing at 48 kHz and resampling back
    import soxr

    x48 = soxr.resample(
        sf.read(tmp_path / "in.flac", dtype="float32")[0], 44100, 48000, quality="VHQ"
    )
    back = soxr.resample(offline(wavenet, x48.astype(np.float32)), 48000, 44100, quality="VHQ")[
        : len(x)
    ]
    np.testing.assert_allclose(y, back, atol=1e-5)


@pytest.mark.slow
def test_best_is_the_newest_runs_best_checkpoint(tmp_path, wavenet):
    old = write_checkpoint(
        LSTM(hidden_size=4), tmp_path / "outputs" / "lstm" / "a" / "checkpoints" / "best.ckpt"
    )
    new = write_checkpoint(
        wavenet, tmp_path / "outputs" / "wavenet" / "b" / "checkpoints" / "best.ckpt"
    )
    os.utime(old, (1_000_000, 1_000_000))
    x, _ = synth_pair(1.0, 16000)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    result = run_module("ampnet.process", "in.wav", "-o", "out.wav", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert str(new.relative_to(tmp_path)) in result.stderr
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(y, offline(wavenet, x), atol=1e-5)


def test_a_sweep_folder_plays_its_run_with_the_lowest_validation_esr(tmp_path, wavenet):
    sweep = tmp_path / "outputs" / "multirun" / "2026-12-03_14-00-00"
    runs = {
        "0_pair_lstm": (LSTM(hidden_size=4), 0.20),
        "1_pair_wavenet": (wavenet, 0.05),
        "2_pair_lstm": (LSTM(hidden_size=4), float("nan")),  # diverged: never the best
        "3_pair_lstm": (LSTM(hidden_size=4), None),
    }  # still training: no metrics yet
    for name, (model, val) in runs.items():
        write_checkpoint(model, sweep / name / "checkpoints" / "best.ckpt")
        if val is not None:
            (sweep / name / "metrics.json").write_text(json.dumps({"val_esr": val}))
    x, _ = synth_pair(1.0, 16000)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    folder = str(sweep.relative_to(tmp_path))
    result = run_module(
        "ampnet.process", "in.wav", "-o", "out.wav", "--model", folder, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert (
        "1_pair_wavenet has the lowest validation ESR (0.05) of 2 finished run(s)" in result.stderr
    )
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(y, offline(wavenet, x), atol=1e-5)
    # a sweep with no finished run: one line naming the folder, exit 2, nothing written
    for name in ("0_pair_lstm", "1_pair_wavenet", "2_pair_lstm"):
        (sweep / name / "metrics.json").unlink()
    result = run_module(
        "ampnet.process", "in.wav", "-o", "new.wav", "--model", folder, cwd=tmp_path
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{folder}: no finished run below it" in result.stderr
    assert not (tmp_path / "new.wav").exists()


@pytest.mark.slow
def test_a_nam_file_plays_too(tmp_path, wavenet):
    (tmp_path / "m.nam").write_text(json.dumps(wavenet_to_nam(wavenet, 16000)))
    x, _ = synth_pair(1.0, 16000)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    result = run_module(
        "ampnet.process",
        str(tmp_path / "in.wav"),
        "-o",
        str(tmp_path / "o.wav"),
        "--model",
        str(tmp_path / "m.nam"),
    )
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(
        sf.read(tmp_path / "o.wav", dtype="float32")[0], offline(wavenet, x), atol=1e-5
    )


def bad_cases(tmp_path, wavenet):
    ckpt = write_checkpoint(wavenet, tmp_path / "m.ckpt")
    x, _ = synth_pair(1.0, 16000)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    (tmp_path / "broken.nam").write_text('{"version": "0.5.4", "architecture": "WaveNet", "con')
    (tmp_path / "junk.ckpt").write_bytes(b"\x00not a checkpoint")
    inp, out = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    return {
        "missing input": (
            [str(tmp_path / "nope.wav"), "-o", out, "--model", str(ckpt)],
            "nope.wav: no such file",
        ),
        "overwrite input": ([inp, "-o", inp, "--model", str(ckpt)], "is the input"),
        "truncated nam": (
            [inp, "-o", out, "--model", str(tmp_path / "broken.nam")],
            "broken.nam: not valid JSON",
        ),
        "junk ckpt": (
            [inp, "-o", out, "--model", str(tmp_path / "junk.ckpt")],
            "junk.ckpt: not a readable",
        ),
        "no runs": (
            [inp, "-o", out, "--outputs", str(tmp_path / "empty")],
            "no training runs under",
        ),
        "no cuda": ([inp, "-o", out, "--model", str(ckpt), "-d", "cuda"], "no CUDA device"),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "case", ["missing input", "overwrite input", "truncated nam", "junk ckpt", "no runs", "no cuda"]
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, tmp_path, wavenet):
    if case == "no cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args, expected = bad_cases(tmp_path, wavenet)[case]
    before = sha(tmp_path / "in.wav")
    result = run_module("ampnet.process", *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("ampnet: error: ") and expected in line, line
    assert not (tmp_path / "out.wav").exists()
    assert sha(tmp_path / "in.wav") == before
