"""Hearing and seeing the difference: metrics, ``ampnet.compare``, reports, summaries."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from ampnet.report import write_report
from ampnet.report.metrics import (
    ESR_BAND_KEYS,
    compare_signals,
    esr_audible,
    esr_by_band,
    integrated_loudness,
    k_weighting,
)

from .conftest import run_module, synth_pair

RATE = 48000


def pair(seconds=3.0):
    x, y = synth_pair(seconds, RATE)
    noise = 0.01 * np.random.default_rng(0).standard_normal(len(y)).astype(np.float32)
    return x, y, y + noise


def test_k_weighting_matches_the_standards_48k_coefficients():
    (b1, a1), (b2, a2) = k_weighting(48000)
    np.testing.assert_allclose(
        b1, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-8
    )
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-8)
    np.testing.assert_allclose(b2, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-8)


def test_full_scale_1khz_sine_is_minus_3_lufs():
    t = np.arange(10 * RATE) / RATE
    assert integrated_loudness(np.sin(2 * np.pi * 997 * t), RATE) == pytest.approx(-3.01, abs=0.02)
    assert integrated_loudness(0.1 * np.sin(2 * np.pi * 997 * t), RATE) == pytest.approx(
        -23.01, abs=0.02
    )


def test_audible_esr_leaves_out_dc_and_drift_but_not_tones():
    _, y, _ = pair()
    t = np.arange(len(y)) / RATE
    drift = (0.02 + 0.01 * np.sin(2 * np.pi * 3 * t)).astype(np.float32)  # DC and a 3 Hz drift
    metrics = compare_signals(y, y + drift, RATE)
    assert metrics["esr"] > 1e-3 and metrics["esr_audible"] < 1e-3 * metrics["esr"]
    tone = (0.01 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)  # an error anyone hears
    assert esr_audible(y, y + tone, RATE) == pytest.approx(
        compare_signals(y, y + tone, RATE)["esr"], rel=0.05
    )
    assert esr_audible(y, y + tone + drift, RATE) == pytest.approx(
        esr_audible(y, y + tone, RATE), rel=0.05
    )


def test_esr_by_band_puts_each_error_in_its_band_and_adds_up_to_the_esr():
    _, y, _ = pair()
    t = np.arange(len(y)) / RATE
    drift = 0.02 * np.sin(2 * np.pi * 7 * t)  # below 20 Hz
    fizz = 0.005 * np.sin(2 * np.pi * 8000 * t)  # 6-12 kHz
    body = 0.003 * np.sin(2 * np.pi * 1000 * t)  # 500 Hz - 2 kHz
    metrics = compare_signals(y, (y + drift + fizz + body).astype(np.float32), RATE)
    bands = {k: metrics[k] for k in ESR_BAND_KEYS}
    assert sum(bands.values()) == pytest.approx(metrics["esr"], rel=1e-4)
    energy = float(np.sum(y.astype(np.float64) ** 2))
    for key, error in [("esr_0_20hz", drift), ("esr_6k_12khz", fizz), ("esr_500_2khz", body)]:
        assert bands[key] == pytest.approx(float(np.sum(error**2)) / energy, rel=0.02), key
    assert max(bands[k] for k in ("esr_20_100hz", "esr_2k_6khz", "esr_12khz_up")) < 1e-4 * sum(
        bands.values()
    )
    # an odd length (no Nyquist bin) and a silent target
    odd = esr_by_band(y[:-1], y[:-1] + body[:-1], RATE)
    assert sum(odd.values()) == pytest.approx(
        compare_signals(y[:-1], y[:-1] + body[:-1].astype(np.float32), RATE)["esr"], rel=1e-4
    )
    assert all(np.isnan(v) for v in esr_by_band(np.zeros(100), np.ones(100), RATE).values())


def test_metrics_see_lag_polarity_and_identity():
    _, y, _ = pair()
    same = compare_signals(y, y, RATE)
    assert same["esr"] == 0.0 and same["null_db"] == -200.0 and same["lag_samples"] == 0
    late = np.concatenate([np.zeros(7, np.float32), y[:-7]])
    assert compare_signals(y, late, RATE)["lag_samples"] == 7
    flipped = compare_signals(y, -y, RATE)
    assert flipped["polarity_inverted"] and flipped["esr"] == pytest.approx(4.0, rel=1e-5)


def write_pair(tmp_path, target, prediction, rate=RATE, prediction_rate=None):
    sf.write(tmp_path / "target.wav", target, rate, subtype="FLOAT")
    sf.write(tmp_path / "pred.wav", prediction, prediction_rate or rate, subtype="FLOAT")
    return str(tmp_path / "target.wav"), str(tmp_path / "pred.wav")


@pytest.mark.slow
def test_compare_json_has_the_documented_keys(tmp_path):
    _, y, p = pair()
    target, pred = write_pair(tmp_path, y, p)
    result = run_module("ampnet.compare", target, pred, "--json", "-o", str(tmp_path / "c.png"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in (
        "esr",
        "esr_pre_emphasis",
        "mrstft",
        "null_db",
        "lufs_target",
        "lufs_prediction",
        "lag_samples",
        "polarity_inverted",
    ):
        assert key in data
    expected = float(np.sum((y - p) ** 2) / np.sum(y**2))
    assert data["esr"] == pytest.approx(expected, rel=1e-4)
    assert data["lag_samples"] == 0 and data["polarity_inverted"] is False
    assert (tmp_path / "c.png").stat().st_size > 10_000


@pytest.mark.slow
def test_compare_warns_about_misalignment_and_align_fixes_it(tmp_path):
    _, y, _ = pair()
    shifted = -np.concatenate([np.zeros(12, np.float32), y[:-12]])
    target, pred = write_pair(tmp_path, y, shifted)
    raw = run_module("ampnet.compare", target, pred, "--json")
    assert raw.returncode == 0
    assert "12 samples" in raw.stderr and "inverted polarity" in raw.stderr
    fixed = run_module("ampnet.compare", target, pred, "--json", "--align")
    data = json.loads(fixed.stdout)
    assert data["esr"] < 1e-10 and data["lag_samples"] == 0
    assert "shifted by 12 samples, polarity flipped" in fixed.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", ["rate", "length"])
def test_compare_refuses_mismatches_clearly(case, tmp_path):
    _, y, p = pair()
    target, pred = write_pair(
        tmp_path,
        y,
        p[:-50] if case == "length" else p,
        prediction_rate=44100 if case == "rate" else None,
    )
    result = run_module("ampnet.compare", target, pred)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "pred.wav" in line and "--align" in line


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium not installed (make test installs it)"
)
def test_html_report_renders_and_its_audio_loads_in_chromium(tmp_path):
    x, y, p = pair(3.0)
    write_report(y, p, RATE, html=tmp_path / "report.html", di=x, title="rendering test")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = (tmp_path / "report.html").as_uri()
    dom = subprocess.run(
        ["chromium", *flags, "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'data-loaded="4" data-failed="0" data-total="4"' in dom, dom[-2000:]
    assert dom.count('data-duration="3"') == 4  # every player decoded its 3 s
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", *flags, "--window-size=1280,2000", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels[..., :3].std() > 0.05  # the page drew text, players and figures, not a blank


@pytest.mark.slow
def test_training_writes_report_and_logs_audio_to_tensorboard_and_wandb(tmp_path, make_pair):
    from .conftest import FAST

    inp, out = make_pair(seconds=3.0, sr=16000)
    run_dir = tmp_path / "run"
    args = [
        *FAST,
        "data=pair",
        "data.name=synthetic",
        f"data.input={inp}",
        f"data.output={out}",
        "logger=wandb",
        "callbacks.audio_examples.every_n_epochs=1",
        "callbacks.audio_examples.seconds=0.2",
        f"hydra.run.dir={run_dir}",
    ]
    result = run_module("ampnet.train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "report.png").stat().st_size > 10_000
    assert "<audio" in (run_dir / "report.html").read_text()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {"audio": set(), "images": set(), "scalars": set()}
    for events in (run_dir / "tensorboard").glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"audio": 0, "images": 0})
        acc.Reload()
        for kind in tags:
            tags[kind] |= set(acc.Tags()[kind])
    assert {"val/target", "val/prediction"} <= tags["audio"] and "val/comparison" in tags["images"]
    assert {"val/esr", "val/mrstft"} <= tags["scalars"]

    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    media = offline / "files" / "media"
    assert list(media.glob("audio/val/*.wav")) and list(media.glob("images/val/*.png"))
    history = next(offline.glob("run-*.wandb")).read_bytes()
    assert b"val/esr" in history and b"val/mrstft" in history


def test_summarize_sorts_runs_and_writes_table_files(tmp_path):
    for i, (model, val, test) in enumerate(
        [("lstm", 0.05, 0.06), ("wavenet", 0.01, 0.012), ("nano", 0.03, None)]
    ):
        run = tmp_path / f"{i}_demo_{model}"
        run.mkdir()
        (run / "metrics.json").write_text(
            json.dumps(
                {
                    "model_name": model,
                    "data_name": "demo",
                    "val_esr": val,
                    "test_esr": test,
                    "parameters": 100 * (i + 1),
                    "receptive_field": 4093,
                    "epochs": 3,
                    "train_seconds": 12.5,
                }
            )
        )
    result = run_module("ampnet.summarize", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "summary.md").read_text().splitlines()
    assert [line.split("|")[3].strip() for line in lines[2:]] == ["wavenet", "nano", "lstm"]
    assert (tmp_path / "summary.csv").read_text().startswith("run,data,model,parameters")
    assert (tmp_path / "summary.png").stat().st_size > 5_000
    assert "wavenet" in result.stdout
    empty = run_module("ampnet.summarize", str(tmp_path / "nothing"))
    assert empty.returncode == 2 and "no such folder" in empty.stderr
