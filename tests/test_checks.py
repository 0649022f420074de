"""Data checks and alignment: every row of the README's data-checks table, and latency."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from ampnet.data.align import Alignment, apply_alignment, estimate_lag, gcc_phat
from ampnet.data.checks import check_pair
from ampnet.data.reamp import BLIP_TIMES, blip_latency, is_reamp_signal, reamp_signal
from ampnet.errors import AmpnetError

from .conftest import REPO, SHARED, run_module, synth_pair

RATE = 16000


def amp(x: np.ndarray, delay: int = 0) -> np.ndarray:
    """A small 'amp': drive, tanh, a low-pass; then the interface's latency."""
    b, a = scipy.signal.butter(2, 3000, fs=RATE)
    y = 0.5 * scipy.signal.lfilter(b, a, np.tanh(4 * x))
    return np.concatenate([np.zeros(delay), y])[: len(x) + delay].astype(np.float32)


def write(tmp_path, name, audio, rate=RATE, subtype="FLOAT"):
    path = tmp_path / name
    sf.write(path, audio, rate, subtype=subtype)
    return path


def good_pair(tmp_path, seconds=20.0, delay=0):
    x, _ = synth_pair(seconds, RATE)
    return write(tmp_path, "in.wav", x), write(tmp_path, "out.wav", amp(x, delay)), x


# ---- alignment primitives ----


def test_estimate_and_apply_alignment_round_trip():
    x, _ = synth_pair(4.0, RATE)
    for lag in (0, 5, 300, -40):
        y = -np.roll(x, lag)
        found = estimate_lag(x, y, max_lag=1000)
        assert found == Alignment(lag, -1, found.correlation) and found.correlation > 0.99
        a, b = apply_alignment(x[1000:-1000], y[1000:-1000], found)
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_phase_transform_finds_a_delay_through_a_filter():
    x, _ = synth_pair(10.0, RATE)
    lag, ratio = gcc_phat(x, amp(x, 123), max_lag=RATE)
    assert lag in (123, 124) and ratio > 2


# ---- the reamp signal and its blips ----


@pytest.mark.parametrize("version", [1, 2, 3])
def test_reamp_signal_is_deterministic_and_recognised(version):
    a, info = reamp_signal(48000, minutes=1.0, seed=0, version=version)
    b, _ = reamp_signal(48000, minutes=1.0, seed=0, version=version)
    assert info["ampnet_reamp_version"] == version
    assert np.array_equal(a, b) and abs(len(a) / 48000 - 60) < 1.0
    assert not np.array_equal(a, reamp_signal(48000, minutes=1.0, seed=1, version=version)[0])
    start, end = info["validation"]
    assert end - start == pytest.approx(12.0, abs=0.01) and end < info["seconds"]
    names = [part["name"] for part in info["layout"]]
    assert (
        names[0] == "blips"
        and any(n.startswith("sweep") for n in names)
        and any(n.startswith("noise") for n in names)
    )
    assert is_reamp_signal(a, 48000)
    x, _ = synth_pair(3.0, 48000)
    assert not is_reamp_signal(x, 48000)


def training_guitar(x: np.ndarray, info: dict, rate: int) -> np.ndarray:
    """The training guitar part of a reamp signal ``x`` with layout ``info``, as float64."""
    part = next(p for p in info["layout"] if p["name"] == "guitar (training)")
    return x[int(part["start"] * rate) : int(part["end"] * rate)].astype(np.float64)


def test_reamp_version_2_plays_guitar_at_a_di_level_without_clipping():
    """Version 1's guitar sat ~10 dB under a normal DI and clipped its loudest noise burst."""
    rate = 48000
    levels, bright = {}, {}
    for version in (1, 2):
        x, info = reamp_signal(rate, minutes=1.0, seed=0, version=version)
        guitar = training_guitar(x, info, rate)
        windows = guitar[: len(guitar) // (rate // 2) * (rate // 2)].reshape(-1, rate // 2)
        levels[version] = np.median(10 * np.log10(np.mean(windows**2, axis=1) + 1e-20))
        spectrum = np.abs(np.fft.rfft(guitar)) ** 2
        freqs = np.fft.rfftfreq(len(guitar), 1 / rate)
        bright[version] = spectrum[freqs > 2000].sum() / spectrum.sum()
        clipped = np.mean(np.abs(x) >= 0.999)
        if version == 2:
            assert clipped == 0 and np.abs(x).max() < 0.99
            assert np.min(np.abs(guitar)) > 0  # a pickup's noise floor, never digital silence
    assert levels[2] > levels[1] + 3
    assert bright[2] < bright[1] / 5  # plucked from a pick's triangle, through a pickup: darker


def test_reamp_version_3_picks_both_ways_in_version_2s_layout():
    """Version 2 starts every string displaced one way (a downstroke): its guitar is lopsided.
    Version 3 picks up and down: about as symmetric as a real DI (whose skewness is -0.16)."""
    rate = 48000
    skew, layout = {}, {}
    for version in (2, 3):
        x, info = reamp_signal(rate, minutes=1.0, seed=0, version=version)
        guitar = training_guitar(x, info, rate)
        skew[version] = np.mean(guitar**3) / np.mean(guitar**2) ** 1.5
        layout[version] = [(p["name"], p["start"], p["end"]) for p in info["layout"]]
        assert np.abs(x).max() < 0.99
    assert skew[2] > 0.4 and abs(skew[3]) < 0.2
    assert layout[3] == layout[2]  # recordings of either align and split alike


@pytest.mark.parametrize("latency", [0, 37, 1234])
def test_blips_give_the_latency_through_a_rig(latency):
    import pedalboard as pb

    x, _ = reamp_signal(48000, minutes=0.5, seed=0)
    board = pb.Pedalboard([pb.Gain(12), pb.Distortion(drive_db=20), pb.LowpassFilter(4000)])
    y = board(x[None], 48000)[0]
    y = np.concatenate([np.zeros(latency, np.float32), y])[: len(x)]
    y += 1e-5 * np.random.default_rng(0).standard_normal(len(y)).astype(
        np.float32
    )  # interface noise
    lag, delays = blip_latency(y, 48000)
    assert lag == latency and len(delays) == len(BLIP_TIMES)


def test_check_pair_uses_blips_for_an_ampnet_reamp_recording(tmp_path):
    x, _ = reamp_signal(RATE, minutes=0.5, seed=0)
    inp = write(tmp_path, "in.wav", x)
    out = write(tmp_path, "out.wav", amp(x, 500)[: len(x)])
    xa, ya, _, check = check_pair(inp, out)
    assert check.lag_method == "blips" and check.lag_samples == 500 and check.shift_samples == 499
    assert len(xa) == len(ya) == len(x) - 499


# ---- latency and polarity of the pair ----


def test_cross_correlation_latency_is_measured_and_shifted_conservatively(tmp_path):
    inp, out, x = good_pair(tmp_path, delay=200)
    xa, ya, _, check = check_pair(inp, out)
    assert check.lag_method == "cross-correlation" and check.lag_samples in (200, 201)
    assert check.shift_samples == check.lag_samples - 8  # a margin the model absorbs
    assert not check.warnings


def test_forced_latency_and_polarity_fix(tmp_path):
    x, _ = synth_pair(20.0, RATE)
    inp = write(tmp_path, "in.wav", x)
    out = write(tmp_path, "out.wav", -amp(x, 10))
    _, _, _, auto = check_pair(inp, out)
    assert auto.polarity_inverted
    xa, ya, _, fixed = check_pair(inp, out, latency=10, fix_polarity=True)
    assert fixed.shift_samples == 10 and fixed.lag_method == "given (data.latency)"
    np.testing.assert_allclose(ya, amp(x)[: len(ya)], atol=1e-6)  # flipped back and lined up


@pytest.mark.skipif(
    not (SHARED / "real_pair").is_dir(), reason=f"reference recordings not found at {SHARED}"
)
def test_real_pair_lag_and_inverted_polarity_are_detected():
    _, _, _, check = check_pair(
        SHARED / "real_pair" / "input.wav", SHARED / "real_pair" / "output.wav"
    )
    assert 1 <= check.lag_samples <= 8, check.lag_samples  # "a few samples"
    assert check.polarity_inverted
    assert check.correlation > 0.3


# ---- every row of the README's table ----


def _case(tmp_path, case):
    """(input, output, overrides) for one row of the table."""
    x, _ = synth_pair(20.0, RATE)
    y = amp(x)
    inp = write(tmp_path, "in.wav", x)
    if case == "missing":
        return inp, tmp_path / "nope.wav", {}
    if case == "unreadable":
        (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
        return inp, tmp_path / "junk.wav", {}
    if case in ("rate", "resample"):
        from ampnet.data.audio import resample

        return (
            inp,
            write(tmp_path, "out.wav", resample(y, RATE, 22050), rate=22050),
            {"resample": case == "resample"},
        )
    if case == "length":
        return inp, write(tmp_path, "out.wav", y[: -RATE // 2]), {}
    if case == "stereo":
        return inp, write(tmp_path, "out.wav", np.stack([y, y], 1)), {}
    if case == "clipped":
        return inp, write(tmp_path, "out.wav", np.clip(4 * y, -1, 1)), {}
    if case == "slightly_clipped":
        y = y.copy()
        y[1000] = 1.0
        return inp, write(tmp_path, "out.wav", y), {}
    if case == "silent_input":
        return write(tmp_path, "in.wav", 0 * x), write(tmp_path, "out.wav", y), {}
    if case == "silent_output":
        return inp, write(tmp_path, "out.wav", 0 * y), {}
    if case == "dc":
        return inp, write(tmp_path, "out.wav", y + 0.05), {}
    if case == "nan":
        y = y.copy()
        y[5] = np.nan
        return inp, write(tmp_path, "out.wav", y), {}
    if case == "unrelated":
        other, _ = synth_pair(20.0, RATE, seed=9)
        return inp, write(tmp_path, "out.wav", amp(other)), {}
    if case == "late":
        return inp, write(tmp_path, "out.wav", amp(x, 3000)), {}
    if case == "drift":
        half = len(x) // 2
        return (
            inp,
            write(
                tmp_path,
                "out.wav",
                np.concatenate([y[:half], np.zeros(40, np.float32), y[half:-40]]),
            ),
            {},
        )
    if case == "inverted":
        return inp, write(tmp_path, "out.wav", -y), {}
    raise ValueError(case)


# The distinctive clause of each message, as the README's table quotes it.
ERRORS = {
    "missing": "no such file",
    "unreadable": "cannot read it as audio",
    "rate": "record both at one rate, or pass data.resample=true",
    "length": "and a 1 s tail explain; trim both to the same length",
    "stereo": "has 2 channels but a capture needs mono; pick one with data.channel=0",
    "clipped": "of the output samples are at full scale (clipped); record again with the interface's input gain lower",
    "silent_input": "the input is silent",
    "silent_output": "the output is silent",
    "nan": "contains NaN or infinite samples",
    "unrelated": "does not look like a recording of",
}
WARNINGS = {
    "slightly_clipped": "output sample(s) touch full scale",
    "dc": "DC offset of +0.05",
    "late": "more than 50 ms; check the recording or set data.latency",
    "drift": "the lag is not the same across the file",
}
NOTES = {
    "resample": "resampled",
    "inverted": "output polarity is inverted (the model will learn it; data.fix_polarity=true flips it)",
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_rows(case, tmp_path):
    inp, out, kwargs = _case(tmp_path, case)
    with pytest.raises(AmpnetError, match=None) as err:
        check_pair(inp, out, **kwargs)
    assert ERRORS[case] in str(err.value)


@pytest.mark.parametrize("case", sorted(WARNINGS))
def test_warning_rows(case, tmp_path):
    inp, out, kwargs = _case(tmp_path, case)
    *_, check = check_pair(inp, out, **kwargs)
    assert any(WARNINGS[case] in w for w in check.warnings), check.warnings


@pytest.mark.parametrize("case", sorted(NOTES))
def test_note_rows(case, tmp_path):
    inp, out, kwargs = _case(tmp_path, case)
    *_, check = check_pair(inp, out, **kwargs)
    assert any(NOTES[case] in n for n in check.notes), check.notes


@pytest.mark.slow
def test_too_short_for_the_receptive_field_plus_validation(tmp_path):
    x, _ = synth_pair(0.5, RATE)
    inp, out = write(tmp_path, "in.wav", x), write(tmp_path, "out.wav", amp(x))
    result = run_module(
        "ampnet.check", "data=pair", "data.name=t", f"data.input={inp}", f"data.output={out}"
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "the training region is" in line and "needs the model's history" in line


def test_readme_table_lists_every_case():
    readme = (REPO / "README.md").read_text()
    for message in [*ERRORS.values(), *WARNINGS.values(), NOTES["inverted"]]:
        assert message in readme, message


@pytest.mark.slow
def test_check_command_summarises_a_good_pair_and_fails_a_bad_one(tmp_path):
    inp, out, _ = good_pair(tmp_path, delay=96)
    result = run_module(
        "ampnet.check", "data=pair", "data.name=t", f"data.input={inp}", f"data.output={out}"
    )
    assert result.returncode == 0, result.stderr
    assert (
        "every check passed" in result.stdout and "latency 97 samples (6.06 ms" in result.stdout
    )  # 96 + the filter
    write(tmp_path, "out.wav", np.zeros(RATE * 20, np.float32))
    bad = run_module(
        "ampnet.check", "data=pair", "data.name=t", f"data.input={inp}", f"data.output={out}"
    )
    assert (
        bad.returncode == 2
        and "the output is silent" in bad.stderr
        and "Traceback" not in bad.stderr
    )
    assert not list(tmp_path.glob("outputs")) and not list(Path(REPO).glob("check.log"))


@pytest.mark.slow
def test_capture_command_writes_the_signal_and_its_layout(tmp_path):
    result = run_module(
        "ampnet.capture", "-o", str(tmp_path / "reamp.wav"), "--minutes", "0.5", "--sr", "44100"
    )
    assert result.returncode == 0, result.stderr
    audio, rate = sf.read(tmp_path / "reamp.wav", dtype="float32")
    info = json.loads((tmp_path / "reamp.json").read_text())
    assert (
        rate == 44100
        and info["sample_rate"] == 44100
        and abs(len(audio) / rate - info["seconds"]) < 1e-3
    )
    assert is_reamp_signal(audio, rate)  # survives 24-bit PCM


def test_gcc_phat_on_signals_shorter_than_the_lag_search():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(4000).astype(np.float32)
    y = np.concatenate([np.zeros(5, np.float32), x[:-5]])
    lag, ratio = gcc_phat(x, y, max_lag=16000)  # the search is wider than the signals
    assert lag == 5 and ratio > 2
