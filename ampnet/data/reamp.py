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

REAMP_VERSION = 3  # what ampnet.capture writes by default
VERSIONS = (1, 2, 3)
BLIP_TIMES = (0.5, 1.0, 1.5, 2.0)
BLIP_AMPLITUDE = 0.5
HEADER_SECONDS = 2.5
VALIDATION_SECONDS = 12.0
SAFETY_SAMPLES = (
    1  # shift one sample less than measured, so no output sample moves before its cause
)
GAP_SECONDS = 0.5  # silence on either side of the validation part


def guitar(rng: np.random.Generator, seconds: float, sr: int, version: int = 1) -> np.ndarray:
    """``seconds`` of the reamp signal's synthesised guitar, as version ``version`` plays it."""
    return _phrases(rng, seconds, sr, version)


def _phrases(rng: np.random.Generator, seconds: float, sr: int, version: int = 1) -> np.ndarray:
    if version >= 2:
        return _phrases_v2(rng, seconds, sr, strokes=version >= 3)
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


def _pickup(rng: np.random.Generator, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """A guitar pickup and cable as one filter: a resonant low-pass at 2.5-6 kHz (Q 0.7-2.5)
    after a 70 Hz high-pass; drawn anew for every phrase."""
    fc, q = rng.uniform(2500, min(6000, 0.4 * sr)), rng.uniform(0.7, 2.5)
    w = np.tan(np.pi * fc / sr)  # bilinear transform of 1 / (s^2 + s/q + 1)
    a0 = 1 + w / q + w * w
    b_lp = np.array([w * w, 2 * w * w, w * w]) / a0
    a_lp = np.array([1.0, 2 * (w * w - 1) / a0, (1 - w / q + w * w) / a0])
    b_hp, a_hp = scipy.signal.butter(1, 70, btype="high", fs=sr)
    return np.convolve(b_lp, b_hp), np.convolve(a_lp, a_hp)


def _loudest_rms(x: np.ndarray, window: int) -> float:
    """RMS of the loudest ``window``-sample stretch of ``x``: how loud the playing is."""
    if len(x) <= window:
        return float(np.sqrt(np.mean(x**2)))
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    return float(np.sqrt(np.max(energy[window:] - energy[:-window]) / window))


def _phrases_v2(
    rng: np.random.Generator, seconds: float, sr: int, strokes: bool = False
) -> np.ndarray:
    """Version 2's guitar: the version-1 phrases played the way a DI is recorded. Strings
    start from a pick's triangle (:func:`~ampnet.data.synth.pluck`; version 1's noise-started
    strings are as loud at 4 kHz as at 200 Hz, a real DI some 40 dB quieter), each phrase
    goes through its own pickup filter and is played at a level drawn from -28 to -10 dBFS
    RMS over its loudest half second (real playing recorded at a normal DI level sits
    around -24 there; version 1's phrases sat around -33, so loud playing was rare), peaks
    held under 0.9; each phrase starts as the last one's notes ring out, as playing is
    dense; a pickup's noise floor and a little hum run under it all.

    Version 3 (``strokes``) is version 2 picked both ways: in version 2 every string starts
    displaced the same way (a downstroke), so the DI is lopsided (skewness +0.70 over the
    training guitar where a real DI measures -0.16) and the gear's asymmetry is heard from
    one side only. Version 3
    alternates down- and upstrokes (:func:`~ampnet.data.synth.phrase_line`), strums up and
    down, and gives each phrase the polarity of a guitar wired either way."""
    n = int(seconds * sr)
    out = np.zeros(n)
    t = 0
    makers = (phrase_line, phrase_chords, phrase_chugs)
    while t < n:
        phrase = makers[int(rng.integers(0, 3))](rng, sr, pick=True, strokes=strokes)
        if strokes and rng.random() < 0.5:
            phrase = -phrase
        phrase = scipy.signal.lfilter(*_pickup(rng, sr), phrase)
        level = 10 ** (rng.uniform(-28, -10) / 20)
        phrase *= level / max(1e-9, _loudest_rms(phrase, sr // 2))
        phrase *= min(1.0, 0.9 / max(1e-9, np.max(np.abs(phrase))))
        end = min(n, t + len(phrase))
        out[t:end] += phrase[: end - t]
        t += max(int(0.3 * sr), len(phrase) - int(rng.uniform(1.2, 2.4) * sr))
    fade = min(n, int(0.05 * sr))
    out[-fade:] *= np.linspace(1, 0, fade)
    b, a = scipy.signal.butter(1, [60, min(8000, 0.45 * sr)], btype="band", fs=sr)
    floor = scipy.signal.lfilter(b, a, rng.standard_normal(n))
    floor *= 10 ** (-72 / 20) / np.sqrt(np.mean(floor**2))
    hum = 10 ** (-78 / 20) * np.sin(2 * np.pi * 60.0 * np.arange(n) / sr + rng.uniform(0, 6.3))
    return np.clip(out, -0.95, 0.95) + floor + hum


def reamp_signal(
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    minutes: float = 3.0,
    seed: int = 0,
    version: int = REAMP_VERSION,
) -> tuple[np.ndarray, dict]:
    """The reamp signal (float32) and its layout, deterministic for version and seed.

    Version 2 differs from version 1 in its guitar (:func:`_phrases_v2`) and
    in its noise bursts, which version 1 clipped at -10 dBFS RMS; version 3 from version 2
    in the direction its strings are picked; blips, sweeps and the layout are the same, so
    recordings of any version align and split alike."""
    if version not in VERSIONS:
        raise ValueError(f"reamp signal version {version}: there are versions {VERSIONS}")
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
    for level_db in (-40, -30, -20, -10) if version == 1 else (-40, -30, -20, -14):
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
    parts.append(("guitar (training)", _phrases(rng, train_seconds, sr, version)))
    parts.append(("silence", np.zeros(int(GAP_SECONDS * sr))))
    parts.append(
        (
            "guitar (validation)",
            _phrases(np.random.default_rng(seed + 1000), VALIDATION_SECONDS, sr, version),
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
        "ampnet_reamp_version": version,
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
