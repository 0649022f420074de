"""The built-in demo capture: a synthetic reamp DI rendered through a pedalboard rig.

The DI (:func:`synth_di`) opens like a reamp file (silence, sine sweeps and noise
bursts at several levels), then plays synthesised guitar: Karplus-Strong plucked
strings in single-note lines, strummed chords and palm-muted chugs, with varied
dynamics. The rig (:func:`render_rig`) is a drive pedal into an amp-and-cab-like
chain; its settings live in ``conf/data/demo.yaml``. Both are deterministic for a
given seed, and rendered once into a cache folder keyed by their settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pedalboard as pb

from ampnet.data.audio import DEFAULT_SAMPLE_RATE, write_audio
from ampnet.data.datamodule import AudioDataModule
from ampnet.data.reamp import guitar
from ampnet.data.synth import synth_di

DEMO_VERSION = 2  # bump when the synthesis changes, so caches re-render
UNSEEN_SECONDS = 20.0


def render_rig(di: np.ndarray, rig: Mapping, sr: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Run the DI through the pedalboard rig described by ``rig`` (see conf/data/demo.yaml)."""
    board = pb.Pedalboard(
        [
            pb.Gain(gain_db=rig["input_gain_db"]),
            pb.HighpassFilter(cutoff_frequency_hz=rig["highpass_hz"]),
            pb.Distortion(drive_db=rig["drive_db"]),
            pb.LowpassFilter(cutoff_frequency_hz=rig["tone_hz"]),
            pb.Compressor(
                threshold_db=rig["compressor"]["threshold_db"],
                ratio=rig["compressor"]["ratio"],
                attack_ms=rig["compressor"]["attack_ms"],
                release_ms=rig["compressor"]["release_ms"],
            ),
            pb.HighpassFilter(cutoff_frequency_hz=rig["cab_highpass_hz"]),
            pb.PeakFilter(
                cutoff_frequency_hz=rig["cab_resonance_hz"], gain_db=rig["cab_resonance_db"], q=1.0
            ),
            pb.LowpassFilter(cutoff_frequency_hz=rig["cab_lowpass_hz"]),
            pb.LowpassFilter(cutoff_frequency_hz=rig["cab_lowpass_hz"]),
            pb.Gain(gain_db=rig["output_gain_db"]),
        ]
    )
    return board(di[None, :].astype(np.float32), sr)[0].astype(np.float32)


def unseen_di(seed: int, sr: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """Another performance for the demo rig, never trained on: synthesised differently from
    the training DI (the reamp signal's version-2 guitar: picked strings through a pickup,
    other phrases and levels), so the demo's score on it says how the capture holds up on
    playing it did not hear."""
    rng = np.random.default_rng(seed + 7919)
    quiet = np.zeros(int(0.5 * sr))
    return np.concatenate([quiet, guitar(rng, UNSEEN_SECONDS, sr, version=2)]).astype(np.float32)


def ensure_demo(
    cache_dir: str | Path, seconds: float, seed: int, rig: Mapping
) -> tuple[Path, Path]:
    """Render the demo pair, and the other performance it is scored on (``unseen_input.wav``,
    ``unseen_output.wav``), into ``cache_dir/<settings hash>/`` unless they are there;
    return (input, output)."""
    settings = _settings(seconds, seed, rig)
    folder = demo_folder(cache_dir, seconds, seed, rig)
    input_path, output_path = folder / "input.wav", folder / "output.wav"
    unseen_in, unseen_out = folder / "unseen_input.wav", folder / "unseen_output.wav"
    if not all(p.is_file() for p in (input_path, output_path, unseen_in, unseen_out)):
        di = synth_di(seconds, seed)
        write_audio(input_path, di, DEFAULT_SAMPLE_RATE)
        write_audio(output_path, render_rig(di, settings["rig"]), DEFAULT_SAMPLE_RATE)
        other = unseen_di(seed)
        write_audio(unseen_in, other, DEFAULT_SAMPLE_RATE)
        write_audio(unseen_out, render_rig(other, settings["rig"]), DEFAULT_SAMPLE_RATE)
        (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    return input_path, output_path


def _settings(seconds: float, seed: int, rig: Mapping) -> dict:
    return {"version": DEMO_VERSION, "seconds": seconds, "seed": seed, "rig": _plain(rig)}


def demo_folder(cache_dir: str | Path, seconds: float, seed: int, rig: Mapping) -> Path:
    """Where :func:`ensure_demo` keeps the demo recordings of these settings."""
    settings = _settings(seconds, seed, rig)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir) / key


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def demo_datamodule(cache_dir: str, seconds: float, seed: int, rig: Mapping, **kwargs):
    """The :class:`~ampnet.data.datamodule.AudioDataModule` over the demo pair, rendered on first use."""
    input_path, output_path = ensure_demo(cache_dir, seconds, seed, rig)
    kwargs.update(input=str(input_path), output=str(output_path))
    if not (kwargs.get("unseen") or {}).get("input"):
        folder = input_path.parent
        kwargs["unseen"] = {"input": str(folder / "unseen_input.wav"),
                            "output": str(folder / "unseen_output.wav")}  # fmt: skip
    return AudioDataModule(**kwargs)
