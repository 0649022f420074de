"""The comparison figure: where and how a prediction differs from its target."""

from __future__ import annotations

import numpy as np
import scipy.signal
from matplotlib.figure import Figure

FRAME = 1024  # samples per error-energy frame (21 ms at 48 kHz)


def _frame_power(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    return np.mean(np.asarray(x[: n * FRAME], np.float64).reshape(n, FRAME) ** 2, axis=1)


def _to_db(power: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.maximum(power, 1e-20))


def pick_windows(target: np.ndarray, prediction: np.ndarray) -> tuple[int, int]:
    """Frame indices of the largest error and of a typical one (median ESR among audible frames)."""
    err = _frame_power(target - prediction)
    sig = _frame_power(target)
    worst = int(np.argmax(err))
    audible = np.flatnonzero(sig > 10 ** (-50 / 10))
    if audible.size == 0:
        return worst, worst
    ratio = err[audible] / sig[audible]
    typical = int(audible[np.argsort(ratio)[len(ratio) // 2]])
    return worst, typical


def comparison_figure(
    target: np.ndarray,
    prediction: np.ndarray,
    sample_rate: int,
    metrics: dict,
    title: str = "",
    fig=None,
):
    """A matplotlib figure: two waveform close-ups, three spectrograms on one scale, error over time.

    Drawn on ``fig`` (e.g. from pyplot, to show it) or on a new backend-free Figure.
    """
    if fig is None:
        fig = Figure()
    fig.set_size_inches(13, 14)
    fig.set_layout_engine("constrained")
    grid = fig.add_gridspec(5, 2, height_ratios=[1, 1, 1, 1, 1.1])
    error = target - prediction
    worst, typical = pick_windows(target, prediction)
    for col, (frame, label) in enumerate(((worst, "largest error"), (typical, "typical error"))):
        ax = fig.add_subplot(grid[0, col])
        lo = max(0, frame * FRAME - FRAME // 2)
        hi = min(len(target), lo + 2 * FRAME)
        t_ms = 1000 * np.arange(lo, hi) / sample_rate
        ax.plot(t_ms, target[lo:hi], color="black", lw=1.2, label="target")
        ax.plot(t_ms, prediction[lo:hi], color="tab:orange", lw=1.0, ls="--", label="prediction")
        ax.plot(t_ms, error[lo:hi], color="tab:red", lw=0.8, alpha=0.8, label="error")
        ax.set_title(f"Waveforms at the {label} ({lo / sample_rate:.2f} s)")
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("amplitude (full scale = 1)")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)

    nperseg = 2048 if sample_rate >= 32000 else 1024
    spectra = []
    for signal in (target, prediction, error):
        f, t, s = scipy.signal.spectrogram(
            signal, fs=sample_rate, nperseg=nperseg, noverlap=nperseg * 3 // 4
        )
        spectra.append(10 * np.log10(np.maximum(s, 1e-20)))
    top = float(np.max(spectra[0]))
    for row, (name, s) in enumerate(
        zip(("target", "prediction", "difference (target - prediction)"), spectra, strict=True)
    ):
        ax = fig.add_subplot(grid[1 + row, :] if row < 2 else grid[3, :])
        mesh = ax.pcolormesh(t, f / 1000, s, shading="auto", cmap="magma", vmin=top - 100, vmax=top)
        ax.set_title(f"Spectrogram: {name}")
        ax.set_ylabel("frequency (kHz)")
        ax.set_xlabel("time (s)")
        fig.colorbar(mesh, ax=ax, label="power (dB, same scale)", pad=0.01)

    ax = fig.add_subplot(grid[4, :])
    frames_t = (np.arange(len(target) // FRAME) + 0.5) * FRAME / sample_rate
    sig_db, err_db = _to_db(_frame_power(target)), _to_db(_frame_power(error))
    ax.plot(frames_t, sig_db, color="black", lw=1, label="target level")
    ax.plot(frames_t, err_db, color="tab:red", lw=1, label="error level")
    ax.fill_between(frames_t, err_db, -120, color="tab:red", alpha=0.15)
    ax.set_ylim(max(-120, float(np.percentile(err_db, 1)) - 10), max(0.0, float(sig_db.max()) + 5))
    ax.set_title(f"Error energy over time ({1000 * FRAME / sample_rate:.0f} ms frames)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("level (dBFS)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)

    headline = (
        f"ESR {metrics['esr']:.4g}   pre-emphasised ESR {metrics['esr_pre_emphasis']:.4g}   "
        f"null {metrics['null_db']:.1f} dB   loudness difference {metrics['lufs_difference']:+.2f} LU   "
        f"lag {metrics['lag_samples']} samples{'   POLARITY INVERTED' if metrics['polarity_inverted'] else ''}"
    )
    fig.suptitle(f"{title}\n{headline}" if title else headline, fontsize=12)
    return fig


def blocks_figure(curves: dict, title: str = "", fig=None):
    """What a gray-box model's blocks do (``model.curves(rate)``): both EQs' magnitudes
    (biquads solid, the FIR that runs dashed), the static nonlinearity, the cabinet FIR."""
    if fig is None:
        fig = Figure()
    fig.set_size_inches(12, 8)
    fig.set_layout_engine("constrained")
    f = curves["frequency_hz"]
    for position, key, name in (
        (1, "pre_eq", "Pre-EQ"),
        (2, "post_eq", "Post-EQ"),
        (4, "cab", "Cabinet FIR"),
    ):
        ax = fig.add_subplot(2, 2, position)
        if curves.get(f"{key}_db") is None:
            ax.text(0.5, 0.5, f"no {name[0].lower()}{name[1:]}", ha="center", va="center")
            ax.set_axis_off()
            continue
        ax.semilogx(f, curves[f"{key}_db"], color="black", label="biquads")
        if f"{key}_fir_db" in curves:
            ax.semilogx(f, curves[f"{key}_fir_db"], color="tab:orange", ls="--", label="FIR")
            ax.legend(loc="lower left", fontsize=8)
        ax.set_title(f"{name} magnitude")
        ax.set_xlabel(f"frequency (Hz at a {curves['sample_rate']:g} Hz sample rate)")
        ax.set_ylabel("gain (dB)")
        ax.grid(alpha=0.3, which="both")
    ax = fig.add_subplot(2, 2, 3)
    ax.plot(curves["nonlinearity_in"], curves["nonlinearity_out"], color="black")
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_title("Static nonlinearity: f(x) - f(0)")
    ax.set_xlabel("input (after the pre-EQ and input gain)")
    ax.set_ylabel("output")
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig
