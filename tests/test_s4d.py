"""S4D: the convolution (training) path, the chunked recurrence (streaming) path and the
exports compute one map; silence is a fixed point; knobs, rebuilding and training work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from ampnet.formats.runtime import export_onnx, export_torchscript, run_onnx, run_torchscript
from ampnet.losses import esr
from ampnet.models import S4D, build_model
from ampnet.models.knobs import silence
from ampnet.models.s4d import CHUNK
from ampnet.stream import Streamer, render

from .conftest import synth_pair
from .test_configs import compose_train
from .test_stream import BACKENDS, signal, stream

MIXED = [1, 7, 64, 300, 2, 4096, 33, 63]


def tiny(seed: int = 0, **kwargs) -> S4D:
    """A small S4D with a random head (a new one's head is zero: it plays its input skip)."""
    torch.manual_seed(seed)
    settings = {"hidden_size": 6, "state_size": 8, "num_layers": 2, **kwargs}
    model = S4D(**settings).eval()
    torch.nn.init.normal_(model.out.weight, std=0.5)
    return model


def offline(model: S4D, x: np.ndarray, knobs=()) -> np.ndarray:
    rows = [np.broadcast_to(np.float32(k), x.shape) for k in knobs]
    with torch.no_grad():
        c = torch.from_numpy(np.stack([x, *rows]).astype(np.float32))[None]
        return model(c, pad_start=True)[0, 0].numpy()


def recurrence(model: S4D, x: torch.Tensor) -> np.ndarray:
    """The model sample by sample in float64, straight from the equations (no tables, no FFT):
    x_k = Abar x_(k-1) + Bbar u_k, y_k = 2 Re(C x_k) + D u_k, from the zero state."""
    with torch.no_grad():
        x = x[0].double().numpy()
        u = model.inp.weight.double().numpy() @ x + model.inp.bias.double().numpy()[:, None]
        for ssm, mix in zip(model.ssms, model.mixes, strict=True):
            dta, bbar, c = (t.numpy() for t in ssm.discrete())
            abar, d = np.exp(dta), ssm.d.double().numpy()
            state = np.zeros(dta.shape, complex)
            y = np.empty_like(u)
            for k in range(u.shape[1]):
                state = abar * state + bbar * u[:, k : k + 1]
                y[:, k] = 2 * (c * state).sum(-1).real + d * u[:, k]
            u = u + mix.weight.double().numpy() @ np.tanh(y) + mix.bias.double().numpy()[:, None]
        out = model.out.weight.double().numpy() @ u + model.out.bias.double().numpy()[:, None]
    return out[0] + x[0] if model.input_skip else out[0]


@pytest.mark.parametrize("init", ["lin", "inv"])
def test_convolution_kernel_path_equals_the_recurrence(init):
    model = tiny(init=init)
    x = torch.from_numpy(signal(3000))[None, None]
    with torch.no_grad():
        trained = model(x)[0, 0].numpy()  # FFT convolution with the exact impulse response
        streamed = model.forward_with_state(x)[0][0, 0].numpy()  # the chunked recurrence
    reference = recurrence(model, x)
    assert trained.shape == (3000,) and np.abs(reference).max() > 0.1
    np.testing.assert_allclose(trained, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(streamed, reference, rtol=0, atol=1e-5)


def test_output_before_a_perturbation_does_not_move():
    model = tiny()
    x = torch.from_numpy(signal(700))[None, None]
    with torch.no_grad():
        base = model(x, pad_start=True)
        stream_base = model.forward_with_state(x, model.initial_state())[0]
        for t in (1, 63, 64, 250, 699):
            moved_x = x.clone()
            moved_x[..., t] += 1.0
            moved = model(moved_x, pad_start=True)
            # an FFT spreads rounding over every sample, so the convolution path is causal
            # to float precision; the chunked recurrence multiplies later inputs by exact zeros
            assert (moved[..., :t] - base[..., :t]).abs().max() < 1e-6, f"output before {t} moved"
            assert (moved[..., t] - base[..., t]).abs() > 1e-3, f"output at {t} ignores input {t}"
            streamed = model.forward_with_state(moved_x, model.initial_state())[0]
            assert torch.equal(streamed[..., :t], stream_base[..., :t])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sizes", [[1], [63], [64], [4096], MIXED])
def test_stream_and_render_equal_offline(sizes, backend):
    model = tiny(1)
    x = signal(6000 if sizes != [1] else 1500)
    expected = offline(model, x)
    streamer = Streamer(model, max_block=512, backend=backend)
    np.testing.assert_allclose(stream(streamer, x, sizes), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(render(model, x, backend=backend), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hidden, state, layers", [(20, 6, 3), (16, 2, 1), (33, 10, 2)])
def test_widths_across_vectors_stream_like_offline(hidden, state, layers, backend):
    """Channel counts that fill a vector exactly, spill into a padded one, or several; an
    odd number of modes: the kernel pads the channels and runs the modes four at a time, the
    rest one by one."""
    model = tiny(5, hidden_size=hidden, state_size=state, num_layers=layers)
    x = signal(3000, seed=2)
    streamer = Streamer(model, max_block=512, backend=backend)
    np.testing.assert_allclose(stream(streamer, x, MIXED), offline(model, x), rtol=0, atol=1e-5)


def test_state_after_silence_is_a_fixed_point_and_where_silence_leads():
    model = tiny(2, params=["drive"])
    knobs = torch.tensor([[0.7]])
    settled = model.initial_state(1, knobs)
    quiet = silence(knobs, 5000)
    with torch.no_grad():
        y, after = model.forward_with_state(quiet, settled)
        _, from_zero = model.forward_with_state(silence(knobs, 30000))  # 60 slowest time constants
    assert max(float(s.abs().max()) for s in settled) > 0.1  # the biases hold it off zero
    for s, a, z in zip(settled, after, from_zero, strict=True):
        torch.testing.assert_close(a, s, rtol=0, atol=1e-6)
        torch.testing.assert_close(z, s, rtol=0, atol=1e-5)
    assert float(y.max() - y.min()) < 1e-6  # silence in, a constant out


def test_config_rebuilds_the_same_network():
    model = tiny(3, params=["drive", "tone"], init="inv", input_skip=False, burn_in=2048)
    rebuilt = build_model(model.config())
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, 500)
    assert rebuilt.config() == model.config() and rebuilt.history == 2048
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x, pad_start=True), model(x, pad_start=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_knobs_change_the_output_and_ramps_stream_like_offline(backend):
    model = tiny(4, params=["drive"])
    with torch.no_grad():  # make the knob matter: it drives the first block's input
        model.inp.weight[:, 1] = 2.0
    x = signal(4000, seed=1)
    low, high = offline(model, x, [0.0]), offline(model, x, [1.0])
    assert np.abs(low - high).max() > 0.1
    streamer = Streamer(model, params={"drive": 0.2}, backend=backend, max_block=128)
    first = streamer.process(x[:1000])
    streamer.set_params(drive=0.9)
    ramped = streamer.process(x[1000:1300])  # longer than max_block: one ramp over 300
    rest = stream(streamer, x[1300:], MIXED)
    knob = np.full(len(x), 0.2, np.float32)
    knob[1000:1300] = 0.2 + (0.9 - 0.2) * np.arange(1, 301, dtype=np.float32) / 300
    knob[1300:] = 0.9
    np.testing.assert_allclose(
        np.concatenate([first, ramped, rest]), offline(model, x, [knob]), rtol=0, atol=1e-5
    )


def test_onnx_and_torchscript_stream_like_ampnet(tmp_path):
    model = tiny(5)
    x = signal(20000, seed=2)
    blocks = [64, 4096, 1, 63, 10000, 100, len(x) - 14324]
    ours = render(model, x, backend="torch")
    export_onnx(model, tmp_path / "m.onnx")
    export_torchscript(model, tmp_path / "m.ts.pt")
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x[None], blocks), ours, atol=1e-5)
    np.testing.assert_allclose(
        run_torchscript(tmp_path / "m.ts.pt", x[None], blocks), ours, rtol=0, atol=1e-5
    )


def test_exported_path_equals_the_chunk_loop_for_any_block_length():
    """The traced step takes every chunk at once; eager streaming loops over chunks."""
    model = tiny(6)
    tables = model.streaming_parts()[1][0][0]
    for n in (1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17):
        u, x = torch.randn(6, 2, n), torch.randn(6, 2, 8)
        y_loop, x_loop = tables.run(u, x)
        y_all, x_all = tables.run_traced(u, x)
        torch.testing.assert_close(y_all, y_loop, rtol=0, atol=1e-5)
        torch.testing.assert_close(x_all, x_loop, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_streaming_follows_parameter_updates(backend):
    model = tiny(7)
    x = signal(1000)
    Streamer(model, backend=backend).process(x)  # builds and caches the streaming tables
    with torch.no_grad():
        model.ssms[0].log_dt += 0.5
        model.mixes[1].bias += 0.1
    np.testing.assert_allclose(
        Streamer(model, backend=backend).process(x), offline(model, x), rtol=0, atol=1e-5
    )


def test_a_new_model_plays_its_input_skip():
    x = torch.randn(2, 1, 300)
    torch.testing.assert_close(S4D(hidden_size=4, state_size=4)(x), x)
    assert not S4D(hidden_size=4, state_size=4, input_skip=False)(x).any()


def test_a_few_adam_steps_reduce_the_esr():
    x, y = synth_pair(1.0, 8000, seed=1)
    x, y = torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None]
    torch.manual_seed(8)
    model = S4D(hidden_size=8, state_size=8, num_layers=2, burn_in=256)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        loss = esr(model(x)[..., 256:], y[..., 256:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_fold_input_gain_moves_the_gain_into_the_input_projection():
    model = tiny(9, input_skip=False)
    x = torch.from_numpy(signal(800))[None, None]
    with torch.no_grad():
        torch.testing.assert_close(
            model.fold_input_gain(2.0)(x, pad_start=True), model(2.0 * x, pad_start=True)
        )
    with pytest.raises(ValueError, match="input skip"):
        tiny(input_skip=True).fold_input_gain(2.0)


@pytest.mark.parametrize("name, params", [("s4d", 2193), ("s4d_large", 12673)])
def test_presets_instantiate_with_their_stated_size(name, params, tmp_path):
    model = instantiate(compose_train([f"model={name}"], tmp_path).model)
    assert isinstance(model, S4D) and model.receptive_field == 1 and not model.finite_memory
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.history == model.burn_in == 4096
    assert model(torch.randn(2, 1, 300)).shape == (2, 1, 300)


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="init='diag'"):
        S4D(init="diag")
    with pytest.raises(ValueError, match="state_size=7"):
        S4D(state_size=7)
