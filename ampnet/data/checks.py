"""The checks a DI/amp pair must pass before it costs a training run, and its alignment.

:func:`check_pair` reads both files, refuses what cannot work with one clear error
(:class:`AmpnetError`: the file and the fix), finds the output's latency and polarity,
lines the pair up, and returns warnings for what is suspicious but usable. Every case
is listed, with its message, in the README's data-checks table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ampnet.data.align import Alignment, apply_alignment, estimate_lag, gcc_phat, polarity_at
from ampnet.data.audio import read_audio
from ampnet.data.audio import resample as resample_audio
from ampnet.data.reamp import SAFETY_SAMPLES, blip_latency, is_reamp_signal
from ampnet.errors import AmpnetError

SILENT_DBFS = -80.0  # peak below this: nothing was recorded
FULL_SCALE = 0.999  # a sample this close to 1.0 is clipped
CLIPPED_ERROR = 1e-3  # share of clipped output samples that ruins a capture (0.1 %)
DC_WARNING = 0.01  # mean sample value (-40 dBFS) worth a warning
MAX_PLAUSIBLE_LAG_MS = 50.0
UNRELATED_CORRELATION = 0.15  # below this at every lag, the output did not come from this input
INCONSISTENT_SAMPLES = 4  # lag estimates across the file that differ by more than this
LENGTH_TAIL_SECONDS = (
    1.0  # the output may run this much past the input (a reverb tail, a late stop)
)
CORRELATION_MARGIN = 8  # samples of a cross-correlation lag left for the model (filters delay too)


@dataclass
class PairCheck:
    """What the checks found; ``warnings`` are for the user, ``notes`` say what was done."""

    input: str
    output: str
    sample_rate: int
    seconds: float = 0.0
    levels: dict = field(default_factory=dict)
    clipped_fraction: float = 0.0
    lag_samples: int = 0
    shift_samples: int = 0
    lag_method: str = ""
    polarity_inverted: bool = False
    correlation: float = 0.0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _db(value: float) -> float:
    return float(20 * np.log10(value)) if value > 0 else -200.0


def _levels(x: np.ndarray) -> dict:
    return {
        "peak_dbfs": _db(float(np.max(np.abs(x)))),
        "rms_dbfs": _db(float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))),
        "dc": float(np.mean(x, dtype=np.float64)),
    }


def _consistent_lags(x: np.ndarray, y: np.ndarray, max_lag: int, rate: int) -> list[int]:
    """The delay of each quarter of the pair (quarters shorter than 4 s are skipped)."""
    n = min(len(x), len(y))
    quarter = n // 4
    if quarter < 4 * rate:
        return []
    lags = []
    for k in range(4):
        part = slice(k * quarter, (k + 1) * quarter)
        lag, ratio = gcc_phat(x[part], y[part], max_lag)
        if ratio > 1.2:
            lags.append(lag)
    return lags


def measure_latency(x: np.ndarray, y: np.ndarray, rate: int, check: PairCheck) -> int:
    """The output's lag behind the input: from ampnet's blips when the input is its reamp
    signal, else by phase-transform cross-correlation; consistency across the file is checked."""
    max_lag = rate  # one second
    if is_reamp_signal(x, rate):
        try:
            lag, delays = blip_latency(y, rate)
        except ValueError as err:
            raise AmpnetError(
                f"{check.output}: {err}; is the output recorded from the start of the reamp file?"
            ) from None
        check.lag_method = "blips"
        end_blips = [len(x) / rate - 2.5 + t for t in (0.5, 1.0, 1.5, 2.0)]
        spread = max(delays) - min(delays)
        try:
            end_lag, _ = blip_latency(y, rate, times=end_blips) if len(y) >= len(x) else (lag, [])
        except ValueError:
            end_lag = lag
        if spread > INCONSISTENT_SAMPLES or abs(end_lag - lag) > INCONSISTENT_SAMPLES:
            check.warnings.append(
                f"{check.output}: blip latencies disagree ({delays} at the start, {end_lag} at the end): "
                "clock drift between interfaces, or something time-based in the chain"
            )
        return lag
    check.lag_method = "cross-correlation"
    parts = _consistent_lags(x, y, max_lag, rate)
    if len(parts) < 2:
        return gcc_phat(x, y, max_lag)[0]
    if max(parts) - min(parts) > INCONSISTENT_SAMPLES:
        check.warnings.append(
            f"{check.output}: the lag is not the same across the file ({parts} samples by quarter): "
            "clock drift, an edit, or a time-based effect; check the recording"
        )
    return int(np.median(parts))


def check_pair(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    channel: int | str | None = None,
    latency: int | str | None = "auto",
    fix_polarity: bool = False,
    resample: bool = False,
) -> tuple[np.ndarray, np.ndarray, int, PairCheck]:
    """Read, check and align a pair: returns ``(input, output, sample_rate, PairCheck)``.

    ``latency``: ``"auto"`` measures it (and shifts one sample less, as NAM does),
    an integer forces that many samples, ``None`` or 0 leaves the pair as recorded.
    """
    inp, out = str(input_path), str(output_path)
    x, rate = read_audio(input_path, channel)
    y, out_rate = read_audio(output_path, channel)
    check = PairCheck(inp, out, rate)
    if out_rate != rate:
        if not resample:
            raise AmpnetError(
                f"{out}: {out_rate} Hz but the input is {rate} Hz; record both at one rate, "
                "or pass data.resample=true to resample the output with soxr"
            )
        y = resample_audio(y, out_rate, rate)
        check.notes.append(f"resampled {out} from {out_rate} Hz to {rate} Hz (soxr)")
    for path, signal, what in ((inp, x, "input"), (out, y, "output")):
        if _db(float(np.max(np.abs(signal)))) < SILENT_DBFS:
            raise AmpnetError(
                f"{path}: the {what} is silent (peak below {SILENT_DBFS:.0f} dBFS); check the recording"
            )
    clipped = float(np.mean(np.abs(y) >= FULL_SCALE))
    check.clipped_fraction = clipped
    if clipped > CLIPPED_ERROR:
        raise AmpnetError(
            f"{out}: {100 * clipped:.2f}% of the output samples are at full scale (clipped); "
            "record again with the interface's input gain lower"
        )
    alignment = estimate_lag(x, y, max_lag=rate)
    check.correlation = alignment.correlation
    if alignment.correlation < UNRELATED_CORRELATION:
        raise AmpnetError(
            f"{out}: does not look like a recording of {inp} (peak correlation {alignment.correlation:.2f} "
            "at every lag within 1 s); check that the files belong together"
        )

    if clipped > 0:
        count = int(np.sum(np.abs(y) >= FULL_SCALE))
        check.warnings.append(f"{out}: {count} output sample(s) touch full scale (clipping?)")
    if np.any(np.abs(x) >= FULL_SCALE):
        count = int(np.sum(np.abs(x) >= FULL_SCALE))
        check.warnings.append(
            f"{inp}: {count} DI sample(s) touch full scale; the model learns from a clipped DI"
        )
    check.levels = {"input": _levels(x), "output": _levels(y)}
    for path, what in ((inp, "input"), (out, "output")):
        if abs(check.levels[what]["dc"]) > DC_WARNING:
            check.warnings.append(
                f"{path}: DC offset of {check.levels[what]['dc']:+.3f}; a high-pass would remove it"
            )

    measured = measure_latency(x, y, rate, check) if latency == "auto" else int(latency or 0)
    if latency != "auto":
        check.lag_method = "given (data.latency)"
    check.lag_samples = measured
    ms = 1000.0 * measured / rate
    if abs(ms) > MAX_PLAUSIBLE_LAG_MS:
        check.warnings.append(
            f"{out}: the output lags by {measured} samples ({ms:.1f} ms), more than {MAX_PLAUSIBLE_LAG_MS:.0f} ms; "
            "check the recording or set data.latency"
        )
    if latency == "auto":
        # Shift a little less than measured: a causal model absorbs a few samples of delay,
        # but cannot predict a sample from input that comes after it. Blips give the onset
        # (NAM's one-sample margin); cross-correlation of music also sees filter delay.
        margin = SAFETY_SAMPLES if check.lag_method == "blips" else CORRELATION_MARGIN
        shift = measured - margin if measured > margin else min(measured, 0)
    else:
        shift = measured
    check.shift_samples = shift
    check.polarity_inverted = polarity_at(x, y, measured, rate) < 0
    polarity = -1 if (check.polarity_inverted and fix_polarity) else 1

    difference = len(y) - len(x)
    if difference < -abs(measured) or difference > abs(measured) + LENGTH_TAIL_SECONDS * rate:
        raise AmpnetError(
            f"{out}: {len(y)} samples ({len(y) / rate:.3f} s) but the input {inp} has {len(x)} "
            f"({len(x) / rate:.3f} s), more than the latency ({measured}) and a {LENGTH_TAIL_SECONDS:.0f} s tail "
            "explain; trim both to the same length"
        )
    x, y = apply_alignment(x, y, Alignment(shift, polarity, alignment.correlation))
    check.seconds = len(x) / rate
    check.notes.append(
        f"latency {measured} samples ({ms:.2f} ms at {rate} Hz, {check.lag_method}); "
        + (f"output shifted {shift} samples earlier" if shift else "pair left as recorded")
    )
    if check.polarity_inverted:
        check.notes.append(
            "output polarity is inverted"
            + (
                "; flipped (data.fix_polarity=true)"
                if fix_polarity
                else " (the model will learn it; data.fix_polarity=true flips it)"
            )
        )
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y, np.float32), rate, check
