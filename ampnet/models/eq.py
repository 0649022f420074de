"""Parametric EQs for gray-box models: RBJ biquads realised as causal FIRs by frequency sampling.

A band is one biquad with the formulas of R. Bristow-Johnson's "Audio EQ Cookbook" (low and
high shelf, peaking, high and low pass). An :class:`EQ` is a cascade of bands whose
frequency, gain (dB) and Q are trainable parameters squashed into :data:`BAND_RANGES`. It
runs as a ``taps``-tap FIR: the cascade's response ``H(e^jw)`` sampled on the rFFT grid and
inverted, i.e. the biquads' impulse response folded modulo ``taps``. That FIR equals the
biquads exactly at every multiple of ``sample_rate / taps`` (DC included); in between it
differs by the folded tail, which decays as the slowest pole does (:func:`fir_error_db`).
Plain torch, differentiable end to end.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .layer_array import plain

# Each band type's frequency range (Hz at the model's sample_rate), Q range, and whether it
# has a gain. Low, narrow boosts ring longest and fold most: with 2048 taps at 48 kHz a
# +12 dB peak at 60 Hz strays 0.06 dB at Q 0.7 but 2.4 dB at Q 2.5 (fir_error_db).
BAND_RANGES = {
    "low_shelf": {"freq": (30.0, 1000.0), "q": (0.4, 1.0), "gain": True},
    "peak": {"freq": (60.0, 16000.0), "q": (0.3, 2.5), "gain": True},
    "high_shelf": {"freq": (500.0, 18000.0), "q": (0.4, 1.0), "gain": True},
    "highpass": {"freq": (20.0, 500.0), "q": (0.4, 1.0), "gain": False},
    "lowpass": {"freq": (500.0, 20000.0), "q": (0.4, 1.0), "gain": False},
}
BAND_GAIN_DB = 18.0  # every band's gain lies within +-18 dB


def biquad(kind: str, w0: torch.Tensor, q: torch.Tensor, gain_db: torch.Tensor):
    """RBJ cookbook coefficients ``(b, a)`` (two tensors of 3) of one band; ``w0`` in rad/sample."""
    cos, alpha = torch.cos(w0), torch.sin(w0) / (2 * q)
    if kind == "peak":
        amp = 10 ** (gain_db / 40)
        b = (1 + alpha * amp, -2 * cos, 1 - alpha * amp)
        a = (1 + alpha / amp, -2 * cos, 1 - alpha / amp)
    elif kind in ("low_shelf", "high_shelf"):
        amp, sign = 10 ** (gain_db / 40), 1.0 if kind == "low_shelf" else -1.0
        s, p, m = 2 * torch.sqrt(amp) * alpha, amp + 1, amp - 1
        b = (amp * (p - sign * m * cos + s), 2 * sign * amp * (m - sign * p * cos))
        b = (*b, amp * (p - sign * m * cos - s))
        a = (p + sign * m * cos + s, -2 * sign * (m + sign * p * cos), p + sign * m * cos - s)
    elif kind in ("lowpass", "highpass"):
        c = 1 - cos if kind == "lowpass" else 1 + cos
        b = (c / 2, c if kind == "lowpass" else -c, c / 2)
        a = (1 + alpha, -2 * cos, 1 - alpha)
    else:
        raise ValueError(f"unknown band type {kind!r}; use one of {list(BAND_RANGES)}")
    return torch.stack(b), torch.stack(a)


def biquad_response(b: torch.Tensor, a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``H(e^jw)`` of one biquad at the angular frequencies ``w`` (rad/sample), complex."""
    z = torch.polar(torch.ones_like(w), -w)  # z^-1
    return (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)


def _squash(value: float, lo: float, hi: float) -> float:
    """The raw parameter whose :func:`_unsquash` is ``value`` (log-scaled in ``lo..hi``)."""
    t = (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    t = min(max(t, 1e-4), 1 - 1e-4)
    return math.log(t / (1 - t))


def _unsquash(raw: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo * (hi / lo) ** torch.sigmoid(raw)


class EQ(nn.Module):
    """A cascade of RBJ bands: ``bands`` like ``[{type: peak, freq: 700, q: 0.7, gain_db: 0}]``
    (starting values; frequencies in Hz at ``sample_rate``), realised as ``taps``-tap FIRs."""

    def __init__(self, bands: Sequence[Mapping], taps: int, sample_rate: float):
        super().__init__()
        self.bands = [dict(band) for band in plain(list(bands))]
        if taps < 16 or taps % 2:
            raise ValueError(f"an EQ needs an even number of taps >= 16, got {taps}")
        self.taps, self.sample_rate = int(taps), float(sample_rate)
        self.ranges = []
        freqs, qs, gains = [], [], []
        for i, band in enumerate(self.bands):
            unknown = set(band) - {"type", "freq", "q", "gain_db"}
            if band.get("type") not in BAND_RANGES or unknown:
                raise ValueError(
                    f"EQ band {i} {band}: give type (one of {list(BAND_RANGES)}), freq, q"
                    " and, for shelves and peaks, gain_db"
                )
            spec = BAND_RANGES[band["type"]]
            lo, hi = spec["freq"][0], min(spec["freq"][1], 0.45 * self.sample_rate)
            freq, q = float(band.get("freq", math.sqrt(lo * hi))), float(band.get("q", 0.707))
            if spec["freq"][0] < freq < spec["freq"][1] and freq >= hi:  # a low sample rate
                freq = 0.9 * hi
            if not (lo < freq < hi and spec["q"][0] < q < spec["q"][1]):
                raise ValueError(
                    f"EQ band {i} ({band['type']}): freq {freq} Hz must lie within {lo:g}..{hi:g} "
                    f"and q {q} within {spec['q'][0]}..{spec['q'][1]}"
                )
            self.ranges.append(((lo, hi), spec["q"]))
            freqs.append(_squash(freq, lo, hi))
            qs.append(_squash(q, *spec["q"]))
            if spec["gain"]:
                if abs(float(band.get("gain_db", 0.0))) >= BAND_GAIN_DB:
                    raise ValueError(f"EQ band {i}: gain_db must lie within +-{BAND_GAIN_DB}")
                gains.append(math.atanh(float(band.get("gain_db", 0.0)) / BAND_GAIN_DB))
            elif band.get("gain_db"):
                raise ValueError(f"EQ band {i}: a {band['type']} has no gain_db")
        self.has_gain = [BAND_RANGES[b["type"]]["gain"] for b in self.bands]
        self.freq = nn.Parameter(torch.tensor(freqs))
        self.q = nn.Parameter(torch.tensor(qs))
        self.gain = nn.Parameter(torch.tensor(gains))

    @property
    def gain_bands(self) -> int:
        return sum(self.has_gain)

    def settings(self) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Each band as ``(type, w0 rad/sample, q, gain_db)`` (tensors; 0 dB for pass bands)."""
        out, g = [], iter(BAND_GAIN_DB * torch.tanh(self.gain))
        for i, band in enumerate(self.bands):
            (flo, fhi), (qlo, qhi) = self.ranges[i]
            w0 = 2 * math.pi * _unsquash(self.freq[i], flo, fhi) / self.sample_rate
            gain = next(g) if self.has_gain[i] else torch.zeros_like(w0)
            out.append((band["type"], w0, _unsquash(self.q[i], qlo, qhi), gain))
        return out

    def responses(self, w: torch.Tensor, shapes: bool = False) -> torch.Tensor:
        """(paths, len(w)) complex: the cascade's response and, with ``shapes``, each gain
        band's knob path ``H * S_b``, ``S_b = (H_b(g + 1 dB) / H_b(g) - 1) / (10^(1/20) - 1)``."""
        total, parts = 1.0, []
        for kind, w0, q, gain in self.settings():
            h = biquad_response(*biquad(kind, w0, q, gain), w)
            total = h * total
            if shapes and kind in ("peak", "low_shelf", "high_shelf"):
                step = biquad_response(*biquad(kind, w0, q, gain + 1.0), w) / h
                parts.append((step - 1) / (10 ** (1 / 20) - 1))
        return torch.stack([total] + [total * s for s in parts])

    def impulse_responses(self, shapes: bool = False) -> torch.Tensor:
        """(paths, taps): :meth:`responses` on the rFFT grid, inverted (frequency sampling)."""
        ref = self.freq
        w = torch.arange(self.taps // 2 + 1, dtype=ref.dtype, device=ref.device)
        return torch.fft.irfft(self.responses(w * (2 * math.pi / self.taps), shapes), self.taps)

    def describe(self, sample_rate: float) -> dict:
        """Each band's type, frequency (Hz at ``sample_rate``), Q and gain (dB); the taps and
        how far (dB) the FIR strays from the biquads (:func:`fir_error_db`)."""
        bands = []
        with torch.no_grad():
            for kind, w0, q, gain in self.settings():
                band = {"type": kind, "freq_hz": float(w0) * sample_rate / (2 * math.pi)}
                band["q"] = float(q)
                if BAND_RANGES[kind]["gain"]:
                    band["gain_db"] = float(gain)
                bands.append(band)
        return {"taps": self.taps, "fir_error_db": fir_error_db(self, 500), "bands": bands}


def fir_error_db(eq: EQ, points: int = 2000) -> float:
    """Largest |dB| difference between ``eq``'s FIR and its biquads, 20 Hz to 0.45 fs (log grid)."""
    eq = copy.deepcopy(eq).double()
    f = np.geomspace(20.0, 0.45 * eq.sample_rate, points)
    w = torch.tensor(2 * np.pi * f / eq.sample_rate, dtype=torch.float64)
    with torch.no_grad():
        exact = eq.responses(w)[0].abs().numpy()
        taps = eq.impulse_responses()[0].numpy()
    fir = np.abs(np.exp(-1j * np.outer(w.numpy(), np.arange(len(taps)))) @ taps)
    return float(np.max(np.abs(20 * np.log10(fir / exact))))
