"""Knob-aware captures: data with several settings, conditioned models, streaming with
knob changes, ``--param``, and exports that carry (or refuse) the knob inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from ampnet import kernels
from ampnet.data.datamodule import AudioDataModule
from ampnet.errors import AmpnetError
from ampnet.export import fitting_formats
from ampnet.formats import load_model_file
from ampnet.formats.nam import to_nam
from ampnet.formats.proteus import lstm_from_proteus, lstm_to_proteus
from ampnet.formats.runtime import export_onnx, run_onnx
from ampnet.models import GRU, LSTM, WaveNet, build_model
from ampnet.process import main as process_main
from ampnet.stream import Streamer, render

from .conftest import run_module, synth_pair, write_checkpoint
from .test_configs import compose_train
from .test_stream import MIXED

BACKENDS = ["native", "torch"] if kernels.available() else ["torch"]
SR = 8000
MIXED_RF = WaveNet(MIXED).receptive_field


def drive_pedal(x: np.ndarray, drive: float, sr: int = SR) -> np.ndarray:
    """A synthetic drive knob: tanh clipping whose gain rises with the knob, then a low-pass."""
    gain = 1.0 + 9.0 * drive
    b, a = scipy.signal.butter(1, 2500, fs=sr)
    return (0.5 * scipy.signal.lfilter(b, a, np.tanh(gain * x))).astype(np.float32)


@pytest.fixture
def knob_pairs(tmp_path):
    """One DI and its render at each drive setting, as WAV files: [(di, out, drive), ...]."""

    def make(settings=(0.0, 0.5, 1.0), seconds: float = 3.0):
        x, _ = synth_pair(seconds, SR, seed=3)
        di = tmp_path / "di.wav"
        sf.write(di, x, SR, subtype="FLOAT")
        pairs = []
        for drive in settings:
            out = tmp_path / f"drive_{drive:.2f}.wav"
            sf.write(out, drive_pedal(x, drive), SR, subtype="FLOAT")
            pairs.append((di, out, drive))
        return pairs

    return make


def knob_wavenet(params=("drive",), seed: int = 0) -> WaveNet:
    torch.manual_seed(seed)
    return WaveNet(MIXED, params=list(params)).eval()


def offline(model, x: np.ndarray, knobs) -> np.ndarray:
    """The model over audio ``x`` with knob channels ``knobs`` (constants or per-sample rows)."""
    rows = [np.broadcast_to(np.float32(k), x.shape) for k in knobs]
    c = np.stack([x, *rows]).astype(np.float32)
    with torch.no_grad():
        return model(torch.from_numpy(c)[None], pad_start=True)[0, 0].numpy()


def di(seconds: float = 0.5, seed: int = 1) -> np.ndarray:
    return synth_pair(seconds, SR, seed)[0]


# --- data -------------------------------------------------------------------------------


def test_multi_pair_data_splits_every_setting_into_train_and_val(knob_pairs):
    pairs = knob_pairs()
    dm = AudioDataModule(
        pairs=[{"input": str(i), "output": str(o), "params": {"drive": d}} for i, o, d in pairs],
        params=["drive"],
        split={"unit": "seconds", "train": [0.0, -1.0], "val": [-1.0, None], "test": None},
        segment_length=1024,
        batch_size=2,
        latency=0,
        history=MIXED_RF - 1,
    )
    dm.setup()
    assert [r["val"] for r in dm.regions] == [(2 * SR, 3 * SR)] * 3
    train, val = dm._sets["train"].datasets, dm._sets["val"].datasets
    assert len(train) == len(val) == 3
    for (_, out, drive), windows, region in zip(pairs, train, val, strict=True):
        x, y = windows[0]
        assert x.shape == (2, MIXED_RF - 1 + 1024) and torch.all(x[1] == drive)
        xv, yv = region[0]
        assert torch.all(xv[1] == drive)  # the knob row holds the setting over the history too
        expected = sf.read(out, dtype="float32")[0][2 * SR :]
        np.testing.assert_array_equal(yv[0].numpy(), expected)


def test_region_history_before_the_file_keeps_the_knob_set():
    from ampnet.data.windows import RegionWindow

    x = np.stack([np.ones(50, np.float32), np.full(50, 0.7, np.float32)])
    item, _ = RegionWindow(x, x[:1], 0, 50, history=20)[0]
    assert torch.all(item[0, :20] == 0) and torch.all(item[1] == np.float32(0.7))


@pytest.mark.parametrize(
    "params, setting, message",
    [
        (["drive"], {}, "give a value for each knob in data.params ['drive'] (missing ['drive'])"),
        (["drive"], {"drive": 0.5, "tone": 0.1}, "(unknown ['tone'])"),
        (["drive"], {"drive": 1.5}, "drive=1.5 is not a number in [0, 1]"),
        (None, {"drive": 0.5}, "sets knobs ['drive'] but data.params names none"),
        (["drive level"], {"drive level": 0.5}, "knob names must be distinct words"),
    ],
)
def test_bad_knob_data_is_one_clear_error(params, setting, message):
    with pytest.raises(AmpnetError) as err:
        AudioDataModule(
            pairs=[{"input": "a.wav", "output": "b.wav", "params": setting}], params=params
        )
    assert message in str(err.value)


# --- models -----------------------------------------------------------------------------


def test_models_without_knobs_are_unchanged():
    torch.manual_seed(0)
    plain = WaveNet(MIXED)
    assert plain.params == [] and "params" not in plain.config()
    assert plain.input_channels == 1
    assert LSTM(hidden_size=4).params == [] and "params" not in LSTM(hidden_size=4).config()


def test_knobs_add_conditioning_channels_and_survive_a_rebuild():
    model = knob_wavenet()
    assert model.input_channels == 2 and model.params == ["drive"]
    assert all(a.condition_size == 2 for a in model.layer_arrays)
    extra = sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in WaveNet(MIXED).parameters()
    )
    mixers = sum(a.channels * (2 if a.gated else 1) * len(a.dilations) for a in model.layer_arrays)
    assert extra == mixers  # one input-mixer column per layer
    rebuilt = build_model(model.config())
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = di()
    np.testing.assert_array_equal(offline(rebuilt.eval(), x, [0.3]), offline(model, x, [0.3]))
    assert not np.allclose(offline(model, x, [0.0]), offline(model, x, [1.0]), atol=1e-4)

    lstm = LSTM(hidden_size=6, params=["drive", "tone"])
    assert lstm.input_size == 3 and build_model(lstm.config()).params == ["drive", "tone"]
    with pytest.raises(ValueError, match="does not fit 1 knob"):
        LSTM(input_size=3, params=["drive"])


def test_a_file_without_names_gets_numbered_knobs():
    assert LSTM(input_size=3).params == ["knob1", "knob2"]
    layers = [{**layer, "condition_size": 2} for layer in MIXED]
    assert WaveNet(layers).params == ["knob1"]


# --- streaming --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["wavenet", "lstm", "gru"])
def test_stream_with_a_constant_knob_equals_offline(kind, backend):
    torch.manual_seed(0)
    recurrent = {"lstm": LSTM, "gru": GRU}
    model = (
        knob_wavenet() if kind == "wavenet" else recurrent[kind](hidden_size=8, params=["drive"])
    )
    model.eval()
    x = di(0.6)
    expected = offline(model, x, [0.3])
    streamer = Streamer(model, params={"drive": 0.3}, backend=backend, max_block=64)
    sizes = [1, 63, 64, 200, 7]
    out, pos = [], 0
    while pos < len(x):
        n = sizes[len(out) % len(sizes)]
        out.append(streamer.process(x[pos : pos + n]))
        pos += n
    np.testing.assert_allclose(np.concatenate(out), expected, rtol=0, atol=1e-5)
    streamer.reset()
    np.testing.assert_allclose(streamer.process(x), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        render(model, x, params={"drive": 0.3}, threads=2, backend=backend),
        expected,
        rtol=0,
        atol=1e-5,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_params_ramps_across_the_next_block(backend):
    model = knob_wavenet()
    x = di(0.5)
    streamer = Streamer(model, params={"drive": 0.2}, backend=backend, max_block=128)
    first = streamer.process(x[:1000])
    streamer.set_params(drive=0.9)
    assert streamer.params == {"drive": 0.9}
    ramped = streamer.process(x[1000:1300])  # longer than max_block: one ramp over 300
    rest = streamer.process(x[1300:])
    knob = np.full(len(x), 0.2, np.float32)
    knob[1000:1300] = 0.2 + (0.9 - 0.2) * np.arange(1, 301, dtype=np.float32) / 300
    knob[1300:] = 0.9
    np.testing.assert_allclose(
        np.concatenate([first, ramped, rest]), offline(model, x, [knob]), rtol=0, atol=1e-5
    )


def test_a_knob_change_does_not_click():
    """With a knob that moves the output a lot, a jump clicks and the ramp does not."""
    model = knob_wavenet()
    with torch.no_grad():
        for array in model.layer_arrays:
            for layer in array.layers:
                layer.input_mixer.weight[:, 1] = 3.0
    t = np.arange(SR // 2) / SR
    x = (0.3 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)  # a low note: small steps
    streamer = Streamer(model, params={"drive": 0.0}, max_block=256)
    before = streamer.process(x[:2048])
    streamer.set_params(drive=1.0)
    y = np.concatenate([before, streamer.process(x[2048:2304]), streamer.process(x[2304:])])
    steps = np.abs(np.diff(y))
    normal = max(steps[:2040].max(), steps[2310:].max())
    assert steps[2040:2310].max() <= 1.1 * normal
    jump = offline(model, x, [np.where(np.arange(len(x)) < 2048, 0.0, 1.0)])
    assert np.abs(np.diff(jump))[2047] > 3 * normal, "the test knob must matter"


def test_knob_settings_are_checked():
    model = knob_wavenet()
    with pytest.raises(
        AmpnetError, match="no value for knob 'drive': this model's knobs are drive"
    ):
        Streamer(model)
    streamer = Streamer(model, params={"drive": 0.5})
    with pytest.raises(AmpnetError, match="unknown knob 'tone': this model's knobs are drive"):
        streamer.set_params(tone=0.5)
    with pytest.raises(AmpnetError, match="use a number from 0"):
        streamer.set_params(drive=2.0)
    with pytest.raises(AmpnetError, match="this model has no knobs"):
        Streamer(WaveNet(MIXED).eval(), params={"drive": 0.5})


# --- process --param ----------------------------------------------------------------------


@pytest.mark.slow
def test_process_param_renders_the_setting(tmp_path):
    model = knob_wavenet()
    ckpt = write_checkpoint(model, tmp_path / "run" / "checkpoints" / "best.ckpt", SR)
    x = di(1.0)
    sf.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    result = run_module(
        "ampnet.process",
        str(tmp_path / "in.wav"),
        "-o",
        str(tmp_path / "out.wav"),
        "--model",
        str(ckpt),
        "--param",
        "drive=0.3",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "at drive=0.3" in result.stderr
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    np.testing.assert_allclose(y, offline(model, x, [0.3]), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "params, message",
    [
        ([], "no value for knob 'drive': this model's knobs are drive, tone"),
        (
            ["drive=0.3", "tone=0.1", "gain=0.5"],
            "unknown knob 'gain': this model's knobs are drive, tone",
        ),
        (["drive=0.3", "tone=loud"], "knob tone=loud: use a number from 0 (minimum) to 1"),
        (["drive"], "--param drive: write it as KNOB=VALUE"),
    ],
)
def test_process_bad_params_are_one_line(params, message, tmp_path, capsys):
    ckpt = write_checkpoint(
        knob_wavenet(["drive", "tone"]), tmp_path / "r" / "checkpoints" / "best.ckpt", SR
    )
    sf.write(tmp_path / "in.wav", di(0.1), SR)
    argv = [str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.wav"), "--model", str(ckpt), "-q"]
    with pytest.raises(SystemExit) as exit_:
        process_main(argv + [f"--param={p}" for p in params])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ampnet: error: ") and message in line, line
    assert not (tmp_path / "o.wav").exists()


def test_process_refuses_params_for_a_model_without_knobs(tmp_path, capsys):
    ckpt = write_checkpoint(WaveNet(MIXED), tmp_path / "r" / "checkpoints" / "best.ckpt", SR)
    sf.write(tmp_path / "in.wav", di(0.1), SR)
    with pytest.raises(SystemExit):
        process_main(
            [str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.wav"), "--model", str(ckpt)]
            + ["--param", "drive=0.5"]
        )
    assert (
        "this model has no knobs (it captures one setting); drop drive=0.5"
        in capsys.readouterr().err
    )


# --- export -------------------------------------------------------------------------------


def test_proteus_round_trip_keeps_the_knob_input_and_its_name():
    torch.manual_seed(5)
    model = LSTM(hidden_size=10, params=["drive"]).eval()
    data = json.loads(json.dumps(lstm_to_proteus(model, 48000)))
    assert data["model_data"]["input_size"] == 2 and data["model_data"]["params"] == ["drive"]
    back, _ = lstm_from_proteus(data)
    assert back.params == ["drive"] and back.settle == 0  # Proteus starts from the zero state
    x = di(0.5)
    knob = np.linspace(0, 1, len(x), dtype=np.float32)
    raw = torch.from_numpy(np.stack([x, knob]))[None]  # both from the zero state: the weights
    with torch.no_grad():
        np.testing.assert_allclose(back(raw).numpy(), model(raw).numpy(), rtol=0, atol=1e-6)
    del data["model_data"]["params"]  # a file from Proteus's trainer names no knobs
    assert lstm_from_proteus(data)[0].params == ["knob1"]


@pytest.mark.parametrize("kind", ["wavenet", "lstm"])
def test_onnx_takes_the_knob_inputs(kind, tmp_path):
    torch.manual_seed(2)
    model = knob_wavenet() if kind == "wavenet" else LSTM(hidden_size=8, params=["drive"]).eval()
    signature = export_onnx(model, tmp_path / "m.onnx")
    assert signature["inputs"]["x"][1] == 2 and signature["x_channels"] == ["audio", "drive"]
    x = di(0.6)
    knob = np.minimum(np.linspace(0, 1.4, len(x)), 0.7).astype(
        np.float32
    )  # from 0 (the zero state)
    c = np.stack([x, knob])
    y = run_onnx(tmp_path / "m.onnx", c, [100, 4000, len(x) - 4100])
    np.testing.assert_allclose(y, offline(model, x, [knob]), rtol=0, atol=1e-4)


def test_nam_cannot_hold_a_knob_model():
    model = knob_wavenet()
    assert fitting_formats(model) == ["onnx", "torchscript"]
    knob_lstm = ["aidax", "proteus", "onnx", "torchscript"]  # AIDA-X takes up to two knobs
    assert fitting_formats(LSTM(hidden_size=8, params=["drive"])) == knob_lstm
    assert fitting_formats(LSTM(hidden_size=8, params=["a", "b", "c"])) == knob_lstm[1:]
    with pytest.raises(AmpnetError, match="NAM plays audio-only models"):
        to_nam(model, 48000)


@pytest.mark.slow
def test_export_skips_nam_for_a_knob_model_and_refuses_it_when_asked(tmp_path):
    model = knob_wavenet()
    run = tmp_path / "outputs" / "wavenet" / "r1"
    write_checkpoint(model, run / "checkpoints" / "best.ckpt", sample_rate=48000)
    result = run_module("ampnet.export", "ckpt=best", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nam          skipped: NAM plays no knob models and this one has knobs (drive)" in (
        result.stdout
    )
    card = json.loads((run / "export" / "model_card.json").read_text())
    assert set(card["files"]) == {"onnx", "torchscript"}
    assert card["knobs"]["names"] == ["drive"] and card["knobs"]["inputs"] == ["audio", "drive"]

    refused = run_module("ampnet.export", "ckpt=best", "formats=[nam]", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "formats: nam cannot hold this WaveNet: NAM plays no knob models" in line, line


# --- training, end to end -------------------------------------------------------------------


@pytest.mark.slow  # a training
def test_a_knob_capture_trains_and_its_checkpoint_plays_at_any_setting(knob_pairs, tmp_path):
    pairs = ",".join(
        f"{{input:'{i}',output:'{o}',params:{{drive:{d}}}}}" for i, o, d in knob_pairs()
    )
    from ampnet.train import train

    cfg = compose_train(
        [
            "model=wavenet_nano",
            "data=shared_ts9_drive",
            f"data.pairs=[{pairs}]",
            "data.split.train=[0,-1]",
            "data.split.val=[-1,null]",
            "data.segment_length=2304",
            "data.batch_size=2",
            "trainer=debug",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=1",
            "logger=none",
            "callbacks.progress_bar=null",
        ],
        tmp_path / "run",
    )
    metrics = train(cfg)
    assert metrics["global_steps"] == 1 and np.isfinite(metrics["val_esr"])
    loaded = load_model_file(metrics["best_checkpoint"])
    assert loaded.metadata["hparams"]["model"]["params"] == ["drive"]
    x = di(0.3)
    low, high = (render(loaded.model, x, params={"drive": d}) for d in (0.0, 1.0))
    assert low.shape == x.shape and not np.array_equal(low, high)
