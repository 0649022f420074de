"""How close a prediction is to its target, in the numbers engineers use.

ESR (plain and pre-emphasised) and MR-STFT come from :mod:`ampnet.losses`, so a
report and a training run measure the same thing. Loudness is ITU-R BS.1770-4
integrated loudness (K-weighting, 400 ms blocks, absolute and relative gates).
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import torch

from ampnet.data.align import estimate_lag
from ampnet.losses import MultiResolutionSTFT, PreEmphasis, esr

SILENCE_DB = -200.0
AUDIBLE_HZ = 20.0  # the lower edge of hearing


def db(power_ratio: float) -> float:
    """10 log10 of a power ratio, floored at -200 dB for silence."""
    return float(10 * np.log10(power_ratio)) if power_ratio > 0 else SILENCE_DB


def k_weighting(sample_rate: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770's two K-weighting biquads (high shelf, then high-pass) at any rate.

    Derived from the filters' analogue parameters, as libebur128 does; at 48 kHz they
    equal the coefficients printed in the standard.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = np.tan(np.pi * f0 / sample_rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf_b = (
        np.array([(vh + vb * k / q + k * k), 2 * (k * k - vh), (vh - vb * k / q + k * k)]) / a0
    )
    shelf_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    f0, q = 38.13547087602444, 0.5003270373238773
    k = np.tan(np.pi * f0 / sample_rate)
    a0 = 1 + k / q + k * k
    hp_b = np.array([1.0, -2.0, 1.0])
    hp_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return [(shelf_b, shelf_a), (hp_b, hp_a)]


def integrated_loudness(audio: np.ndarray, sample_rate: float) -> float:
    """BS.1770-4 integrated loudness of a mono signal in LUFS (-200 when silent or too short)."""
    x = np.asarray(audio, dtype=np.float64)
    for b, a in k_weighting(sample_rate):
        x = scipy.signal.lfilter(b, a, x)
    block, step = int(round(0.4 * sample_rate)), int(round(0.1 * sample_rate))
    if len(x) < block:
        return SILENCE_DB
    squares = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, len(x) - block + 1, step)
    z = (squares[starts + block] - squares[starts]) / block
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10 * np.log10(z)
    z = z[levels > -70.0]
    if z.size == 0:
        return SILENCE_DB
    relative_gate = -0.691 + 10 * np.log10(z.mean()) - 10.0
    with np.errstate(divide="ignore"):
        z = z[-0.691 + 10 * np.log10(z) > relative_gate]
    return float(-0.691 + 10 * np.log10(z.mean()))


def peak_dbfs(audio: np.ndarray) -> float:
    return db(float(np.max(np.abs(audio))) ** 2) if len(audio) else SILENCE_DB


def esr_audible(
    target: np.ndarray, prediction: np.ndarray, sample_rate: int, hz: float = AUDIBLE_HZ
) -> float:
    """ESR of what can be heard: both signals through a zero-phase high-pass at ``hz``
    (4th-order Butterworth, forwards and backwards), so DC and sub-sonic drift, which a
    plain ESR counts in full and no one hears, are left out."""
    sos = scipy.signal.butter(4, hz, btype="highpass", fs=sample_rate, output="sos")
    y = scipy.signal.sosfiltfilt(sos, np.asarray(target, np.float64))
    y_hat = scipy.signal.sosfiltfilt(sos, np.asarray(prediction, np.float64))
    energy = float(np.sum(y**2))
    return float(np.sum((y - y_hat) ** 2) / energy) if energy > 0 else float("nan")


# Where an error sits: the bands ``esr_by_band`` splits the ESR into, (low, high) in Hz; the
# last (high None) runs to Nyquist. Below 20 Hz is DC and drift no one hears; the guitar's
# fundamentals start at 82 Hz; most of a drive's tone is 100 Hz - 6 kHz; above 6 kHz is
# fizz and aliasing.
_EDGES = (0.0, 20.0, 100.0, 500.0, 2000.0, 6000.0, 12000.0)
ESR_BANDS: tuple[tuple[float, float | None], ...] = tuple(
    zip(_EDGES, [*_EDGES[1:], None], strict=True)
)


def band_key(lo: float, hi: float | None) -> str:
    def hz(f: float) -> str:
        return f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"

    return f"esr_{hz(lo)}_{hz(hi)}hz" if hi is not None else f"esr_{hz(lo)}hz_up"


ESR_BAND_KEYS = tuple(band_key(lo, hi) for lo, hi in ESR_BANDS)


def esr_by_band(target: np.ndarray, prediction: np.ndarray, sample_rate: int) -> dict[str, float]:
    """The plain ESR split by frequency (``ESR_BANDS``): each band's error energy over the
    target's whole energy, so the bands add up to the ESR. Says whether a capture's error is
    DC drift, the low strings, the body of the tone or the fizz above 6 kHz."""
    error = np.fft.rfft(np.asarray(target, np.float64) - np.asarray(prediction, np.float64))
    energy = float(np.sum(np.asarray(target, np.float64) ** 2))
    freqs = np.fft.rfftfreq(len(target), 1.0 / sample_rate)
    # Parseval for a real signal's one-sided spectrum: DC and (even lengths) Nyquist once,
    # every other bin twice.
    weight = np.full(len(freqs), 2.0)
    weight[0] = 1.0
    if len(target) % 2 == 0:
        weight[-1] = 1.0
    power = weight * np.abs(error) ** 2 / max(len(target), 1)
    out = {}
    for key, (lo, hi) in zip(ESR_BAND_KEYS, ESR_BANDS, strict=True):
        in_band = (freqs >= lo) & (freqs < (np.inf if hi is None else hi))
        band_error = float(np.sum(power[in_band]))
        out[key] = band_error / energy if energy > 0 else float("nan")
    return out


def compare_signals(target: np.ndarray, prediction: np.ndarray, sample_rate: int) -> dict:
    """Every metric of ``ampnet.compare`` for two equal-length mono signals, as one flat dict."""
    y = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))[None, None]
    y_hat = torch.from_numpy(np.ascontiguousarray(prediction, dtype=np.float32))[None, None]
    pre, stft = PreEmphasis(), MultiResolutionSTFT()  # the training losses' defaults
    with torch.no_grad():
        plain = float(esr(y_hat, y))
        emphasised = float(esr(pre(y_hat), pre(y)))
        mrstft = float(stft(y_hat, y)) if y.shape[-1] >= stft.min_length else float("nan")
    alignment = estimate_lag(target, prediction, max_lag=int(0.05 * sample_rate))
    residual = np.asarray(target, np.float64) - np.asarray(prediction, np.float64)
    lufs_target = integrated_loudness(target, sample_rate)
    lufs_prediction = integrated_loudness(prediction, sample_rate)
    return {
        "esr": plain,
        **esr_by_band(target, prediction, sample_rate),
        "esr_pre_emphasis": emphasised,
        "esr_audible": esr_audible(target, prediction, sample_rate),
        "mrstft": mrstft,
        "null_db": db(plain),
        "residual_dbfs": db(float(np.mean(residual**2))),
        "lufs_target": lufs_target,
        "lufs_prediction": lufs_prediction,
        "lufs_difference": lufs_prediction - lufs_target,
        "peak_target_dbfs": peak_dbfs(target),
        "peak_prediction_dbfs": peak_dbfs(prediction),
        "dc_target": float(np.mean(target)),
        "dc_prediction": float(np.mean(prediction)),
        "lag_samples": alignment.lag,
        "polarity_inverted": alignment.inverted,
        "correlation": alignment.correlation,
        "sample_rate": int(sample_rate),
        "seconds": len(target) / sample_rate,
    }


def alignment_warnings(metrics: dict) -> list[str]:
    """What in ``metrics`` makes every other number meaningless, in words."""
    warnings = []
    if metrics["lag_samples"] != 0:
        ms = 1000 * metrics["lag_samples"] / metrics["sample_rate"]
        late = "late" if metrics["lag_samples"] > 0 else "early"
        warnings.append(
            f"the prediction is {abs(metrics['lag_samples'])} samples ({abs(ms):.2f} ms) {late}; "
            "the ESR counts that as error (use --align to line them up)"
        )
    if metrics["polarity_inverted"]:
        warnings.append(
            "the prediction has inverted polarity; the ESR counts that as error (--align flips it)"
        )
    return warnings
