"""Lining two recordings up: their lag (cross-correlation) and relative polarity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal


@dataclass(frozen=True)
class Alignment:
    """``signal[n + lag] * polarity`` lines up with ``reference[n]``; ``correlation`` in [0, 1]."""

    lag: int
    polarity: int
    correlation: float

    @property
    def inverted(self) -> bool:
        return self.polarity < 0


def estimate_lag(
    reference: np.ndarray, signal: np.ndarray, max_lag: int | None = None
) -> Alignment:
    """The shift (positive: ``signal`` is late) and sign that best match ``signal`` to ``reference``.

    Normalised cross-correlation by FFT; the peak of its magnitude gives the lag, its
    sign the polarity, its height how alike the two are (1 = identical up to gain).
    """
    reference = np.asarray(reference, dtype=np.float64)
    signal = np.asarray(signal, dtype=np.float64)
    norm = np.sqrt(np.sum(reference**2) * np.sum(signal**2))
    if norm == 0:
        return Alignment(0, 1, 0.0)
    corr = scipy.signal.correlate(signal, reference, mode="full", method="fft") / norm
    lags = np.arange(-len(reference) + 1, len(signal))
    if max_lag is not None:
        keep = np.abs(lags) <= max_lag
        corr, lags = corr[keep], lags[keep]
    best = int(np.argmax(np.abs(corr)))
    return Alignment(int(lags[best]), 1 if corr[best] >= 0 else -1, float(abs(corr[best])))


def apply_alignment(
    reference: np.ndarray, signal: np.ndarray, alignment: Alignment
) -> tuple[np.ndarray, np.ndarray]:
    """Both signals cut to the samples they share once ``signal`` is shifted back by the lag
    (and its polarity flipped if inverted)."""
    lag = alignment.lag
    if lag >= 0:
        signal = signal[lag:]
    else:
        reference = reference[-lag:]
    n = min(len(reference), len(signal))
    return reference[:n], alignment.polarity * signal[:n]


def gcc_phat(reference: np.ndarray, signal: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The pure delay of ``signal`` against ``reference`` by phase-transform cross-correlation.

    Whitening the cross-spectrum keeps only phase, so filters (a cab, a mid hump) do
    not drag the peak away from the delay the way plain cross-correlation does.
    Returns the lag and how far its peak stands above the next best (>1; ~1: no clear delay).
    """
    n = 1 << int(np.ceil(np.log2(len(reference) + len(signal))))
    max_lag = max(1, min(max_lag, len(reference) - 1, len(signal) - 1))
    cross = np.fft.rfft(signal, n) * np.conj(np.fft.rfft(reference, n))
    cross /= np.abs(cross) + 1e-12 * np.max(np.abs(cross))
    g = np.abs(np.fft.irfft(cross, n))
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    g = np.concatenate([g[: max_lag + 1], g[-max_lag:]])
    best = int(np.argmax(g))
    others = g[np.abs(lags - lags[best]) > 3]
    ratio = float(g[best] / others.max()) if others.size and others.max() > 0 else float("inf")
    return int(lags[best]), ratio


def polarity_at(reference: np.ndarray, signal: np.ndarray, lag: int, sample_rate: int) -> int:
    """+1 or -1: the sign of the best linear fit ``signal[n + lag] ~ a * reference[n]`` between
    60 Hz and 6 kHz (where guitar, amp and cab all have their energy)."""
    hi = min(6000.0, 0.45 * sample_rate)
    b, a = scipy.signal.butter(2, [60.0, hi], btype="band", fs=sample_rate)
    ref = scipy.signal.lfilter(b, a, np.asarray(reference, np.float64))
    sig = scipy.signal.lfilter(b, a, np.asarray(signal, np.float64))
    ref, sig = apply_alignment(ref, sig, Alignment(lag, 1, 0.0))
    return 1 if float(np.dot(ref, sig)) >= 0 else -1
