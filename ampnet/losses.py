"""Losses for amp models; every signal is ``(batch, channels, time)``.

- :func:`esr`: error-to-signal ratio, ``sum((y - y_hat)^2) / sum(y^2)`` (Wright &
  Välimäki, "Perceptual loss function for neural modelling of audio systems", ICASSP
  2020). ESR 0.01 means the error is 20 dB below the signal. Sums run over the whole
  batch: a per-item ratio lets near-silent training segments (a tiny denominator)
  dominate the gradient.
- ``nmse`` (an :class:`AmpLoss` term): squared error per sample over the *training
  region's* mean power, a constant. Its expectation over batches is the region's ESR,
  the number validation reports; a per-batch ESR instead divides by each batch's own
  power, which makes quiet batches weigh more and small batches noisy.
- :func:`dc_loss`: the same paper's DC term, ``mean(y - y_hat)^2 / mean(y^2)``.
- :class:`PreEmphasis`: the paper's pre-emphasis filters (first-order high-pass, or an
  A-weighting-like FIR) applied to both signals before a loss.
- :class:`MultiResolutionSTFT`: auraloss' spectral-convergence + log-magnitude loss over
  several STFT sizes (Yamamoto et al., Parallel WaveGAN), with NAM's resolutions.
- :class:`AmpLoss`: the weighted sum used for training, one named term per entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import auraloss
import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-8


def esr(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Error-to-signal ratio over the whole batch: ``sum (y-ŷ)² / sum y²``."""
    return (y - y_hat).pow(2).sum() / (y.pow(2).sum() + EPS)


def mse(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every sample."""
    return F.mse_loss(y_hat, y)


def dc_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Normalised DC error: each item's mean error squared, over the batch's mean power."""
    num = (y - y_hat).mean(dim=-1).pow(2).mean()
    return num / (y.pow(2).mean() + EPS)


def a_weighting_fir(sample_rate: float, taps: int = 255) -> np.ndarray:
    """Linear-phase FIR whose magnitude follows the A-weighting curve (0 dB at 1 kHz).

    The analogue IEC 61672 curve is mapped to digital with the bilinear transform and
    its magnitude sampled on a grid, then matched by frequency sampling (``firwin2``).
    """
    f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217
    poles = -2 * np.pi * np.array([f1, f1, f4, f4, f3, f2])
    z, p, k = scipy.signal.bilinear_zpk(np.zeros(4), poles, 1.0, fs=sample_rate)
    freqs = np.linspace(0, sample_rate / 2, 512)
    _, h = scipy.signal.freqz_zpk(z, p, k, worN=freqs, fs=sample_rate)
    _, h1k = scipy.signal.freqz_zpk(z, p, k, worN=[1000.0], fs=sample_rate)
    gain = np.abs(h) / np.abs(h1k[0])
    return scipy.signal.firwin2(taps, freqs, gain, fs=sample_rate).astype(np.float32)


class PreEmphasis(nn.Module):
    """Filter ``(batch, channels, time)`` signals before a loss; output is shorter by ``taps - 1``.

    ``kind="hp"``: ``y[n] = x[n] - coef * x[n-1]``, the first-order high-pass NAM and the
    paper use (coef 0.85 at 44.1/48 kHz). ``kind="aw"``: an A-weighting-like FIR.
    """

    def __init__(
        self, kind: str = "hp", coef: float = 0.85, sample_rate: float = 48000, taps: int = 255
    ):
        super().__init__()
        if kind == "hp":
            kernel = np.array([-coef, 1.0], dtype=np.float32)  # conv1d correlates: newest tap last
        elif kind == "aw":
            kernel = a_weighting_fir(sample_rate, taps)[::-1].copy()
        else:
            raise ValueError(f"unknown pre-emphasis kind {kind!r}; use 'hp' or 'aw'")
        self.kind = kind
        self.register_buffer("kernel", torch.from_numpy(kernel).view(1, 1, -1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        return F.conv1d(x.reshape(b * c, 1, t), self.kernel).reshape(b, c, -1)


class MultiResolutionSTFT(nn.Module):
    """auraloss' multi-resolution STFT loss at NAM's resolutions (FFT 1024/2048/512)."""

    def __init__(
        self,
        fft_sizes: tuple[int, ...] = (1024, 2048, 512),
        hop_sizes: tuple[int, ...] = (120, 240, 50),
        win_lengths: tuple[int, ...] = (600, 1200, 240),
    ):
        super().__init__()
        self.loss = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=list(fft_sizes), hop_sizes=list(hop_sizes), win_lengths=list(win_lengths)
        )

    @property
    def min_length(self) -> int:
        """The shortest signal it can score: one frame of its largest FFT."""
        return max(self.loss.fft_sizes)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(y_hat, y)


TERMS = ("nmse", "nmse_pre", "esr", "esr_pre", "mse", "dc", "mrstft", "mrstft_pre")


class AmpLoss(nn.Module):
    """Weighted sum of named terms: ``weights={"esr": 1.0, "mrstft_pre": 2e-4}``.

    Terms: ``nmse`` (MSE over ``signal_power``, the training target's mean power, which
    training sets from the data), ``nmse_pre`` (the same on pre-emphasised signals, over
    ``pre_signal_power``), ``esr``, ``esr_pre`` (ESR of pre-emphasised signals),
    ``mse``, ``dc``, ``mrstft`` and ``mrstft_pre``. ``target_power(transform)`` (the data
    module's :meth:`~ampnet.data.datamodule.AudioDataModule.target_power`) supplies both
    powers: the training target's, and after this loss's pre-emphasis. ``forward`` returns
    the total and each weighted-in term's unweighted value, so every term can be logged.

    ``warmup`` (``{"steps": N, "weights": {...}}``) trains the first N optimiser steps on
    other weights. ``{"mrstft": 1.0}`` starts on the spectrum alone, which ignores phase:
    a recurrent model on a high-gain amp otherwise sits at ESR 1 (the dry signal), since
    from small random weights any waveform it tries costs more than silence (README,
    "Model families"); once it makes the right spectrum the waveform loss takes over.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        pre_emphasis: Mapping | None = None,
        sample_rate: float = 48000,
        signal_power: float | None = None,
        pre_signal_power: float | None = None,
        target_power: Callable[[nn.Module | None], float] | None = None,
        warmup: Mapping | None = None,
    ):
        super().__init__()
        self.weights = self._checked(weights)
        warmup = dict(warmup or {})
        self.warmup_steps = int(warmup.get("steps") or 0)
        self.warmup_weights = (
            self._checked(warmup.get("weights") or {}) if self.warmup_steps else {}
        )
        used = self.terms_used = frozenset(self.weights) | frozenset(self.warmup_weights)
        self.pre_emphasis = PreEmphasis(sample_rate=sample_rate, **dict(pre_emphasis or {}))
        if target_power is not None:  # calibrate from the data: the powers its terms need
            if "nmse" in used and signal_power is None:
                signal_power = target_power(None)
            if "nmse_pre" in used and pre_signal_power is None:
                pre_signal_power = target_power(self.pre_emphasis)
        if "nmse" in used and not (signal_power and signal_power > 0):
            raise ValueError(
                "the nmse term needs signal_power > 0: the training target's mean power"
            )
        if "nmse_pre" in used and not (pre_signal_power and pre_signal_power > 0):
            raise ValueError(
                "the nmse_pre term needs pre_signal_power > 0: the pre-emphasised training "
                "target's mean power"
            )
        self.signal_power = float(signal_power) if signal_power else None
        self.pre_signal_power = float(pre_signal_power) if pre_signal_power else None
        if {"mrstft", "mrstft_pre"} & used:
            self.mrstft = MultiResolutionSTFT()

    @staticmethod
    def _checked(weights: Mapping[str, float]) -> dict[str, float]:
        unknown = set(weights) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; choose from {TERMS}")
        weights = {k: float(v) for k, v in weights.items() if v}
        if not weights:
            raise ValueError("the loss needs at least one term with a non-zero weight")
        return weights

    @property
    def min_length(self) -> int:
        """The shortest segment every term can be computed on (STFTs need a full frame)."""
        if not hasattr(self, "mrstft"):
            return 1
        pre = "mrstft_pre" in self.terms_used
        return self.mrstft.min_length + (self.pre_emphasis.kernel.shape[-1] - 1 if pre else 0)

    def term(self, name: str, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The unweighted value of one term."""
        pre = name.endswith("_pre")
        if pre:
            y_hat, y, name = self.pre_emphasis(y_hat), self.pre_emphasis(y), name[: -len("_pre")]
        if name == "mrstft":
            return self.mrstft(y_hat, y)
        if name == "nmse":
            return mse(y_hat, y) / (self.pre_signal_power if pre else self.signal_power)
        return {"esr": esr, "mse": mse, "dc": dc_loss}[name](y_hat, y)

    def forward(
        self, y_hat: torch.Tensor, y: torch.Tensor, step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """y_hat: (batch, outputs, time) against y: (batch, 1, time); several outputs (the
        sizes of a slimmable model) are each held to the target, the terms their mean.
        ``step``: the optimiser steps taken so far (the warm-up's weights below its steps)."""
        y = y.expand_as(y_hat)
        warm = step is not None and step < self.warmup_steps
        weights = self.warmup_weights if warm else self.weights
        values = {name: self.term(name, y_hat, y) for name in weights}
        total = sum(weights[name] * value for name, value in values.items())
        return total, values
