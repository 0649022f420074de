"""Reading, checking, splitting and windowing recordings."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ampnet.data import RegionWindow, TrainWindows, read_audio, split_regions
from ampnet.data.datamodule import AudioDataModule
from ampnet.errors import AmpnetError


def ramp_pair(n: int, lag: int = 0):
    """Input sample k holds k; target sample k holds k + 0.5, so alignment is checkable by value."""
    x = np.arange(n, dtype=np.float32)[None, :]
    return x, x + 0.5


def test_split_in_fractions_and_seconds():
    assert split_regions(
        1000, 100, {"unit": "fraction", "train": [0, 0.8], "val": [0.8, 0.9], "test": [0.9, 1]}
    ) == {"train": (0, 800), "val": (800, 900), "test": (900, 1000)}
    regions = split_regions(
        3330, 100, {"unit": "seconds", "train": [0, 24.3], "val": [-9, None], "test": None}
    )
    assert regions == {"train": (0, 2430), "val": (2430, 3330)}


@pytest.mark.parametrize(
    "split, message",
    [
        ({"train": [0, 0.6], "val": [0.5, 1.0]}, "overlap"),
        ({"train": [0, 0.5], "val": [0.9, 0.8]}, "empty"),
        ({"train": [0, 1.5], "val": [0.9, 1.0]}, "outside"),
        ({"val": [0.9, 1.0]}, "train is missing"),
        ({"unit": "beats", "train": [0, 1], "val": [0, 1]}, "unit"),
    ],
)
def test_bad_splits_are_refused(split, message):
    with pytest.raises(AmpnetError, match=message):
        split_regions(1000, 100, split)


def test_train_windows_line_target_up_with_input_and_stay_in_region():
    x, y = ramp_pair(1000)
    history, seg = 31, 16
    data = TrainWindows(x, y, start=100, end=500, history=history, segment_length=seg)
    assert len(data) == (500 - 100 - history) // seg
    seen = []
    for i in range(len(data)):
        xi, yi = data[i]
        assert xi.shape == (1, history + seg) and yi.shape == (1, seg)
        # target sample j pairs with input sample history + j: same recording index
        np.testing.assert_array_equal(yi[0].numpy() - 0.5, xi[0, history:].numpy())
        assert xi[0, 0] >= 100 and yi[0, -1] - 0.5 < 500  # nothing from outside the region
        seen.extend((yi[0].numpy() - 0.5).astype(int))
    assert len(seen) == len(set(seen))  # segments do not overlap
    with pytest.raises(IndexError):
        data[len(data)]


def test_jittered_windows_move_each_epoch_and_stay_valid():
    x, y = ramp_pair(1000)
    history, seg = 31, 16
    data = TrainWindows(
        x, y, start=100, end=500, history=history, segment_length=seg, jitter=True, seed=3
    )
    fixed = TrainWindows(x, y, start=100, end=500, history=history, segment_length=seg)
    starts_by_epoch = []
    for epoch in range(6):
        data.set_epoch(epoch)
        fixed.set_epoch(epoch)  # without jitter the tiling never moves
        assert len(data) == len(fixed)
        starts = []
        for i in range(len(data)):
            xi, yi = data[i]
            assert xi.shape == (1, history + seg) and yi.shape == (1, seg)
            np.testing.assert_array_equal(yi[0].numpy() - 0.5, xi[0, history:].numpy())
            assert xi[0, 0] >= 100 and yi[0, -1] - 0.5 < 500
            starts.append(int(yi[0, 0] - 0.5))
        starts_by_epoch.append(starts)
        assert int(fixed[0][1][0, 0] - 0.5) == 100 + history
    assert len({tuple(s) for s in starts_by_epoch}) > 1  # the tiling moved
    # the nmse loss's scale: the power of every target sample a segment can cover
    energy, count = data.target_energy()
    assert count == 500 - 100 - history
    assert energy == pytest.approx(float(np.sum((np.arange(100 + history, 500) + 0.5) ** 2)))
    # one seed and epoch give one tiling (every DDP rank draws the same)
    again = TrainWindows(
        x, y, start=100, end=500, history=history, segment_length=seg, jitter=True, seed=3
    )
    again.set_epoch(4)
    assert [int(again[i][1][0, 0] - 0.5) for i in range(len(again))] == starts_by_epoch[4]


def test_region_window_covers_every_sample_with_preceding_history():
    x, y = ramp_pair(1000)
    xi, yi = RegionWindow(x, y, start=800, end=900, history=31)[0]
    np.testing.assert_array_equal(yi[0].numpy(), np.arange(800, 900) + 0.5)
    np.testing.assert_array_equal(xi[0].numpy(), np.arange(800 - 31, 900))
    # at the file start the history is silence, as when a player starts from silence
    xi, yi = RegionWindow(x, y, start=0, end=50, history=31)[0]
    assert xi.shape[-1] == 31 + 50 and not xi[0, :31].any()
    np.testing.assert_array_equal(xi[0, 31:].numpy(), np.arange(50))


def test_datamodule_regions_do_not_leak(tmp_path):
    n, history, seg = 16000, 99, 256
    index = np.arange(n, dtype=np.float32) / n  # each sample's value encodes its position
    sf.write(tmp_path / "in.wav", index, 8000, subtype="FLOAT")
    sf.write(tmp_path / "out.wav", -index, 8000, subtype="FLOAT")
    dm = AudioDataModule(
        input=str(tmp_path / "in.wav"),
        output=str(tmp_path / "out.wav"),
        segment_length=seg,
        batch_size=4,
        history=history,
    )
    dm.setup()
    regions = dm.regions[0]
    assert regions == {"train": (0, 12800), "val": (12800, 14400), "test": (14400, 16000)}

    def positions(signal):
        return np.rint(np.abs(signal.numpy()[0]) * n).astype(int)

    targets = []
    for i in range(len(dm._sets["train"])):
        x, y = dm._sets["train"][i]
        px, py = positions(x), positions(y)
        np.testing.assert_array_equal(px[history:], py)  # target n lines up with input n
        assert px.min() >= 0 and py.max() < regions["train"][1]  # training sees only its region
        targets.extend(py)
    assert len(targets) == len(set(targets))
    for name in ("val", "test"):
        x, y = dm._sets[name][0]
        np.testing.assert_array_equal(positions(y), np.arange(*regions[name]))  # every sample, once
        np.testing.assert_array_equal(
            positions(x), np.arange(regions[name][0] - history, regions[name][1])
        )
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].shape == (4, 1, history + seg) and batch[1].shape == (4, 1, seg)


def test_input_gain_scales_the_di_only(make_pair):
    inp, out = make_pair(seconds=1.0, sr=8000)
    plain = AudioDataModule(input=str(inp), output=str(out), segment_length=256, history=10)
    louder = AudioDataModule(
        input=str(inp), output=str(out), segment_length=256, history=10, input_gain_db=6.0
    )
    plain.setup(), louder.setup()
    (x0, y0), (x1, y1) = plain._sets["val"][0], louder._sets["val"][0]
    np.testing.assert_allclose(x1.numpy(), x0.numpy() * 10 ** (6 / 20), rtol=1e-6)
    np.testing.assert_array_equal(y1.numpy(), y0.numpy())


def test_read_audio_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(AmpnetError, match="no such file"):
        read_audio(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(AmpnetError, match="junk.wav: cannot read"):
        read_audio(junk)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((100, 2), np.float32), 8000)
    with pytest.raises(AmpnetError, match=r"stereo.wav: has 2 channels.*data.channel=0"):
        read_audio(stereo)
    left = np.linspace(-1, 1, 100, dtype=np.float32)
    sf.write(stereo, np.stack([left, -left], 1), 8000, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(stereo, channel=1)[0], -left)
    np.testing.assert_allclose(read_audio(stereo, channel="mean")[0], 0 * left, atol=1e-7)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan], np.float32), 8000, subtype="FLOAT")
    with pytest.raises(AmpnetError, match="NaN"):
        read_audio(nan)


def test_too_short_for_the_receptive_field(make_pair):
    inp, out = make_pair(seconds=0.5, sr=8000)
    dm = AudioDataModule(input=str(inp), output=str(out), segment_length=1024, history=4092)
    with pytest.raises(AmpnetError, match="input.wav: the training region is 0.40 s.*5116 samples"):
        dm.setup()


def test_missing_recordings_point_at_the_demo(tmp_path):
    dm = AudioDataModule(
        input=str(tmp_path / "in.wav"), output=str(tmp_path / "out.wav"), name="mine"
    )
    with pytest.raises(AmpnetError, match=r"recordings for data=mine not found.*in.wav.*data=demo"):
        dm.setup()


def test_segment_length_shorter_than_the_loss_needs_is_refused(make_pair):
    inp, out = make_pair(seconds=3.0, sr=16000)
    dm = AudioDataModule(input=str(inp), output=str(out), segment_length=1024, history=10)
    dm.require_segment_length(1024, "the loss's largest STFT")
    with pytest.raises(AmpnetError, match=r"data.segment_length=1024 is shorter than the loss's"):
        dm.require_segment_length(2048, "the loss's largest STFT")


def test_a_reamp_recording_is_split_by_its_own_layout(tmp_path):
    from ampnet.data.reamp import reamp_signal

    rate = 16000
    x, info = reamp_signal(rate, minutes=0.5, seed=3)
    y = np.tanh(3 * x).astype(np.float32)
    sf.write(tmp_path / "input.wav", x, rate, subtype="FLOAT")
    sf.write(tmp_path / "output.wav", y, rate, subtype="FLOAT")
    dm = AudioDataModule(str(tmp_path / "input.wav"), str(tmp_path / "output.wav"), history=100)
    dm.setup("fit")
    (t0, t1), (v0, v1) = dm.regions[0]["train"], dm.regions[0]["val"]
    start, end = info["validation"]
    # the output is aligned one sample late at most (the blips' safety margin)
    assert abs(v0 - start * rate) <= 1 and abs(v1 - end * rate) <= 1
    assert t0 == 0 and t1 < v0 and not dm.has_test
    assert any("reamp signal" in note for note in dm.checks[0].notes)


def test_auto_split_uses_the_fractions_for_other_recordings(tmp_path):
    rate = 16000
    x = (0.3 * np.sin(np.arange(4 * rate) * 0.05)).astype(np.float32)
    sf.write(tmp_path / "input.wav", x, rate, subtype="FLOAT")
    sf.write(tmp_path / "output.wav", np.tanh(2 * x), rate, subtype="FLOAT")
    dm = AudioDataModule(str(tmp_path / "input.wav"), str(tmp_path / "output.wav"), history=100)
    dm.setup("fit")
    n = 4 * rate
    assert dm.regions[0]["val"] == (round(0.8 * n), round(0.9 * n))
    assert dm.regions[0]["test"] == (round(0.9 * n), n)
