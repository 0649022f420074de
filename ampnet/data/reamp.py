"""ampnet's reamp signal: what to play through the gear, and how to find its latency again.

Layout (seconds; the sidecar JSON written with it lists the same):

    0.0 - 2.5   silence with four calibration blips (one-sample impulses) at 0.5, 1.0, 1.5, 2.0
    2.5 - 3.0   silence
    3.0 -       log sine sweeps (20 Hz - 20 kHz) at -30, -18 and -6 dBFS, then noise bursts
                at -40, -30, -20 and -10 dBFS RMS
    then        synthesised guitar (plucked lines, strummed chords, palm-muted chugs) for training
    last 12 s   synthesised guitar the model never trains on: the validation region
    end         silence and four more blips, so latency drift shows up

The first 2.5 s never change, which is how ampnet recognises a recording of this
signal and measures latency from its blips, the way NAM does with its own file.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from ampnet.data.audio import DEFAULT_SAMPLE_RATE
from ampnet.data.synth import phrase_chords, phrase_chugs, phrase_line

REAMP_VERSION = 1
BLIP_TIMES = (0.5, 1.0, 1.5, 2.0)
BLIP_AMPLITUDE = 0.5
HEADER_SECONDS = 2.5
VALIDATION_SECONDS = 12.0
SAFETY_SAMPLES = (
    1  # shift one sample less than measured, so no output sample moves before its cause
)
GAP_SECONDS = 0.5  # silence on either side of the validation part


def _phrases(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    out = np.zeros(int(seconds * sr))
    t = 0
    makers = (phrase_line, phrase_chords, phrase_chugs)
    while t < len(out):
        phrase = makers[int(rng.integers(0, 3))](rng, sr)
        phrase *= rng.uniform(0.08, 0.5) / max(1e-9, np.max(np.abs(phrase)))
        end = min(len(out), t + len(phrase))
        out[t:end] += phrase[: end - t]
        t += len(phrase) - int(rng.uniform(0.3, 1.2) * sr)
    fade = min(len(out), int(0.05 * sr))
    out[-fade:] *= np.linspace(1, 0, fade)
    return out


def reamp_signal(
    sample_rate: int = DEFAULT_SAMPLE_RATE, minutes: float = 3.0, seed: int = 0
) -> tuple[np.ndarray, dict]:
    """The reamp signal (float32, peaks at 0.5) and its layout, deterministic for version and seed."""
    sr = sample_rate
    rng = np.random.default_rng(seed)
    parts: list[tuple[str, np.ndarray]] = []

    def blips() -> np.ndarray:
        header = np.zeros(int(HEADER_SECONDS * sr))
        for t in BLIP_TIMES:
            header[int(round(t * sr))] = BLIP_AMPLITUDE
        return header

    parts.append(("blips", blips()))
    parts.append(("silence", np.zeros(int(0.5 * sr))))
    dur = 3.0
    tt = np.arange(int(dur * sr)) / sr
    sweep = scipy.signal.chirp(tt, 20.0, dur, min(20000.0, 0.45 * sr), method="logarithmic")
    sweep *= np.minimum(1.0, np.minimum(tt, dur - tt) / 0.01)
    for level_db in (-30, -18, -6):
        parts.append((f"sweep {level_db} dBFS", 10 ** (level_db / 20) * sweep))
        parts.append(("silence", np.zeros(int(0.25 * sr))))
    b, a = scipy.signal.butter(1, [40, min(12000, 0.45 * sr)], btype="band", fs=sr)
    for level_db in (-40, -30, -20, -10):
        burst = scipy.signal.lfilter(b, a, rng.standard_normal(sr))
        parts.append(
            (
                f"noise {level_db} dBFS RMS",
                burst * 10 ** (level_db / 20) / np.sqrt(np.mean(burst**2)),
            )
        )
        parts.append(("silence", np.zeros(int(0.25 * sr))))
    used = sum(len(p) for _, p in parts) / sr
    train_seconds = max(10.0, minutes * 60 - used - VALIDATION_SECONDS - 1.0 - HEADER_SECONDS)
    parts.append(("guitar (training)", _phrases(rng, train_seconds, sr)))
    parts.append(("silence", np.zeros(int(GAP_SECONDS * sr))))
    parts.append(
        (
            "guitar (validation)",
            _phrases(np.random.default_rng(seed + 1000), VALIDATION_SECONDS, sr),
        )
    )
    parts.append(("silence", np.zeros(int(GAP_SECONDS * sr))))
    parts.append(("blips", blips()))

    layout, t = [], 0
    for name, part in parts:
        layout.append({"name": name, "start": t / sr, "end": (t + len(part)) / sr})
        t += len(part)
    audio = np.concatenate([p for _, p in parts])
    audio = np.clip(audio, -0.999, 0.999).astype(np.float32)
    validation = next(s for s in layout if s["name"] == "guitar (validation)")
    info = {
        "ampnet_reamp_version": REAMP_VERSION,
        "seed": seed,
        "sample_rate": sr,
        "seconds": len(audio) / sr,
        "blips": [t for t in BLIP_TIMES] + [layout[-1]["start"] + t for t in BLIP_TIMES],
        "validation": [validation["start"], validation["end"]],
        "layout": layout,
    }
    return audio, info


def reamp_regions(num_samples: int, sample_rate: int) -> dict[str, tuple[int, int]]:
    """The training and validation regions of a recording of the reamp signal, ``num_samples``
    long: validation is the guitar between the two last silences (the layout above, counted
    from the end, so it holds for every length and seed), training everything before it."""
    sr = sample_rate
    end = num_samples - int(HEADER_SECONDS * sr) - int(GAP_SECONDS * sr)
    start = end - int(VALIDATION_SECONDS * sr)
    return {"train": (0, start - int(GAP_SECONDS * sr)), "val": (start, end)}


def is_reamp_signal(x: np.ndarray, sample_rate: int) -> bool:
    """True when ``x`` starts with ampnet's blip header (within 16-bit rounding)."""
    n = int(HEADER_SECONDS * sample_rate)
    if len(x) < n:
        return False
    header = np.array(x[:n], dtype=np.float64)
    marks = [int(round(t * sample_rate)) for t in BLIP_TIMES]
    if np.any(np.abs(header[marks] - BLIP_AMPLITUDE) > 1e-3):
        return False
    header[marks] = 0.0
    return bool(np.max(np.abs(header)) < 1e-3)


def blip_latency(
    y: np.ndarray, sample_rate: int, times=BLIP_TIMES, lookahead: int = 1000, window: int = 10000
) -> tuple[int, list[int]]:
    """Latency in samples from the response to blips at ``times`` (the first sample that rises
    above the background of the 0.4 s before them), and each blip's own estimate; raises
    ValueError if none responds."""
    first = int(times[0] * sample_rate)
    background = float(
        np.max(np.abs(y[first - int(0.45 * sample_rate) : first - int(0.05 * sample_rate)]))
    )
    threshold = max(background + 3e-4, 1.01 * background)
    delays = []
    for t in times:
        start = int(round(t * sample_rate)) - lookahead
        scan = np.abs(y[start : start + lookahead + window])
        above = np.flatnonzero(scan > threshold)
        if above.size:
            delays.append(int(above[0]) - lookahead)
    if not delays:
        raise ValueError("no response to the calibration blips rose above the background")
    return int(np.median(delays)), delays
