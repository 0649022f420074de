"""``ampnet.report.aliasing``: inharmonic (folded-back) tones, and nothing else, are counted."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import soxr

from ampnet.report.aliasing import FLOOR_DB, aliasing_report, coherent_seconds, tone_aliasing_db

RATE = 48_000


def worst(process) -> float:
    return aliasing_report(process, RATE)["worst_db"]


def test_a_linear_system_adds_no_aliasing():
    b, a = scipy.signal.butter(4, 3000, fs=RATE)
    assert worst(lambda x: x) == FLOOR_DB
    assert worst(lambda x: scipy.signal.lfilter(b, a, x)) < -140


def test_harmonics_below_nyquist_are_not_aliasing_but_folded_ones_are():
    # x^3 makes the third harmonic only: 3.7 and 9.6 kHz, both below Nyquist
    assert worst(lambda x: x + 30 * x**3) < -140
    # sin^9 = (126 sin x - 84 sin 3x + 36 sin 5x - 9 sin 7x + sin 9x) / 256: at 3210.5 Hz the
    # first four are below Nyquist (up to 22.5 kHz); the ninth (28.9 kHz) folds to 19.1 kHz,
    # and holds 1 / (126^2 + 84^2 + 36^2 + 9^2 + 1) of the power
    t = np.arange(2 * RATE) / RATE
    folded = tone_aliasing_db(np.sin(2 * np.pi * 3210.5 * t) ** 9, 3210.5, RATE)
    assert folded == pytest.approx(10 * np.log10(1 / 24310), abs=0.05)


def test_a_kink_aliases_more_than_a_smooth_curve_and_oversampling_removes_it():
    tanh = worst(lambda x: np.tanh(2 * x))
    leaky = worst(lambda x: np.maximum(x, 0.01 * x))
    sign = worst(np.sign)
    assert tanh < -100 < -60 < leaky < -20 < sign

    def oversampled(x, factor=8):  # the same kink at 384 kHz, band-limited back to 48 kHz
        up = soxr.resample(x, RATE, RATE * factor)
        return soxr.resample(np.maximum(up, 0.01 * up), RATE * factor, RATE)

    assert worst(oversampled) < leaky - 25


def test_the_report_lists_every_tone_and_level():
    report = aliasing_report(np.sign, RATE, tones_hz=(1234.5,), levels=(0.1, 0.2, 0.3))
    assert [(r["hz"], r["level"]) for r in report["tones"]] == [
        (1234.5, 0.1),
        (1234.5, 0.2),
        (1234.5, 0.3),
    ]
    assert report["worst_db"] == max(r["aliasing_db"] for r in report["tones"])


def test_tones_it_cannot_measure_are_refused():
    assert coherent_seconds(1000.0) == 1 and coherent_seconds(1234.5) == 2
    with pytest.raises(ValueError, match="Nyquist"):
        aliasing_report(np.tanh, RATE, tones_hz=(30_000.5,))
    with pytest.raises(ValueError, match="binary decimals"):
        coherent_seconds(1000.1)
    with pytest.raises(ValueError, match="need 2 s"):
        tone_aliasing_db(np.zeros(RATE), 1234.5, RATE)
