"""GCN and TCN (ampnet.models.tcn): causality and the exact receptive field, streaming equals
offline, knob FiLM with ramps, a strictly causal TFiLM on a fixed block grid, exports,
training, presets."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from ampnet import kernels
from ampnet.formats import load_model_file, nam
from ampnet.formats.runtime import export_onnx, export_torchscript, run_onnx, run_torchscript
from ampnet.losses import esr
from ampnet.models import TCN, build_model
from ampnet.stream import Streamer, render

from .conftest import synth_pair
from .test_configs import compose_train
from .test_stream import BACKENDS, signal, stream

SMALL = {"channels": 4, "kernel_size": 3, "dilations": [1, 2, 4]}  # receptive field 15
KINDS = {
    "gcn": {"gated": True},
    "tcn": {"gated": False},
    "gcn_tfilm": {"gated": True, "tfilm_block": 16},
    "tcn_tfilm": {"gated": False, "tfilm_block": 7},
}
MIXED_SIZES = [1, 7, 64, 300, 2, 4096, 33]


def tiny(kind: str = "gcn", seed: int = 0, **overrides) -> TCN:
    torch.manual_seed(seed)
    return TCN(**{**SMALL, **KINDS[kind], **overrides}).eval()


def offline(model: TCN, x: np.ndarray, knobs=()) -> np.ndarray:
    """What a player hears: the model over audio ``x`` from silence, knob rows ``knobs``
    (constants or per-sample arrays)."""
    rows = [np.broadcast_to(np.float32(k), x.shape) for k in knobs]
    c = torch.from_numpy(np.stack([x, *rows]).astype(np.float32))[None]
    with torch.no_grad():
        return model(c, pad_start=True)[0, 0].numpy()


# --- causality and the receptive field ------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_output_before_a_perturbation_does_not_move(kind):
    model = tiny(kind)
    x = torch.randn(1, 1, 300)
    with torch.no_grad():
        base = model(x, pad_start=True)
        for n in (0, 57, 150, 299):
            x2 = x.clone()
            x2[..., n] += 1.0
            moved = model(x2, pad_start=True)
            assert torch.equal(moved[..., :n], base[..., :n]), f"output before {n} changed"
            assert not torch.equal(moved[..., n], base[..., n]), f"output at {n} ignores input {n}"


@pytest.mark.parametrize("kind, kernel_size", [("gcn", 3), ("tcn", 3), ("tcn", [2, 5, 3])])
def test_receptive_field_is_exactly_what_the_network_uses(kind, kernel_size):
    model = tiny(kind, kernel_size=kernel_size)
    kernels = kernel_size if isinstance(kernel_size, list) else [kernel_size] * 3
    rf = model.receptive_field
    assert rf == 1 + sum((k - 1) * d for k, d in zip(kernels, [1, 2, 4], strict=True))
    x = torch.randn(1, 1, 200)
    p = 60
    with torch.no_grad():
        base = model(x, pad_start=True)
        x2 = x.clone()
        x2[..., p] += 1.0
        changed = (model(x2, pad_start=True) != base)[0, 0]
    assert changed[p : p + rf].all(), "an output within the receptive field ignores the input"
    assert not changed[p + rf :].any(), "the output depends on samples older than the field"
    assert model(torch.randn(1, 1, rf)).shape[-1] == 1
    assert model.finite_memory and model.burn_in == 0 and model.history == rf - 1


def test_valid_output_length_and_pad_start():
    model = tiny("gcn")
    x = torch.randn(2, 1, 100)
    assert model(x).shape == (2, 1, 100 - model.receptive_field + 1)
    assert model(x, pad_start=True).shape == (2, 1, 100)
    padded = torch.nn.functional.pad(x, (model.receptive_field - 1, 0))
    torch.testing.assert_close(model(x, pad_start=True), model(padded), rtol=0, atol=0)
    tfilm = tiny("tcn_tfilm")
    assert not tfilm.finite_memory and tfilm.burn_in == 32 * 7
    assert tfilm.history == tfilm.receptive_field - 1 + tfilm.burn_in
    assert tfilm(x).shape == (2, 1, 100 - tfilm.receptive_field + 1)


# --- streaming ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sizes", [[1], [63], [64], [4096], MIXED_SIZES])
def test_stream_equals_offline_for_any_block_sizes(kind, sizes):
    model = tiny(kind)
    x = signal(5000 if sizes != [1] else 700)
    streamer = Streamer(model, max_block=512, backend="torch")
    np.testing.assert_allclose(stream(streamer, x, sizes), offline(model, x), rtol=0, atol=1e-5)
    streamer.reset()
    np.testing.assert_allclose(streamer.process(x), offline(model, x), rtol=0, atol=1e-5)


SHAPES = [
    {},
    {"kernel_size": [3, 2, 5]},
    {"dilations": [1]},
    {"channels": 9, "dilations": [1, 3, 9, 27]},
]
PRELU = {"activation": {"type": "PReLU", "negative_slope": 0.2}}  # the TCN's own activation


@pytest.mark.skipif(not kernels.available(), reason="native kernels not built")
@pytest.mark.parametrize(
    "kind, overrides", [(k, o) for k in ("gcn", "tcn") for o in SHAPES] + [("tcn", PRELU)]
)
def test_gcns_and_tcns_stream_on_the_wavenet_kernel_like_offline(kind, overrides):
    """A GCN or a TCN is a WaveNet layer stack in other words (TCN.as_wavenet): it streams
    on the native WaveNet kernel, equal to its own offline output, trained gains included."""
    model = tiny(kind, seed=3, **overrides)
    with torch.no_grad():
        for block in model.blocks:
            if block.gain is not None:  # both signs, away from zero
                sign = torch.randint(0, 2, block.gain.shape) * 2 - 1
                block.gain.uniform_(0.2, 1.5).mul_(sign)
    assert kernels.unsupported(model) is None
    x = signal(6000)
    for sizes in ([1], [63], [64], [4096], MIXED_SIZES):
        streamer = Streamer(model, max_block=512)
        assert streamer.backend == "native"
        y = stream(streamer, x[:700] if sizes == [1] else x, sizes)
        np.testing.assert_allclose(y, offline(model, x)[: len(y)], rtol=0, atol=1e-5)
    np.testing.assert_allclose(render(model, x), offline(model, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["gcn", "tcn"])
def test_gcns_and_tcns_export_a_nam_that_plays_them(kind, tmp_path):
    """The .nam of a GCN or a TCN (its WaveNet form) read back plays what the network itself
    plays; one with TFiLM is refused with the reason."""
    model = tiny(kind, seed=4, dilations=[1, 2, 4, 8])
    path = tmp_path / "m.nam"
    path.write_text(json.dumps(nam.to_nam(model, 48000)))
    x = signal(4000)
    played = render(load_model_file(path).model, x, backend="torch")
    np.testing.assert_allclose(played, offline(model, x), rtol=0, atol=1e-5)
    assert nam.unfit_reason(model) is None
    assert "not a TCN" in nam.unfit_reason(tiny(f"{kind}_tfilm"))


def strong_tfilm(model: TCN) -> TCN:
    """TFiLM far from the identity it starts at, so a wrong GRU step or grid shows."""
    with torch.no_grad():
        for block in model.blocks:
            block.tfilm.modulation.weight.mul_(10.0)
            for p in block.tfilm.rnn.parameters():
                p.mul_(3.0)
    return model


def beyond_the_wavenet(kind: str) -> TCN:
    """The TCNs TCN.as_wavenet cannot say: TFiLM, knob FiLM (an MLP), a zero residual gain."""
    if kind == "gcn knobs":
        return tiny("gcn", params=["drive"])
    if kind == "tcn zero gain":  # a stream kept over 1 / gain would not be exact
        model = tiny("tcn")
        with torch.no_grad():
            model.blocks[1].gain[2] = 0.0
        return model
    if kind == "tcn_tfilm prelu knobs":
        return strong_tfilm(tiny("tcn_tfilm", seed=2, params=["drive", "tone"], **PRELU))
    if kind == "gcn_tfilm knobs":
        return strong_tfilm(tiny("gcn_tfilm", seed=3, params=["drive"]))
    return strong_tfilm(tiny(kind, seed=1))


BEYOND = ["gcn_tfilm", "tcn_tfilm", "gcn knobs", "tcn zero gain", "tcn_tfilm prelu knobs",
          "gcn_tfilm knobs"]  # fmt: skip


@pytest.mark.skipif(not kernels.available(), reason="native kernels not built")
@pytest.mark.parametrize("kind", BEYOND)
def test_what_the_wavenet_kernel_cannot_say_streams_on_the_tcn_kernel(kind):
    """TFiLM (the GRU stepped once per TFiLM block, the grid from the file start), knob FiLM
    and zero gains run on the TCN's own kernel, equal to offline for any block sizes."""
    model = beyond_the_wavenet(kind)
    assert model.as_wavenet() is None
    assert kernels.unsupported(model) is None
    held = dict.fromkeys(model.params, 0.4)
    x = signal(5000, seed=7)
    expected = offline(model, x, list(held.values()))
    for sizes in ([1], [63], [64], [4096], MIXED_SIZES):
        streamer = Streamer(model, params=held, max_block=4096, backend="native")
        assert streamer.backend == "native"
        np.testing.assert_allclose(stream(streamer, x, sizes), expected, rtol=0, atol=1e-5)
        streamer.reset()  # back to the state after silence: the same output again
        np.testing.assert_allclose(stream(streamer, x, sizes), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["gcn", "tcn_tfilm"])
def test_render_in_chunks_and_threads_equals_offline(kind):
    model = tiny(kind)
    x = signal(20000)
    for chunk, threads in ((997, 1), (4096, 3)):
        y = render(model, x, chunk=chunk, threads=threads, backend="torch")
        np.testing.assert_allclose(y, offline(model, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_streaming_allocates_nothing_that_grows(backend):
    model = tiny("gcn_tfilm", params=["drive"])
    streamer = Streamer(model, params={"drive": 0.5}, max_block=256, backend=backend)
    block, out = signal(64), np.empty(64, np.float32)
    for _ in range(100):
        streamer.process(block, out)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(1000):
        streamer.process(block, out)
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes more after 1000 blocks"


# --- TFiLM ----------------------------------------------------------------------------------


def test_tfilm_modulates_a_block_only_from_the_blocks_before_it():
    """With kernel 1 the convolutions remember nothing: only TFiLM carries the past."""
    model = tiny("gcn_tfilm", kernel_size=1)
    assert model.receptive_field == 1
    x = torch.randn(1, 1, 160) * 0.3
    s = 3 * 16 + 5  # in block 3
    with torch.no_grad():
        base = model(x, pad_start=True)[0, 0]
        x2 = x.clone()
        x2[..., s] += 5.0  # the block's peak
        moved = model(x2, pad_start=True)[0, 0]
    changed = moved != base
    assert not changed[:s].any() and changed[s]
    assert not changed[s + 1 : 4 * 16].any(), "block 3's modulation saw its own samples"
    assert changed[4 * 16 : 5 * 16].all(), "block 4's modulation ignores block 3"


def test_tfilm_grid_starts_at_the_file_start_for_every_block_size():
    model = tiny("tcn_tfilm", seed=3)
    x = signal(3000, seed=1)
    expected = offline(model, x)
    for sizes in ([5], [7], [3, 11, 700], [2048]):
        streamer = Streamer(model, max_block=2048, backend="torch")
        np.testing.assert_allclose(stream(streamer, x, sizes), expected, rtol=0, atol=1e-5)
    state = model.initial_state()
    _, after = model.forward_with_state(torch.zeros(1, 1, 10), state)
    n = len(model.blocks)
    assert state[n].item() == 0 and after[n].item() == 10 % 7  # the position in the block


def test_a_training_window_after_its_burn_in_plays_like_the_stream():
    """The training path (valid convolutions, every GRU from zero at the window's start)
    forgets its start within burn_in: its target part matches what a player hears."""
    model = tiny("gcn_tfilm", seed=5)
    with torch.no_grad():
        for block in model.blocks:  # a strong modulation, so the GRUs matter
            block.tfilm.modulation.weight.mul_(10.0)
    x = signal(12000, seed=2)
    played = offline(model, x)
    segment = 1000
    start = 16 * 400  # a window starting on the grid, like the file
    window = torch.from_numpy(x[start : start + model.history + segment])[None, None]
    with torch.no_grad():
        trained = model(window)[0, 0, -segment:].numpy()
        cold = build_model({**model.config(), "burn_in": 0})
    target = played[start + model.history : start + model.history + segment]
    assert np.abs(trained - target).max() < 1e-4 * np.abs(target).max()
    cold.load_state_dict(model.state_dict())
    with torch.no_grad():  # without the burn-in the window's start still shows
        short = torch.from_numpy(x[start : start + cold.history + segment])[None, None]
        early = cold.eval()(short)[0, 0, -segment:].numpy()
    target = played[start + cold.history : start + cold.history + segment]
    assert np.abs(early - target).max() > 1e-3 * np.abs(target).max()


# --- knobs ----------------------------------------------------------------------------------


def test_knobs_add_a_film_and_no_knobs_add_nothing():
    plain, knobbed = tiny("tcn"), tiny("tcn", params=["drive", "tone"])
    assert plain.film is None and plain.params == [] and "params" not in plain.config()
    assert plain.input_channels == 1 and knobbed.input_channels == 3
    extra = sum(p.numel() for p in knobbed.parameters()) - sum(
        p.numel() for p in plain.parameters()
    )
    hidden, per_block = knobbed.film_hidden, 2 * knobbed.channels * len(knobbed.blocks)
    assert extra == 2 * hidden + hidden + hidden * per_block + per_block
    x = signal(2000)
    assert np.abs(offline(knobbed, x, [0.0, 0.5]) - offline(knobbed, x, [1.0, 0.5])).max() > 1e-3
    assert np.abs(offline(knobbed, x, [0.5, 0.0]) - offline(knobbed, x, [0.5, 1.0])).max() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["gcn", "tcn_tfilm"])
def test_set_params_ramps_stream_like_offline_with_the_ramp_in_the_knob_channel(kind, backend):
    model = tiny(kind, params=["drive"])
    if kind == "tcn_tfilm":
        strong_tfilm(model)
    x = signal(2000, seed=4)
    streamer = Streamer(model, params={"drive": 0.2}, max_block=128, backend=backend)
    assert streamer.backend == backend
    first = stream(streamer, x[:1000], [64, 1, 63])
    streamer.set_params(drive=0.9)
    ramped = streamer.process(x[1000:1300])  # longer than max_block: one ramp over 300
    rest = stream(streamer, x[1300:], MIXED_SIZES)
    knob = np.full(len(x), 0.2, np.float32)
    knob[1000:1300] = 0.2 + (0.9 - 0.2) * np.arange(1, 301, dtype=np.float32) / 300
    knob[1300:] = 0.9
    np.testing.assert_allclose(
        np.concatenate([first, ramped, rest]), offline(model, x, [knob]), rtol=0, atol=1e-5
    )


# --- rebuilding and exports -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, overrides",
    [
        ("gcn", {}),
        (
            "tcn",
            {"kernel_size": [2, 5, 3], "activation": {"type": "LeakyReLU", "negative_slope": 0.2}},
        ),
        ("gcn_tfilm", {"params": ["drive"], "film_hidden": 5, "tfilm_hidden": 3}),
        ("tcn_tfilm", {"burn_in": 100}),
    ],
)
def test_config_rebuilds_the_same_network(kind, overrides):
    model = tiny(kind, **overrides)
    rebuilt = build_model(model.config())
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert rebuilt.config() == model.config()
    assert model.config()["_target_"] == "ampnet.models.TCN"
    c = torch.randn(1, model.input_channels, 300)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(c, pad_start=True), model(c, pad_start=True))


@pytest.mark.parametrize("kind", ["gcn", "tcn_tfilm"])
def test_a_folded_input_gain_plays_the_raw_input_like_the_gain_did(kind):
    model = tiny(kind)
    gain = 10 ** (3 / 20)
    folded = model.fold_input_gain(gain)
    x = signal(1500)
    np.testing.assert_allclose(offline(folded, x), offline(model, x * np.float32(gain)), atol=1e-5)
    assert np.abs(offline(folded, x) - offline(model, x)).max() > 1e-3


@pytest.mark.parametrize("kind", ["gcn", "tcn_tfilm"])
def test_onnx_and_torchscript_stream_like_ampnet(kind, tmp_path):
    model = tiny(kind, params=["drive"])
    x = signal(6000, seed=6)
    knob = np.minimum(np.linspace(0, 1.4, len(x)), 0.7).astype(np.float32)  # from 0: the zero state
    ours = offline(model, x, [knob])
    c = np.stack([x, knob])
    blocks = [64, 4096, 1, 63, 1000, len(x) - 5224]
    export_onnx(model, tmp_path / "m.onnx")
    export_torchscript(model, tmp_path / "m.ts.pt")
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", c, blocks), ours, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        run_torchscript(tmp_path / "m.ts.pt", c, blocks), ours, rtol=0, atol=1e-5
    )


# --- training and presets -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gcn", "tcn_tfilm"])
def test_a_few_optimiser_steps_reduce_the_error(kind):
    torch.manual_seed(0)
    # TFiLM at the presets' scale of blocks (tens of samples and up): 7-sample blocks make
    # hundreds of GRU steps per window, which the streaming tests cover
    settings = {**KINDS[kind], "tfilm_block": 64} if "tfilm" in kind else KINDS[kind]
    model = TCN(channels=8, kernel_size=3, dilations=[1, 2, 4, 8], **settings).train()
    x, y = synth_pair(1.0, 16000, seed=1)
    segment = 4096
    inputs = torch.from_numpy(x[: model.history + segment])[None, None]
    target = torch.from_numpy(y[model.history : model.history + segment])[None, None]
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    errors = []
    for _ in range(30):
        loss = esr(model(inputs)[..., -segment:], target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        errors.append(loss.item())
    assert errors[-1] < 0.3 * errors[0], errors


PRESETS = {  # name: (parameters, receptive field)
    "gcn": (3531, 341),
    "gcn_long": (14545, 5461),
    "tcn": (4065, 341),
    "tcn_long": (13033, 7021),
    "tcn_tfilm": (7713, 341),
}


@pytest.mark.parametrize("name", PRESETS)
def test_presets_build_with_the_sizes_their_comments_give(name, tmp_path):
    model = instantiate(compose_train([f"model={name}"], tmp_path).model).eval()
    params, rf = PRESETS[name]
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.receptive_field == rf
    x = torch.randn(1, 1, model.history + 64)
    with torch.no_grad():
        assert model(x).shape == (1, 1, model.burn_in + 64)
