"""The built-in demo capture is deterministic, sized as documented, and cached."""

from __future__ import annotations

import hashlib

import numpy as np
import soundfile as sf
from omegaconf import OmegaConf

from ampnet.data.demo import ensure_demo
from ampnet.data.synth import pluck, synth_di

from .conftest import REPO


def test_synth_di_is_deterministic_and_sounds_like_a_di():
    a, b = synth_di(seconds=12, seed=3), synth_di(seconds=12, seed=3)
    assert hashlib.sha256(a.tobytes()).digest() == hashlib.sha256(b.tobytes()).digest()
    assert not np.array_equal(a, synth_di(seconds=12, seed=4))
    assert a.dtype == np.float32 and len(a) == 12 * 48000
    assert abs(np.max(np.abs(a)) - 0.5) < 1e-6  # a hot DI, no clipping
    assert abs(float(a.mean())) < 1e-3  # no DC
    quiet = np.abs(a[: int(0.4 * 48000)]).max()
    assert quiet < 1e-3  # it opens with silence, like a reamp file


def test_pluck_decays_at_its_pitch():
    sr = 48000
    rng = np.random.default_rng(0)
    note = pluck(220.0, 1.0, rng, t60=0.5, brightness=0.8, sr=sr)
    early, late = np.abs(note[: sr // 10]).max(), np.abs(note[-sr // 10 :]).max()
    assert late < early * 10 ** (-40 / 20)  # 1 s of a 0.5 s T60: >= 40 dB down (60 dB ideal)
    seg = note[: sr // 4]
    lags = np.arange(sr // 500, sr // 100)  # 100-500 Hz
    corr = [np.dot(seg[:-lag], seg[lag:]) for lag in lags]
    period = lags[int(np.argmax(corr))]
    assert abs(period - sr / 220.0) <= 2  # the string repeats at its period


def test_demo_is_rendered_once_into_the_cache(tmp_path):
    cfg = OmegaConf.load(REPO / "conf" / "data" / "demo.yaml")
    rig = OmegaConf.to_container(cfg.rig)
    inp, out = ensure_demo(tmp_path, seconds=6, seed=0, rig=rig)
    x, sr = sf.read(inp, dtype="float32")
    y, _ = sf.read(out, dtype="float32")
    assert sr == 48000 and x.shape == y.shape == (6 * 48000,)
    assert np.max(np.abs(y)) < 1.0  # the rig's output does not clip
    # and another performance to score on, synthesised differently, through the same rig
    ux, _ = sf.read(inp.parent / "unseen_input.wav", dtype="float32")
    uy, _ = sf.read(inp.parent / "unseen_output.wav", dtype="float32")
    assert ux.shape == uy.shape and len(ux) > 15 * 48000 and np.max(np.abs(uy)) < 1.0
    assert not np.allclose(ux[: len(x)], x[: len(ux)])
    stamp = out.stat().st_mtime_ns
    assert ensure_demo(tmp_path, seconds=6, seed=0, rig=rig) == (inp, out)
    assert out.stat().st_mtime_ns == stamp  # cached, not rendered again
    other = ensure_demo(tmp_path, seconds=6, seed=0, rig={**rig, "drive_db": 10.0})
    assert other[1] != out  # a different rig gets its own cache entry
