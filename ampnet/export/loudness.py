"""NAM's level metadata for a model: ``loudness`` and ``gain``, measured by rendering it."""

from __future__ import annotations

from importlib.resources import files as package_files

import numpy as np
import soundfile as sf

from ampnet.data.audio import DEFAULT_SAMPLE_RATE
from ampnet.data.synth import phrase_chords
from ampnet.stream import render


def loudness_input() -> tuple[np.ndarray, str]:
    """NAM's standard 1 s loudness input (from its package, when installed) or ampnet's own.

    NAM players normalise levels with the ``loudness`` it yields, so the same input
    gives values comparable with NAM-trained captures; ampnet's stand-in is a strummed
    chord at the same RMS (-15 dBFS), used only when NAM is not installed.
    """
    try:  # NAM is optional (the test and bench extras)
        with package_files("nam").joinpath("models/_resources/loudness_input.wav").open("rb") as f:
            audio, _ = sf.read(f, dtype="float32")
        return audio, "nam"
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        rate = DEFAULT_SAMPLE_RATE
        chord = phrase_chords(np.random.default_rng(7), rate)[:rate]
        chord = chord * (10 ** (-14.97 / 20) / np.sqrt(np.mean(chord**2)))
        return chord.astype(np.float32), "ampnet"


def loudness_and_gain(model) -> dict:
    """NAM's ``loudness`` (dB RMS of the output for the loudness input) and ``gain``
    (0..1: how much the output's level curve over input gains 0..1 bends like a compressor)."""
    x, source = loudness_input()

    def rms(gain: float) -> float:
        y = render(model, np.float32(gain) * x, threads=1)
        return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))

    levels = np.array([rms(g) for g in np.linspace(0.0, 1.0, 11)])
    square = levels[-1] * len(levels)  # full compression: every gain as loud as the loudest
    gain = (levels.sum() - 0.5 * square) / (0.5 * square) if square > 0 else 0.0
    return {
        "loudness": float(20 * np.log10(max(levels[-1], 1e-12))),
        "gain": float(np.clip(gain, 0.0, 1.0)),
        "loudness_input": source,
    }
