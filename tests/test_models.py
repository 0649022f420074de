"""The plain models: causality, receptive field, presets, safe rebuilding."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate

from ampnet.models import GRU, LSTM, WaveNet, build_model

from .test_configs import compose_train

SMALL = [
    {
        "input_size": 1,
        "condition_size": 1,
        "channels": 4,
        "head_size": 3,
        "kernel_size": 3,
        "dilations": [1, 2, 4],
        "activation": "Tanh",
        "gated": False,
        "head_bias": False,
    },
    {
        "input_size": 4,
        "condition_size": 1,
        "channels": 3,
        "head_size": 1,
        "kernel_size": 2,
        "dilations": [8, 1],
        "activation": "Tanh",
        "gated": True,
        "head_bias": True,
    },
]


def small_wavenet(**overrides) -> WaveNet:
    torch.manual_seed(0)
    return WaveNet([{**layer, **overrides} for layer in SMALL]).eval()


def models():
    torch.manual_seed(0)
    return [
        small_wavenet(),
        small_wavenet(gated=False),
        LSTM(hidden_size=8).eval(),
        GRU(hidden_size=8).eval(),
    ]


@pytest.mark.parametrize("model", models(), ids=["wavenet_mixed", "wavenet_plain", "lstm", "gru"])
def test_output_before_a_perturbation_does_not_move(model):
    x = torch.randn(1, 1, 400)
    with torch.no_grad():
        base = model(x, pad_start=True)
        for n in (0, 57, 250, 399):
            x2 = x.clone()
            x2[..., n] += 1.0
            moved = model(x2, pad_start=True)
            assert torch.equal(moved[..., :n], base[..., :n]), f"output before {n} changed"
            assert not torch.equal(moved[..., n], base[..., n]), f"output at {n} ignores input {n}"


def test_receptive_field_is_exactly_what_the_wavenet_uses():
    model = small_wavenet()
    rf = model.receptive_field
    assert rf == 1 + 2 * (1 + 2 + 4) + 1 * (8 + 1)
    x = torch.randn(1, 1, 300)
    p = 100
    with torch.no_grad():
        base = model(x, pad_start=True)
        x2 = x.clone()
        x2[..., p] += 1.0
        changed = (model(x2, pad_start=True) != base)[0, 0]
    assert changed[p + rf - 1], "the oldest sample of the receptive field has no effect"
    assert not changed[p + rf :].any(), (
        "the output depends on samples older than the receptive field"
    )
    assert model(torch.randn(1, 1, rf)).shape[-1] == 1


def test_valid_output_length_and_pad_start():
    model = small_wavenet()
    x = torch.randn(2, 1, 100)
    assert model(x).shape == (2, 1, 100 - model.receptive_field + 1)
    assert model(x, pad_start=True).shape == (2, 1, 100)
    # pad_start means "silence before the file": the same as prepending zeros by hand
    padded = torch.nn.functional.pad(x, (model.receptive_field - 1, 0))
    torch.testing.assert_close(model(x, pad_start=True), model(padded), rtol=0, atol=0)


@pytest.mark.parametrize(
    "name, params, receptive_field",
    [
        ("wavenet", 18761, 6347),
        ("a2", 12145, 6347),
        ("a2_lite", 1870, 6347),
        ("wavenet_silu", 12145, 6347),
        ("wavenet_gated", 12853, 6347),
        ("wavenet_tanh", 12145, 6347),
        ("wavenet_a1", 13801, 4093),
        ("wavenet_lite", 6553, 4093),
        ("wavenet_feather", 3025, 4093),
        ("wavenet_nano", 841, 4093),
    ],
)
def test_presets_match_nam_sizes(name, params, receptive_field, tmp_path):
    model = instantiate(compose_train([f"model={name}"], tmp_path).model)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.receptive_field == receptive_field


def test_gated_layers_double_the_dilated_conv():
    plain, gated = small_wavenet(gated=False), small_wavenet(gated=True)
    assert (
        gated.layer_arrays[0].layers[0].conv.out_channels
        == 2 * plain.layer_arrays[0].layers[0].conv.out_channels
    )


def test_wavenet_rejects_arrays_that_do_not_chain():
    bad = [dict(SMALL[0]), {**SMALL[1], "input_size": 5}]
    with pytest.raises(ValueError, match="input_size"):
        WaveNet(bad)
    with pytest.raises(ValueError, match="activation"):
        WaveNet([{**SMALL[0], "head_size": 1, "activation": "Nope"}])


def test_lstm_input_skip_passes_the_dry_signal():
    model = LSTM(hidden_size=4, input_skip=True)
    for p in model.head.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 1, 50)
    torch.testing.assert_close(model(x), x)
    assert LSTM(hidden_size=4, input_skip=False)(x).shape == (2, 1, 50)


def test_lstm_state_carries_across_calls():
    model = LSTM(hidden_size=8).eval()
    x = torch.randn(1, 1, 200)
    with torch.no_grad():
        whole = model(x)
        a, state = model.forward_with_state(x[..., :77])
        b, _ = model.forward_with_state(x[..., 77:], state)
    torch.testing.assert_close(torch.cat([a, b], -1), whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize("model", models(), ids=["wavenet_mixed", "wavenet_plain", "lstm", "gru"])
def test_config_rebuilds_the_same_network(model):
    rebuilt = build_model(model.config())
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 1, 200)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x, pad_start=True), model(x, pad_start=True))


@pytest.mark.parametrize("model", models(), ids=["wavenet_mixed", "wavenet_plain", "lstm", "gru"])
def test_a_folded_input_gain_plays_the_raw_input_like_the_gain_did(model):
    if getattr(model, "input_skip", False):
        with pytest.raises(ValueError, match="input skip"):
            model.fold_input_gain(2.0)
        model = LSTM(hidden_size=8, input_skip=False).eval()
    folded = model.fold_input_gain(10 ** (3 / 20))
    x = torch.randn(1, 1, 300)
    with torch.no_grad():
        torch.testing.assert_close(
            folded(x, pad_start=True), model(x * 10 ** (3 / 20), pad_start=True), rtol=0, atol=1e-6
        )
        assert not torch.allclose(folded(x, pad_start=True), model(x, pad_start=True))


def test_build_model_refuses_classes_outside_ampnet_models():
    with pytest.raises(ValueError, match="unknown model class"):
        build_model({"_target_": "os.system", "command": "echo pwned"})


def test_models_and_losses_do_not_import_lightning():
    code = (
        "import sys, ampnet.models, ampnet.losses; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'hydra')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_lstm_plays_from_the_state_silence_leaves_it_in():
    torch.manual_seed(3)
    model = LSTM(hidden_size=8).eval()
    x = torch.randn(1, 1, 500) * 0.3
    with torch.no_grad():
        played = model(x, pad_start=True)
        quiet = torch.cat([torch.zeros(1, 1, model.settle), x], dim=-1)
        after_silence = model(quiet)[..., model.settle :]  # from (h0, c0) through the silence
        torch.testing.assert_close(played, after_silence, rtol=0, atol=1e-6)
        assert (played - model(x)).abs().max() > 1e-3  # the zero state would sound different
        h, c = model.initial_state()
        _, (h2, c2) = model.lstm(torch.zeros(1, 4096, 1), (h, c))  # more silence: no change
        assert (h2 - h).abs().max() < 1e-6 and (c2 - c).abs().max() < 1e-6


def test_an_lstm_settles_at_its_knob_setting_and_only_as_long_as_told():
    torch.manual_seed(4)
    model = LSTM(hidden_size=8, params=["drive"]).eval()
    low, high = (model.initial_state(1, torch.tensor([[v]])) for v in (0.0, 1.0))
    assert (low[0] - high[0]).abs().max() > 1e-3  # the knob moves the state silence leaves
    none = LSTM(hidden_size=8, settle=0).eval()
    h, c = none.initial_state()
    assert torch.equal(h, none.h0[:, None]) and torch.equal(c, none.c0[:, None])


def test_recurrent_parameters_keep_their_order_cell_first():
    # the optimiser state in a checkpoint follows this order, and so does the seeded init
    names = [name for name, _ in LSTM(hidden_size=4).named_parameters()]
    assert names[:4] == [f"lstm.{k}_l0" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    assert names[4:] == ["head.weight", "head.bias"]
    assert [n for n, _ in GRU(hidden_size=4).named_parameters()][0] == "gru.weight_ih_l0"


@pytest.mark.parametrize("cls, layers", [(LSTM, 1), (LSTM, 2), (GRU, 1), (GRU, 3)])
def test_recurrent_multiply_adds_per_sample_are_their_weight_matrices(cls, layers):
    model = cls(hidden_size=12, num_layers=layers, params=["drive"])
    matrices = [p for name, p in model.named_parameters() if ".weight" in name or "weight_" in name]
    assert model.macs_per_sample == sum(p.numel() for p in matrices)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_truncated_backprop_cuts_the_gradient_between_pieces_only(cls):
    torch.manual_seed(0)
    model = cls(hidden_size=6, burn_in=0, truncate=50)
    x = (0.5 * torch.randn(2, 1, 130)).requires_grad_()
    y = model.train()(x)
    y[..., 100:].sum().backward()  # the last piece: samples 100-129
    assert x.grad[..., :100].abs().max() == 0 and x.grad[..., 100:].abs().max() > 0
    whole = build_model({**model.config(), "truncate": 0})
    whole.load_state_dict(model.state_dict())
    x2 = x.detach().clone().requires_grad_()
    y2 = whole.train()(x2)
    torch.testing.assert_close(y2, y, rtol=0, atol=1e-6)  # the same values, piece by piece
    y2[..., 100:].sum().backward()
    assert x2.grad[..., :100].abs().max() > 0  # untruncated, the gradient reaches back
    with torch.no_grad():  # outside training nothing is cut
        torch.testing.assert_close(model.eval()(x), whole.eval()(x), rtol=0, atol=1e-6)
    assert build_model(model.config()).truncate == 50
