"""Aliasing: the inharmonic tones a model adds to a pure tone, in dB below its output.

A nonlinearity turns a tone at f0 into harmonics at k f0. In continuous time (the amp)
they stop at the ear's limit; in a model running at 48 kHz every harmonic above Nyquist
folds back to |k f0 - m fs|, a tone that is not a harmonic of the note: the "fizz" of a
digital capture, heard most on high, loud notes. A smooth nonlinearity (tanh, SiLU) has
harmonics that die off fast, so little folds back; a kink (ReLU, LeakyReLU, a hard
clip) has harmonics that fall off slowly, so much of it does.

The measure plays steady tones through the model (a few frequencies and levels), skips
the onset, and takes the spectrum of a whole number of the tone's periods (2 s of a
half-integer frequency: coherent sampling, so every harmonic, and every harmonic folded
back, lands exactly on a bin and no window smears it). Bins at a harmonic of the tone
(and DC) hold what a continuous-time system would also make; every other bin holds
aliasing (or noise, or anything else that is not a harmonic of the note). Within the
first tens of thousands of harmonics no folded one lands on a true one. Reported: the
power in those other bins as a fraction of the output's, in dB, for each tone, and the
worst of them. A linear model scores at the arithmetic's floor (about -140 dB in
float32); the same measure on the target gear, when it is itself a model, says how much
of the result the gear had in the first place.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TONES_HZ = (1234.5, 3210.5)  # near E6 (the top fret of the high string), and above it
LEVELS = (0.05, 0.3)  # peak amplitude: a soft note and a hard one, as a DI records them
FLOOR_DB = -150.0


def coherent_seconds(f0: float) -> int:
    """The shortest whole number of seconds (up to 8) holding a whole number of periods."""
    for seconds in range(1, 9):
        if abs(f0 * seconds - round(f0 * seconds)) < 1e-9:
            return seconds
    raise ValueError(f"tone {f0} Hz: choose a frequency with at most three binary decimals")


def tone_aliasing_db(output: np.ndarray, f0: float, sample_rate: int) -> float:
    """Inharmonic power over total power (dB) of ``output``, a steady response to a tone at f0.

    ``output`` is analysed over its last ``coherent_seconds(f0)`` seconds.
    """
    seconds = coherent_seconds(f0)
    n = int(seconds * sample_rate)
    if len(output) < n:
        raise ValueError(
            f"need {seconds} s of output for a {f0} Hz tone, got {len(output)} samples"
        )
    seg = np.asarray(output[-n:], dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(seg)) ** 2
    step = int(round(f0 * seconds))  # the tone's bin; its harmonics at multiples of it
    harmonic = np.zeros(len(spectrum), dtype=bool)
    harmonic[::step] = True
    total = spectrum.sum()
    ratio = spectrum[~harmonic].sum() / total if total > 0 else 0.0
    return float(max(FLOOR_DB, 10 * np.log10(ratio))) if ratio > 0 else FLOOR_DB


def aliasing_report(
    process: Callable[[np.ndarray], np.ndarray],
    sample_rate: int = 48_000,
    tones_hz: tuple[float, ...] = TONES_HZ,
    levels: tuple[float, ...] = LEVELS,
    settle: float = 0.5,
) -> dict:
    """Play each tone at each level through ``process`` (audio in, audio out, same length).

    Returns ``{"tones": [{"hz", "level", "aliasing_db"}, ...], "worst_db": ...}``; the first
    ``settle`` seconds of each output (the model settling) are not analysed.
    """
    rows = []
    for hz in tones_hz:
        if not 0 < hz < sample_rate / 2:
            raise ValueError(f"tone {hz} Hz is not below Nyquist ({sample_rate / 2} Hz)")
        t = np.arange(int((settle + coherent_seconds(hz)) * sample_rate)) / sample_rate
        for level in levels:
            x = (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)
            y = np.asarray(process(x), dtype=np.float64)
            rows.append({"hz": hz, "level": level,
                         "aliasing_db": tone_aliasing_db(y, hz, sample_rate)})  # fmt: skip
    return {"tones": rows, "worst_db": max(r["aliasing_db"] for r in rows)}
