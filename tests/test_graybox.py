"""The gray-box model: an exact finite-memory system, settings that read back, exports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.signal
import torch
from hydra.utils import instantiate

from ampnet.formats.runtime import export_onnx, export_torchscript, run_onnx, run_torchscript
from ampnet.models import GrayBox, build_model
from ampnet.models.eq import EQ, biquad
from ampnet.stream import Streamer, render

from .conftest import run_module, synth_pair, write_checkpoint
from .test_configs import compose_train
from .test_stream import BACKENDS, offline, signal, stream

PRE = [
    {"type": "low_shelf", "freq": 120.0, "q": 0.7, "gain_db": 6.0},
    {"type": "peak", "freq": 900.0, "q": 1.5, "gain_db": -8.0},
    {"type": "high_shelf", "freq": 4000.0, "q": 0.6, "gain_db": 4.0},
]
POST = [
    {"type": "highpass", "freq": 60.0, "q": 0.8},
    {"type": "peak", "freq": 2500.0, "q": 0.9, "gain_db": 5.0},
    {"type": "lowpass", "freq": 7000.0, "q": 0.707},
]


def shaped(**kwargs) -> GrayBox:
    """A gray box whose every block does something (EQ gains set, a random cabinet)."""
    torch.manual_seed(0)
    model = GrayBox(pre_eq=PRE, post_eq=POST, input_gain_db=6.0, **kwargs).eval()
    with torch.no_grad():
        if model.cab is not None:
            model.cab.copy_(torch.randn_like(model.cab) * torch.linspace(1, 0.1, len(model.cab)))
        if model.knobs is not None:  # knobs that move every gain
            model.knobs[-1].weight.normal_(0, 0.2)
    return model


def with_knobs(model: GrayBox, x: np.ndarray, *knobs: np.ndarray) -> np.ndarray:
    """The model offline over x with one row per knob, silence (knobs held) before."""
    rows = torch.from_numpy(np.stack([x, *knobs]).astype(np.float32))[None]
    with torch.no_grad():
        return model(rows, pad_start=True)[0, 0].numpy()


def test_causal_with_an_exact_receptive_field():
    """Input sample p moves outputs p .. p + receptive_field - 1, none before or after
    (short enough for direct convolutions, so untouched outputs are bit-identical)."""
    model = shaped(eq_taps=32, cab_taps=16).double()
    rf = model.receptive_field
    assert rf == 32 + 32 + 16 - 2
    x = 0.3 * torch.randn(1, 1, 150, dtype=torch.float64)
    p = 30
    with torch.no_grad():
        base = model(x, pad_start=True)
        x2 = x.clone()
        x2[..., p] += 0.5
        changed = (model(x2, pad_start=True) != base)[0, 0]
    assert not changed[:p].any(), "an output moved before the input that changed"
    assert changed[p] and changed[p + rf - 1], "the receptive field's ends have no effect"
    assert not changed[p + rf :].any(), "outputs depend on samples older than the receptive field"


def test_silence_gives_silence():
    model = shaped(cab_taps=16, params=["drive"])
    x = torch.zeros(1, 2, 5000)
    x[:, 1] = 0.7
    with torch.no_grad():
        assert model(x, pad_start=True).abs().max() == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sizes", [[1], [63], [64], [4096], [1, 7, 64, 300, 2, 4096, 33]])
def test_stream_equals_offline_for_any_block_sizes(sizes, backend):
    model = shaped(cab_taps=128)
    x = signal(6000 if sizes != [1] else 1500)
    streamer = Streamer(model, max_block=512, backend=backend)
    assert streamer.backend == backend
    np.testing.assert_allclose(stream(streamer, x, sizes), offline(model, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_render_equals_offline(backend):
    model = shaped(cab_taps=128)
    x = signal(20000)
    np.testing.assert_allclose(
        render(model, x, chunk=3000, backend=backend), offline(model, x), rtol=0, atol=1e-5
    )


@pytest.mark.skipif("native" not in BACKENDS, reason="the native kernels cannot be built here")
@pytest.mark.parametrize(
    "settings",
    [
        {"eq_taps": 100},  # taps that are no whole number of vectors
        {"eq_taps": 78, "cab_taps": 37, "hidden": 5},
        {"eq_taps": 64, "nonlinearity": "rational", "degrees": [3, 2]},
        {"nonlinearity": "rational", "degrees": [6, 5], "cab_taps": 20},
    ],
)
def test_the_native_kernel_plays_every_curve_and_length_like_offline(settings):
    """The MLP and the rational curve, FIRs of any length, with and without a cabinet, a
    model whose curve and gains are away from their start; silence inside stays silence."""
    model = shaped(**settings)
    with torch.no_grad():
        for p in model.curve.parameters():
            p.add_(0.2 * torch.randn_like(p))
        model.output_gain.fill_(-1.7)
    x = signal(5000)
    x[2000:3500] = 0.0
    streamer = Streamer(model, max_block=512, backend="native")
    got, want = stream(streamer, x, [1, 7, 64, 300, 2, 4096, 33]), offline(model, x)
    # float32 rounding scales with the level: these random gains reach about 9 (the rational
    # curve of degree 6 differed by 1.1e-5 there on an AMD EPYC), so 1e-5 of the peak or of 1
    atol = 1e-5 * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    assert np.abs(want).max() > 0.05
    quiet = slice(2000 + model.receptive_field, 3500)
    assert not got[quiet].any(), "silence in gave something out"
    streamer.reset()
    np.testing.assert_allclose(stream(streamer, x, [64]), want, rtol=0, atol=atol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("settings", [{}, {"cab_taps": 40, "nonlinearity": "rational"}])
def test_knob_ramps_stream_like_offline(settings, backend):
    """Knobs held, turned (a ramp over a block longer than max_block) and held again: the
    Streamer's knob rows through every EQ path equal one offline pass; reset holds the knobs."""
    model = shaped(params=["drive", "tone"], eq_taps=256, **settings)
    x = signal(6000)
    streamer = Streamer(model, params={"drive": 0.2, "tone": 0.9}, max_block=128, backend=backend)
    assert streamer.backend == backend
    first = streamer.process(x[:1000])
    streamer.set_params(drive=0.8, tone=0.1)
    ramped = streamer.process(x[1000:1300])
    rest = stream(streamer, x[1300:], [1, 7, 64, 300, 2, 4096, 33])
    t = np.arange(1, 301, dtype=np.float32) / 300
    drive = np.concatenate([np.full(1000, 0.2), 0.2 + 0.6 * t, np.full(4700, 0.8)])
    tone = np.concatenate([np.full(1000, 0.9), 0.9 - 0.8 * t, np.full(4700, 0.1)])
    want = with_knobs(model, x, drive, tone)
    np.testing.assert_allclose(np.concatenate([first, ramped, rest]), want, rtol=0, atol=1e-5)
    held = with_knobs(model, x, np.full(6000, 0.8), np.full(6000, 0.1))
    assert np.abs(want - held)[:1000].max() > 1e-2, "the knobs change nothing"
    streamer.reset()
    np.testing.assert_allclose(stream(streamer, x, [64]), held, rtol=0, atol=1e-5)


def test_moving_knobs_stream_exactly():
    """Knob offsets act sample by sample: blocks with a sweeping knob equal one offline pass."""
    model = shaped(params=["drive", "tone"])
    x = np.stack([signal(7000), np.linspace(0, 1, 7000), np.linspace(1, 0.2, 7000)])
    x = torch.from_numpy(x.astype(np.float32))[None]
    with torch.no_grad():
        whole = model(x, pad_start=True)
        state = model.initial_state(1, x[:, 1:, 0])
        parts, pos = [], 0
        for n in [1, 64, 4096, 63, 500, 2376]:
            y, state = model.forward_with_state(x[..., pos : pos + n], state)
            parts.append(y)
            pos += n
        held = x.clone()
        held[:, 1:] = x[:, 1:, :1]
        still = model(held, pad_start=True)
    torch.testing.assert_close(torch.cat(parts, -1), whole, rtol=0, atol=1e-5)
    assert (whole - still).abs().max() > 1e-2, "the knobs change nothing"


@pytest.mark.parametrize("knobs", [False, True])
def test_onnx_and_torchscript_stream_like_ampnet(knobs, tmp_path):
    model = shaped(cab_taps=64, params=["drive"] if knobs else None)
    x = signal(16000)[None]
    if knobs:
        x = np.concatenate([x, np.linspace(0, 1, x.shape[1], dtype=np.float32)[None]])
    blocks = [64, 4096, 1, 10000, x.shape[1] - 14161]
    ours = offline(model, x[0]) if not knobs else None
    if knobs:
        with torch.no_grad():
            ours = model(torch.from_numpy(x)[None], pad_start=True)[0, 0].numpy()
    export_onnx(model, tmp_path / "m.onnx")
    export_torchscript(model, tmp_path / "m.ts.pt")
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x, blocks), ours, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        run_torchscript(tmp_path / "m.ts.pt", x, blocks), ours, rtol=0, atol=1e-5
    )


def test_frequency_sampled_eq_matches_the_biquads():
    """The FIR's response (its DTFT between grid points) against the biquads' (scipy)."""
    rate, taps = 48000, 2048
    eq = EQ(PRE + POST, taps, rate).double()
    with torch.no_grad():
        fir = eq.impulse_responses()[0].numpy()
        sos = []
        for kind, w0, q, gain in eq.settings():
            b, a = biquad(kind, w0, q, gain)
            sos.append(np.concatenate([b.numpy(), a.numpy()]) / float(a[0]))
    freqs = np.array([50.0, 97.3, 440.0, 1000.0, 2500.0, 6666.0, 12000.0])  # off the grid
    _, exact = scipy.signal.sosfreqz(np.array(sos), worN=freqs, fs=rate)
    _, ours = scipy.signal.freqz(fir, worN=freqs, fs=rate)
    np.testing.assert_allclose(20 * np.log10(np.abs(ours)), 20 * np.log10(np.abs(exact)), atol=0.02)


def test_bands_do_what_their_settings_say():
    """RBJ's definitions: a peak's gain at its centre, a shelf's at its far end, a pass
    band's |H| = Q at its corner (checked on the FIR that runs)."""
    rate = 48000
    cases = [
        ({"type": "peak", "freq": 750.0, "q": 1.2, "gain_db": 7.5}, 750.0, 7.5),
        ({"type": "low_shelf", "freq": 200.0, "q": 0.7, "gain_db": -6.0}, 0.0, -6.0),
        ({"type": "high_shelf", "freq": 3000.0, "q": 0.7, "gain_db": 5.0}, 24000.0, 5.0),
        ({"type": "highpass", "freq": 100.0, "q": 0.9}, 100.0, 20 * math.log10(0.9)),
        ({"type": "lowpass", "freq": 3000.0, "q": 0.6}, 3000.0, 20 * math.log10(0.6)),
    ]
    for band, freq, gain_db in cases:
        with torch.no_grad():
            taps = EQ([band], 2048, rate).double().impulse_responses()[0].numpy()
        _, h = scipy.signal.freqz(taps, worN=[freq], fs=rate)
        assert 20 * np.log10(abs(h[0])) == pytest.approx(gain_db, abs=0.01), band


def test_config_rebuilds_the_same_model():
    model = shaped(nonlinearity="rational", cab_taps=32, params=["drive"])
    rebuilt = build_model(json.loads(json.dumps(model.config())))
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 2, 5000)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x, pad_start=True), model(x, pad_start=True))


def test_describe_reads_back_the_settings_that_were_set():
    model = GrayBox(pre_eq=PRE, post_eq=POST, input_gain_db=9.0, output_gain_db=-4.0, cab_taps=256)
    with torch.no_grad():
        model.output_gain.neg_()
    blocks = json.loads(json.dumps(model.describe(48000)))
    for key, bands in (("pre_eq", PRE), ("post_eq", POST)):
        assert blocks[key]["taps"] == 2048 and blocks[key]["fir_error_db"] < 0.05
        assert [b["type"] for b in blocks[key]["bands"]] == [b["type"] for b in bands]
        for got, want in zip(blocks[key]["bands"], bands, strict=True):
            assert got["freq_hz"] == pytest.approx(want["freq"], rel=1e-4)
            assert got["q"] == pytest.approx(want["q"], rel=1e-4)
            assert got.get("gain_db", 0.0) == pytest.approx(want.get("gain_db", 0.0), abs=1e-4)
    assert blocks["input_gain_db"] == pytest.approx(9.0, abs=1e-4)
    assert blocks["output_gain_db"] == pytest.approx(-4.0, abs=1e-4)
    assert blocks["polarity"] == -1 and blocks["cab"] == {"taps": 256}
    assert blocks["nonlinearity"]["type"] == "mlp" and len(blocks["nonlinearity"]["layers"]) == 3
    # at another sample rate the same filters sit at other frequencies
    half = model.describe(24000)["pre_eq"]["bands"][1]["freq_hz"]
    assert half == pytest.approx(PRE[1]["freq"] / 2, rel=1e-4)
    knobbed = GrayBox(params=["drive", "tone"])
    with torch.no_grad():
        knobbed.knobs[-1].bias[0] = 1.0  # the input gain's offset, whatever the knobs
    offsets = knobbed.describe()["knobs"]["offsets_db"]
    assert set(offsets) == {"all at 0", "drive=1", "tone=1"}
    assert offsets["tone=1"]["input_gain"] == pytest.approx(24 * math.tanh(1.0), abs=1e-4)
    assert offsets["all at 0"]["pre_eq_gain_bands"] == [0.0, 0.0, 0.0]
    assert len(offsets["drive=1"]["post_eq_gain_bands"]) == 4
    rational = GrayBox(nonlinearity="rational").describe()["nonlinearity"]
    assert rational["numerator"] == pytest.approx([0, 1, 0, 105 / 945, 0, 1 / 945])
    assert rational["denominator"] == pytest.approx([1, 0, 420 / 945, 0, 15 / 945])
    assert rational["slope_at_0"] == pytest.approx(1.0, abs=1e-4)


def test_curves_show_the_eqs_and_the_curve():
    model = shaped(nonlinearity="rational", cab_taps=64)
    curves = model.curves(48000)
    f = curves["frequency_hz"]
    at = np.argmin(np.abs(f - 900.0))  # the pre-EQ's -8 dB peak
    assert curves["pre_eq_db"][at] == pytest.approx(-8.0, abs=0.3)
    np.testing.assert_allclose(curves["post_eq_fir_db"], curves["post_eq_db"], atol=0.1)
    x, y = curves["nonlinearity_in"], curves["nonlinearity_out"]
    np.testing.assert_allclose(y, np.tanh(x), atol=1e-3)  # the rational starts as tanh
    assert curves["cab_db"].shape == f.shape


def test_a_folded_input_gain_plays_the_raw_input_like_the_gain_did():
    model = shaped(cab_taps=16)
    folded = model.fold_input_gain(10 ** (3 / 20))
    x = torch.randn(1, 1, 3000)
    with torch.no_grad():
        torch.testing.assert_close(
            folded(x, pad_start=True), model(x * 10 ** (3 / 20), pad_start=True), rtol=0, atol=1e-5
        )
    assert folded.describe()["input_gain_db"] == pytest.approx(9.0, abs=1e-4)


@pytest.mark.parametrize("nonlinearity", ["mlp", "rational"])
def test_a_few_adam_steps_fit_gain_tanh_and_low_pass(nonlinearity):
    x, y = (torch.from_numpy(a) for a in synth_pair(1.0, 16000, seed=0))
    torch.manual_seed(0)
    model = GrayBox(nonlinearity=nonlinearity, eq_taps=512, sample_rate=16000)
    rf = model.receptive_field

    def esr() -> float:
        with torch.no_grad():
            return float(
                ((model(x[None, None], pad_start=True)[0, 0] - y) ** 2).sum() / (y**2).sum()
            )

    before = esr()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    starts = torch.arange(0, len(x) - rf - 2048, 1500)
    for step in range(60):
        s = starts[torch.randint(len(starts), (4,), generator=torch.Generator().manual_seed(step))]
        xb = torch.stack([x[i : i + rf - 1 + 2048] for i in s])[:, None]
        yb = torch.stack([y[i + rf - 1 : i + rf - 1 + 2048] for i in s])[:, None]
        loss = ((model(xb) - yb) ** 2).mean() / (yb**2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = esr()
    assert after < before / 5 and after < 0.1, (before, after)


@pytest.mark.parametrize(
    "name, params, rf",
    [("graybox", 220, 4095), ("graybox_rational", 37, 4095), ("graybox_cab", 732, 4606)],
)
def test_presets_instantiate_with_their_sizes(name, params, rf, tmp_path):
    model = instantiate(compose_train([f"model={name}"], tmp_path).model)
    assert isinstance(model, GrayBox)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.receptive_field == rf and model.history == rf - 1 and model.params == []
    assert model(torch.randn(1, 1, rf + 9)).shape[-1] == 10


@pytest.mark.slow
def test_export_command_writes_the_blocks_and_their_figure(tmp_path):
    model = shaped(cab_taps=64)
    run = tmp_path / "outputs" / "graybox" / "r1"
    write_checkpoint(model, run / "checkpoints" / "best.ckpt", sample_rate=48000, input_gain_db=2.0)
    result = run_module("ampnet.export", "ckpt=best", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = run / "export"
    card = json.loads((out / "model_card.json").read_text())
    assert set(card["files"]) == {"onnx", "torchscript"}
    assert all(info["max_abs_diff"] <= 1e-4 for info in card["files"].values())
    blocks = card["blocks"]
    assert [b["freq_hz"] for b in blocks["pre_eq"]["bands"]] == pytest.approx(
        [b["freq"] for b in PRE], rel=1e-4
    )
    assert blocks["input_gain_db"] == pytest.approx(6.0 + 2.0, abs=1e-4)  # the gain is folded in
    assert blocks["cab"] == {"taps": 64} and blocks["receptive_field"] == model.receptive_field
    png = out / card["blocks_figure"]
    assert png.name == "test.blocks.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
