"""Export: files that real players load, checked with the real clients."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from ampnet.data.synth import synth_di
from ampnet.errors import AmpnetError
from ampnet.export import loudness_and_gain
from ampnet.formats import load_model_file
from ampnet.formats.aidax import from_aidax, to_aidax
from ampnet.formats.aidax import unfit_reason as aidax_unfit
from ampnet.formats.nam import model_from_nam, to_nam
from ampnet.formats.proteus import lstm_from_proteus, lstm_to_proteus
from ampnet.formats.runtime import export_onnx, export_torchscript, run_onnx, run_torchscript
from ampnet.models import LSTM, WaveNet
from ampnet.report.aliasing import aliasing_report
from ampnet.stream import render

from .conftest import REPO, SHARED, run_module, write_checkpoint
from .test_stream import MIXED

CAPTURES = SHARED / "captures"
needs_shared = pytest.mark.skipif(
    not CAPTURES.is_dir(), reason=f"reference captures not found at {SHARED}"
)


def real_di(seconds: float = 2.0) -> np.ndarray:
    """2 s of the real DI when the reference recordings are here, else generated guitar."""
    if (SHARED / "di.wav").is_file():
        x, _ = sf.read(
            SHARED / "di.wav", dtype="float32", frames=int(seconds * 48000), start=48000 * 5
        )
        return x
    return synth_di(seconds=seconds + 10, seed=5)[-int(seconds * 48000) :]


def trained_like(kind: str):
    torch.manual_seed(1)
    if kind == "wavenet":
        return WaveNet(MIXED).eval()
    if kind == "standard":
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        return instantiate(OmegaConf.load(REPO / "conf" / "model" / "wavenet_a1.yaml")).eval()
    return LSTM(hidden_size=16, input_skip=False).eval()


def nam_forward(nam_dict: dict, x: np.ndarray) -> np.ndarray:
    from nam.models._from_nam import init_from_nam

    model = init_from_nam(json.loads(json.dumps(nam_dict))).eval()
    with torch.no_grad():
        return model(torch.from_numpy(x), pad_start=True).numpy()


@pytest.mark.parametrize("kind", ["standard", "wavenet", "lstm"])
def test_nam_013_plays_our_nam_file_like_we_do(kind):
    model = trained_like(kind)
    x = real_di()
    exported = to_nam(model, 48000, {"name": "t"})
    ours = render(model, x)
    np.testing.assert_allclose(nam_forward(exported, x), ours, rtol=0, atol=1e-5)
    assert exported["sample_rate"] == 48000 and exported["version"] == "0.7.0"


@pytest.mark.parametrize("kind", ["standard", "lstm"])
def test_loudness_and_gain_are_what_nam_computes(kind):
    from nam.models._from_nam import init_from_nam

    model = trained_like(kind)
    nam_model = init_from_nam(json.loads(json.dumps(to_nam(model, 48000))))
    theirs = nam_model._get_export_dict()["metadata"]
    ours = loudness_and_gain(model)
    assert ours["loudness_input"] == "nam"
    assert ours["loudness"] == pytest.approx(theirs["loudness"], abs=1e-3)
    assert ours["gain"] == pytest.approx(theirs["gain"], abs=1e-4)


def test_we_play_files_nam_013_writes(tmp_path):
    """A NAM-made WaveNet (0.7.0 schema) and LSTM (learned initial state) read by our reader."""
    from nam.models._from_nam import init_from_nam
    from nam.models.recurrent import LSTM as NamLSTM

    torch.manual_seed(3)
    x = real_di(1.0)
    wavenet = init_from_nam(json.loads(json.dumps(to_nam(trained_like("standard"), 48000))))
    lstm = NamLSTM(hidden_size=12, num_layers=2, sample_rate=48000)
    for nam_model in (wavenet, lstm):
        nam_model.export(tmp_path, basename=type(nam_model).__name__)
        data = json.loads((tmp_path / f"{type(nam_model).__name__}.nam").read_text())
        ours = model_from_nam(data)
        if isinstance(ours, LSTM):
            assert ours.h0.abs().max() > 0  # NAM stores the state reached after silence
        # NAM's own forward starts from the state in the file, as ours does
        reread = init_from_nam(data).eval()
        with torch.no_grad():
            theirs = reread(torch.from_numpy(x), pad_start=True).numpy()
        np.testing.assert_allclose(render(ours, x), theirs, rtol=0, atol=1e-5)


def test_classic_nam_schema_reads_the_same():
    model = trained_like("wavenet")
    modern = to_nam(model, 48000)
    classic = dict(modern, version="0.5.4")
    classic["config"] = {
        "layers": [
            {
                "input_size": a.input_size,
                "condition_size": a.condition_size,
                "head_size": a.head_size,
                "channels": a.channels,
                "kernel_size": a.kernel_size,
                "dilations": a.dilations,
                "activation": a.activation,
                "gated": a.gated,
                "head_bias": a.head_bias,
            }
            for a in model.layer_arrays
        ],
        "head": None,
        "head_scale": model.head_scale,
    }
    x = real_di(0.5)
    np.testing.assert_array_equal(
        render(model_from_nam(classic), x), render(model_from_nam(modern), x)
    )


@needs_shared
def test_real_captures_reproduce_their_recorded_output():
    """The shared targets were rendered through these captures: our reader must match them."""
    x, _ = sf.read(SHARED / "di.wav", dtype="float32")
    x = x[: 48000 * 4]
    for capture, target in (
        ("TS9_HighDrive", "ts9_pushed.wav"),
        ("BlackstarHT40_AmpHighGain", "ht40_highgain.wav"),
    ):
        model = load_model_file(CAPTURES / f"{capture}.json").model
        y = render(model, x)
        expected, _ = sf.read(SHARED / target, dtype="float32", frames=len(x))
        np.testing.assert_allclose(y, expected, rtol=0, atol=1e-4)


@needs_shared
def test_ts9_capture_distorts_and_the_knob_model_takes_two_inputs():
    x = real_di(2.0)
    ts9 = load_model_file(CAPTURES / "TS9_HighDrive.json").model
    y = render(ts9, x)
    gain = float(np.dot(x, y) / np.dot(x, x))
    linear_esr = float(np.sum((y - gain * x) ** 2) / np.sum(y**2))
    assert linear_esr > 0.2, "the TS9 capture should not be a linear gain"
    crest_in = np.max(np.abs(x)) / np.sqrt(np.mean(x**2))
    crest_out = np.max(np.abs(y)) / np.sqrt(np.mean(y**2))
    assert crest_out < 0.8 * crest_in, "an overdrive compresses peaks"

    knob = load_model_file(CAPTURES / "TS9_DriveKnob.json").model
    assert knob.input_channels == 2
    levels = []
    for drive in (0.0, 0.5, 1.0):
        both = np.stack([x, np.full_like(x, drive)])
        with torch.no_grad():
            levels.append(knob(torch.from_numpy(both)[None])[0, 0].numpy())
    assert not np.allclose(levels[0], levels[2], atol=1e-3), "the knob must change the sound"
    recorded, _ = sf.read(
        SHARED / "ts9_drive" / "drive_0.50.wav", dtype="float32", start=48000 * 5, frames=len(x)
    )
    # the knob model, started on the same DI, lands on the recorded drive-0.5 output once its state settles
    full = np.stack(
        [
            sf.read(SHARED / "di.wav", dtype="float32", frames=48000 * 7)[0],
            np.full(48000 * 7, 0.5, np.float32),
        ]
    )
    with torch.no_grad():
        y_full = knob(torch.from_numpy(full)[None])[0, 0].numpy()[48000 * 5 :]
    np.testing.assert_allclose(y_full, recorded, atol=1e-4)


@pytest.mark.parametrize("skip, inputs", [(True, 1), (False, 1), (True, 2)])
def test_proteus_export_then_import_is_exact(skip, inputs):
    torch.manual_seed(4)
    model = LSTM(input_size=inputs, hidden_size=10, num_layers=2, input_skip=skip).eval()
    back, rate = lstm_from_proteus(json.loads(json.dumps(lstm_to_proteus(model, 44100))))
    assert rate == 44100 and back.input_skip == skip and back.input_channels == inputs
    x = torch.randn(1, inputs, 5000) * 0.3
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), model(x).numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("skip, knobs", [(True, []), (False, []), (True, ["drive", "tone"])])
def test_aidax_export_then_import_plays_as_aidax_does(skip, knobs):
    torch.manual_seed(6)
    model = LSTM(hidden_size=16, input_skip=skip, params=knobs or None).eval()
    data = json.loads(json.dumps(to_aidax(model, 44100)))
    assert data["in_shape"][-1] == 1 + len(knobs) and data["in_skip"] == int(skip)
    assert [layer["type"] for layer in data["layers"]] == ["lstm", "dense"]
    back, rate, gain_db = from_aidax(data)
    assert rate == 44100 and gain_db == 0.0 and back.params == (knobs or [])
    assert back.settle == 2048  # AIDA-X: reset to zero, then 2048 samples of silence
    x = torch.randn(1, 1 + len(knobs), 3000) * 0.3
    with torch.no_grad():  # the same network, from the same state
        np.testing.assert_allclose(back(x).numpy(), model(x).numpy(), rtol=0, atol=1e-6)


def test_aidax_gains_are_read_as_aidax_applies_them():
    torch.manual_seed(7)
    model = LSTM(hidden_size=8, input_skip=False).eval()
    data = {**to_aidax(model, 48000), "in_gain": 6.0, "out_gain": -6.0}
    back, _, gain_db = from_aidax(data)
    assert gain_db == 6.0  # applied before the model, like ampnet's input gain
    x = torch.randn(1, 1, 2000) * 0.1
    with torch.no_grad():
        expected = 10 ** (-6 / 20) * model(x)  # no skip: the output gain scales the head
        np.testing.assert_allclose(back(x).numpy(), expected.numpy(), rtol=0, atol=1e-6)
    with pytest.raises(AmpnetError, match="out_gain=-6.0 dB with in_skip is not supported"):
        from_aidax({**data, "in_skip": 1})


@pytest.mark.parametrize(
    "model, expected",
    [
        (LSTM(hidden_size=10), "AIDA-X compiles LSTMs of 8, 12, 16, 20, 24, 32, 40, 64, 80 units"),
        (LSTM(hidden_size=8, num_layers=2), "AIDA-X plays one recurrent layer"),
        (LSTM(hidden_size=8, params=["a", "b", "c"]), "AIDA-X takes at most 2 knobs"),
    ],
)
def test_what_aidax_cannot_play_is_refused_by_name(model, expected):
    assert expected in aidax_unfit(model)
    with pytest.raises(AmpnetError, match=expected):
        to_aidax(model, 48000)


@pytest.mark.parametrize("kind", ["wavenet", "lstm"])
def test_onnx_and_torchscript_stream_like_ampnet(kind, tmp_path):
    model = trained_like(kind)
    x = real_di(1.0)[None]
    blocks = [64, 4096, 1, 10000, x.shape[1] - 14161]
    ours = render(model, x[0])
    export_onnx(model, tmp_path / "m.onnx")
    export_torchscript(model, tmp_path / "m.ts.pt")
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x, blocks), ours, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        run_torchscript(tmp_path / "m.ts.pt", x, blocks), ours, rtol=0, atol=1e-5
    )


@pytest.mark.slow
def test_export_command_writes_every_fitting_format_and_a_card(tmp_path):
    model = trained_like("wavenet")
    run = tmp_path / "outputs" / "wavenet" / "r1"
    write_checkpoint(model, run / "checkpoints" / "best.ckpt", sample_rate=48000, input_gain_db=3.0)
    (run / "metrics.json").write_text(json.dumps({"val_esr": 0.01, "test_esr": 0.02}))
    result = run_module(
        "ampnet.export",
        "ckpt=best",
        "gear_type=pedal",
        "tone_type=overdrive",
        "modeled_by=tests",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = run / "export"
    card = json.loads((out / "model_card.json").read_text())
    assert set(card["files"]) == {"nam", "onnx", "torchscript"}
    assert card["latency_samples"] == 0 and card["receptive_field"] == model.receptive_field
    assert card["metrics"]["val_esr"] == 0.01 and card["sample_rate"] == 48000
    nam = json.loads((out / card["files"]["nam"]["path"]).read_text())
    assert (
        nam["metadata"]["gear_type"] == "pedal"
        and nam["metadata"]["training"]["validation_esr"] == 0.01
    )
    assert isinstance(nam["metadata"]["loudness"], float) and 0 <= nam["metadata"]["gain"] <= 1
    # the 3 dB input gain the model was trained with is folded in: the files take the raw DI
    x = real_di(0.5)
    expected = render(model, x * np.float32(10 ** (3 / 20)))
    np.testing.assert_allclose(nam_forward(nam, x), expected, atol=1e-5)
    for info in card["files"].values():
        assert info["max_abs_diff"] <= 1e-4 and info["bytes"] > 0
    # the card says how much aliasing the model adds, as it plays the raw DI (gain folded in)
    gain = np.float32(10 ** (3 / 20))
    aliasing = aliasing_report(lambda a: render(model, a * gain), 48000)
    assert [t["aliasing_db"] for t in card["aliasing"]["tones"]] == pytest.approx(
        [t["aliasing_db"] for t in aliasing["tones"]], abs=0.05
    )
    assert f"ampnet: aliasing     {card['aliasing']['worst_db']:.0f} dB" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, expected",
    [
        (["gear_type=amplifier"], "gear_type=amplifier: choose one of amp, pedal"),
        (["formats=[nam]"], "formats: nam cannot hold this LSTM"),
        (["ckpt=nowhere.ckpt"], "nowhere.ckpt: no such checkpoint"),
    ],
)
def test_export_refuses_clearly(args, expected, tmp_path):
    write_checkpoint(
        LSTM(hidden_size=4), tmp_path / "outputs" / "lstm" / "r" / "checkpoints" / "best.ckpt"
    )
    result = run_module("ampnet.export", *args, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert expected in line and "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"version": "0.7.0", "architecture": "WaveNet", "conf', "not valid JSON"),
        (
            '{"version": "0.7.0", "architecture": "ConvNet", "config": {}, "weights": []}',
            "architecture 'ConvNet'",
        ),
        ("WEIGHTS", "weights but its config needs"),
    ],
)
def test_bad_model_files_are_one_clear_line(content, expected, tmp_path):
    if content == "WEIGHTS":
        data = to_nam(trained_like("wavenet"), 48000)
        data["weights"] = data["weights"][:-3]
        content = json.dumps(data)
    (tmp_path / "bad.nam").write_text(content)
    sf.write(tmp_path / "in.wav", np.zeros(1000, np.float32), 48000)
    result = run_module(
        "ampnet.process",
        str(tmp_path / "in.wav"),
        "-o",
        str(tmp_path / "o.wav"),
        "--model",
        str(tmp_path / "bad.nam"),
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "bad.nam" in line and expected in line, line


@pytest.mark.slow
def test_bad_aidax_files_are_one_clear_line(tmp_path):
    data = lstm_to_proteus(LSTM(hidden_size=4), 48000)
    data["state_dict"]["rec.weight_hh_l0"] = [[0.0] * 3] * 16
    (tmp_path / "bad.json").write_text(json.dumps(data))
    sf.write(tmp_path / "in.wav", np.zeros(1000, np.float32), 48000)
    result = run_module(
        "ampnet.process",
        str(tmp_path / "in.wav"),
        "-o",
        str(tmp_path / "o.wav"),
        "--model",
        str(tmp_path / "bad.json"),
    )
    assert result.returncode == 2
    assert (
        "bad.json: rec.weight_hh_l0 has shape (16, 3) but the config needs (16, 4)" in result.stderr
    )
