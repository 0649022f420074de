"""Synthesised guitar: Karplus-Strong plucked strings played as lines, chords and chugs.

Used for the demo capture's DI and the reamp signal's training and validation music.
Everything is deterministic for a given random generator.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from ampnet.data.audio import DEFAULT_SAMPLE_RATE

# MIDI notes of the open strings (E2 A2 D3 G3 B3 E4) and a few chord shapes (frets per string, -1 = muted).
OPEN_STRINGS = np.array([40, 45, 50, 55, 59, 64])
CHORDS = [
    [0, 2, 2, 1, 0, 0],  # E
    [-1, 0, 2, 2, 2, 0],  # A
    [-1, -1, 0, 2, 3, 2],  # D
    [3, 2, 0, 0, 0, 3],  # G
    [-1, 3, 2, 0, 1, 0],  # C
    [0, 2, 2, 0, 0, 0],  # Em
    [-1, 0, 2, 2, 1, 0],  # Am
    [5, 7, 7, -1, -1, -1],  # A5 power chord
    [3, 5, 5, -1, -1, -1],  # G5
    [-1, 5, 7, 7, -1, -1],  # D5
]
PENTATONIC = [0, 3, 5, 7, 10]  # minor pentatonic intervals


def midi_to_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def pluck(
    freq: float,
    seconds: float,
    rng: np.random.Generator,
    t60: float,
    brightness: float,
    sr: int,
    pick: float | None = None,
    sign: float = 1.0,
) -> np.ndarray:
    """One Karplus-Strong string: ``y[n] = e[n] + g/2 (y[n-N] + y[n-N-1])``, unit-ish peak.

    ``t60`` is the decay time in seconds; ``brightness`` in (0, 1] low-passes the pick.
    Without ``pick`` the string starts from noise (bright: every harmonic equally
    strong); with ``pick`` (0 to 1, the plucking point along the string) it starts from
    the triangle a pick leaves, whose harmonics fall as 1/n^2 with a notch series set by
    the point, as a real plucked string's do, plus a little noise. ``sign`` -1 starts the
    string displaced the other way (an upstroke instead of a downstroke).
    """
    period = max(2, int(round(sr / freq)))
    n = int(seconds * sr)
    g = 10.0 ** (-3.0 * period / (sr * t60))
    if pick is None:
        excitation = rng.uniform(-1, 1, period)
    else:
        apex = min(period - 1, max(1, int(round(pick * period))))
        shape = np.interp(np.arange(period), [0, apex, period], [0.0, 1.0, 0.0])
        excitation = 2 * (shape - shape.mean()) + 0.05 * rng.uniform(-1, 1, period)
    excitation = sign * excitation
    excitation = scipy.signal.lfilter([brightness], [1, brightness - 1], excitation)
    y = np.zeros(n + period + 1)
    off = period + 1  # y[off + k] is output sample k; the front stays silent
    y[off : off + period] = excitation[: max(0, min(period, n))]
    for start in range(off + period, off + n, period):
        stop = min(start + period, off + n)
        k = stop - start
        y[start:stop] += (
            0.5
            * g
            * (
                y[start - period : start - period + k]
                + y[start - period - 1 : start - period - 1 + k]
            )
        )
    return y[off:]


def _add(buf: np.ndarray, at: int, sig: np.ndarray) -> None:
    end = min(len(buf), at + len(sig))
    if end > at:
        buf[at:end] += sig[: end - at]


def _release(sig: np.ndarray, at: int, sr: int, ms: float = 30.0) -> np.ndarray:
    """Damp a ringing note from sample ``at`` (the next note's onset) over ``ms``."""
    if at < len(sig):
        fade = np.exp(-np.arange(len(sig) - at) / (ms * 1e-3 * sr / 5))
        sig = sig.copy()
        sig[at:] *= fade
    return sig


def _pick(rng: np.random.Generator, realistic: bool) -> float | None:
    """Where a realistic pluck strikes the string (a tenth to a third of its length)."""
    return float(rng.uniform(0.1, 0.33)) if realistic else None


def _stroke_signs(rng: np.random.Generator, count: int, strokes: bool) -> np.ndarray:
    """Which way each of ``count`` picked notes displaces the string: all +1 (every pluck a
    downstroke, as versions 1 and 2 play), or with ``strokes`` as a player picks: alternate
    picking (down, up, down...) or, for a third of the phrases, downstrokes only, starting
    either way."""
    if not strokes:
        return np.ones(count)
    if rng.random() < 1 / 3:
        return np.full(count, 1.0)
    first = 1.0 if rng.random() < 0.5 else -1.0
    return first * (-1.0) ** np.arange(count)


def phrase_line(
    rng: np.random.Generator, sr: int, pick: bool = False, strokes: bool = False
) -> np.ndarray:
    """A single-note line: 4-10 notes of a minor pentatonic, legato (``pick``: plucks start
    from a pick's triangle, see :func:`pluck`; ``strokes``: up- and downstrokes, see
    :func:`_stroke_signs`)."""
    root = 40 + int(rng.integers(0, 8))
    notes = [
        root + 12 * int(rng.integers(0, 3)) + PENTATONIC[int(rng.integers(0, 5))]
        for _ in range(rng.integers(4, 11))
    ]
    lengths = rng.uniform(0.12, 0.6, len(notes))
    signs = _stroke_signs(rng, len(notes), strokes)
    total = int((lengths.sum() + 1.5) * sr)
    out = np.zeros(total)
    t = 0
    for note, length, sign in zip(notes, lengths, signs, strict=True):
        amp = rng.uniform(0.6, 1.0)
        sig = pluck(
            midi_to_hz(note),
            length + 1.5,
            rng,
            rng.uniform(0.8, 2.5),
            rng.uniform(0.3, 0.9),
            sr,
            _pick(rng, pick),
            sign,
        )
        sig = _release(sig, int(length * sr), sr)
        _add(out, t, amp * sig)
        t += int(length * sr)
    return out


def phrase_chords(
    rng: np.random.Generator, sr: int, pick: bool = False, strokes: bool = False
) -> np.ndarray:
    """Strummed chords: 2-5 strums, each string offset by a few milliseconds (``strokes``:
    an upstrum displaces the strings the other way from a downstrum)."""
    strums = int(rng.integers(2, 6))
    lengths = rng.choice([0.25, 0.5, 1.0, 1.5], strums)
    out = np.zeros(int((lengths.sum() + 2.5) * sr))
    t = 0
    for length in lengths:
        shape = CHORDS[int(rng.integers(0, len(CHORDS)))]
        capo = int(rng.integers(0, 5))
        down = rng.random() < 0.7
        gap = rng.uniform(0.006, 0.025)
        strings = [s for s in range(6) if shape[s] >= 0]
        sign = -1.0 if strokes and not down else 1.0
        for order, s in enumerate(strings if down else strings[::-1]):
            note = OPEN_STRINGS[s] + shape[s] + capo
            sig = pluck(
                midi_to_hz(note),
                length + 2.5,
                rng,
                rng.uniform(1.0, 3.0),
                rng.uniform(0.4, 0.95),
                sr,
                _pick(rng, pick),
                sign,
            )
            sig = _release(sig, int(length * sr), sr, ms=60.0)
            _add(out, t + int(order * gap * sr), rng.uniform(0.5, 0.9) * sig)
        t += int(length * sr)
    return out


def phrase_chugs(
    rng: np.random.Generator, sr: int, pick: bool = False, strokes: bool = False
) -> np.ndarray:
    """Palm-muted power-chord eighth notes: short decays, dark picks (``strokes``: as
    :func:`phrase_line`)."""
    bpm = rng.uniform(90, 170)
    step = 60.0 / bpm / 2
    count = int(rng.integers(6, 17))
    root = 40 + int(rng.integers(0, 6))
    signs = _stroke_signs(rng, count, strokes)
    out = np.zeros(int((count * step + 0.5) * sr))
    for i in range(count):
        amp = rng.uniform(0.5, 1.0) * (1.0 if i % 2 == 0 else 0.7)
        for interval in (0, 7, 12):
            sig = pluck(
                midi_to_hz(root + interval),
                0.5,
                rng,
                rng.uniform(0.08, 0.2),
                rng.uniform(0.15, 0.4),
                sr,
                _pick(rng, pick),
                signs[i],
            )
            _add(out, int((i * step + rng.uniform(0, 0.004)) * sr), amp * sig)
    return out


def synth_di(seconds: float = 90.0, seed: int = 0, sr: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
    """A deterministic reamp-style DI of ``seconds`` length, peaks near 0.5 like a hot DI."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    di = np.zeros(n)
    t = int(0.5 * sr)
    for level in (0.03, 0.12, 0.45):  # log sweeps 30 Hz - 12 kHz
        dur = 2.0
        tt = np.arange(int(dur * sr)) / sr
        sweep = scipy.signal.chirp(tt, 30.0, dur, 12000.0, method="logarithmic")
        sweep *= np.minimum(1.0, np.minimum(tt, dur - tt) / 0.01)
        _add(di, t, level * sweep)
        t += int((dur + 0.25) * sr)
    b, a = scipy.signal.butter(2, [60, 6000], btype="band", fs=sr)
    for level in (0.02, 0.08, 0.25, 0.5):  # band-limited noise bursts
        burst = scipy.signal.lfilter(b, a, rng.standard_normal(int(0.6 * sr)))
        burst *= level / np.max(np.abs(burst))
        _add(di, t, burst)
        t += int(0.85 * sr)
    makers = (phrase_line, phrase_chords, phrase_chugs)
    while t < n:
        phrase = makers[int(rng.integers(0, 3))](rng, sr)
        phrase *= rng.uniform(0.08, 0.5) / max(1e-9, np.max(np.abs(phrase)))
        _add(di, t, phrase)
        t += len(phrase) - int(rng.uniform(0.3, 1.2) * sr)
    # pickup and cable: a gentle roll-off above 5 kHz, no DC, and a faint noise floor
    di = scipy.signal.lfilter(*scipy.signal.butter(1, 5000, fs=sr), di)
    di = scipy.signal.lfilter(*scipy.signal.butter(1, 40, btype="high", fs=sr), di)
    di += 10 ** (-80 / 20) * rng.standard_normal(n)
    return (di * 0.5 / np.max(np.abs(di))).astype(np.float32)
