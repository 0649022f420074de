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
