"""The model JSON that AIDA-X loads: RTNeural's own layout (one LSTM or GRU layer, a dense head).

Layout (what AIDA-X's ``loadModelFromStream`` reads; RTNeural's ``parseJson`` the layers)::

    {"in_shape": [null, null, N],            # N = 1 + knobs; AIDA-X takes at most 3
     "in_skip": 1, "in_gain": 0.0, "out_gain": 0.0,                  # gains in dB
     "layers": [
       {"type": "lstm", "activation": "", "shape": [null, null, H],
        "weights": [W (N x 4H), U (H x 4H), b (4H)]},    # or "gru": W (N x 3H), U, B (2 x 3H)
       {"type": "dense", "activation": "", "shape": [null, null, 1],
        "weights": [K (H x 1), c (1)]}],
     "metadata": {"samplerate": 48000, "params": ["drive"], ...}}   # AIDA-X ignores it

``W`` and ``U`` are PyTorch's ``weight_ih`` and ``weight_hh`` transposed (LSTM gates i, f,
g, o in both), ``b = b_ih + b_hh``, ``K`` the head's weight transposed. A GRU layer keeps
its two biases apart (``B = [b_ih, b_hh]``: the recurrent one sits inside the reset gate)
and orders its gates z, r, n where PyTorch has r, z, n. The player computes
``y = out_gain * (net(in_gain * x) + in_skip * in_gain * x)``; inputs 1 and 2 are its
PARAM1 and PARAM2 knobs (0 to 1). It compiles one LSTM or GRU layer of 8, 12, 16, 20,
24, 32, 40, 64 or 80 units (24 only in its newer builds) and refuses anything else.

AIDA-X resets the model to zero and pre-rolls 2048 samples of silence before the first
sample (on load and on activation): ampnet reads such a file to play that way
(``settle=2048``). Proteus and NeuralPi read another layout (:mod:`ampnet.formats.proteus`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ampnet import __version__
from ampnet.data.audio import DEFAULT_SAMPLE_RATE
from ampnet.errors import AmpnetError
from ampnet.models import GRU, LSTM
from ampnet.models.knobs import check_names

HIDDEN_SIZES = (8, 12, 16, 20, 24, 32, 40, 64, 80)  # the LSTM and GRU sizes AIDA-X compiles
LAYERS = {"lstm": LSTM, "gru": GRU}
MAX_INPUTS = 3  # the audio and AIDA-X's two knobs, PARAM1 and PARAM2
PRE_ROLL = 2048  # samples of silence AIDA-X runs after a reset


def unfit_reason(model) -> str | None:
    """Why AIDA-X cannot play ``model`` (None when it can)."""
    kind = type(model).__name__
    if type(model) not in LAYERS.values():
        return f"AIDA-X plays LSTM and GRU models (RTNeural), not a {kind}"
    if model.num_layers != 1:
        return f"AIDA-X plays one recurrent layer and this {kind} has {model.num_layers}"
    if model.hidden_size not in HIDDEN_SIZES:
        sizes = ", ".join(map(str, HIDDEN_SIZES))
        return (
            f"AIDA-X compiles {kind}s of {sizes} units and this one has {model.hidden_size} "
            "(train with model.hidden_size set to one of them)"
        )
    if model.input_size > MAX_INPUTS:
        return (
            f"AIDA-X takes at most {MAX_INPUTS - 1} knobs (PARAM1, PARAM2) and this model "
            f"has {model.input_size - 1}"
        )
    return None


def _plain(tensor: torch.Tensor) -> list:
    return tensor.detach().cpu().float().tolist()


def _swap_rz(a: torch.Tensor) -> torch.Tensor:
    """PyTorch's GRU gate blocks r, z, n along the last axis as RTNeural's z, r, n (and back)."""
    r, z, n = a.chunk(3, dim=-1)
    return torch.cat([z, r, n], dim=-1)


def _recurrent_weights(model) -> list:
    rnn = model.rnn
    if isinstance(model, GRU):
        return [
            _plain(_swap_rz(rnn.weight_ih_l0.T)),
            _plain(_swap_rz(rnn.weight_hh_l0.T)),
            [_plain(_swap_rz(rnn.bias_ih_l0)), _plain(_swap_rz(rnn.bias_hh_l0))],
        ]
    return [
        _plain(rnn.weight_ih_l0.T),
        _plain(rnn.weight_hh_l0.T),
        _plain(rnn.bias_ih_l0 + rnn.bias_hh_l0),
    ]


def to_aidax(model, sample_rate: int | None, metadata: Mapping | None = None) -> dict:
    """The AIDA-X (RTNeural) dict of an ampnet LSTM or GRU; one clear error for what AIDA-X
    cannot play."""
    why = unfit_reason(model)
    if why is not None:
        raise AmpnetError(why)

    meta = {**dict(metadata or {}), "ampnet": __version__}
    if sample_rate is not None:
        meta["samplerate"] = int(sample_rate)
    if model.params:
        meta["params"] = list(model.params)
    return {
        "in_shape": [None, None, model.input_size],
        "in_skip": int(model.input_skip),
        "in_gain": 0.0,
        "out_gain": 0.0,
        "layers": [
            {
                "type": model.cell,
                "activation": "",
                "shape": [None, None, model.hidden_size],
                "weights": _recurrent_weights(model),
            },
            {
                "type": "dense",
                "activation": "",
                "shape": [None, None, 1],
                "weights": [_plain(model.head.weight.T), _plain(model.head.bias)],
            },
        ],
        "metadata": meta,
    }


def is_aidax(data: Mapping) -> bool:
    """True for a dict in RTNeural's layout (``in_shape`` and ``layers``)."""
    return "layers" in data and "in_shape" in data


def _array(value, shape: tuple[int, ...], what: str, where: str) -> torch.Tensor:
    try:
        array = torch.as_tensor(np.asarray(value, dtype=np.float32))
    except (TypeError, ValueError):
        raise AmpnetError(f"{where}: {what} is not an array of numbers") from None
    if tuple(array.shape) != shape:
        raise AmpnetError(f"{where}: {what} has shape {tuple(array.shape)}, expected {shape}")
    return array


def from_aidax(data: Mapping, where: str = "JSON file") -> tuple[LSTM | GRU, int, float]:
    """ampnet's LSTM or GRU, sample rate and input gain (dB) for an AIDA-X dict, settling on
    2048 samples of silence as AIDA-X does; one clear error for what ampnet cannot play."""
    try:
        inputs = int(data["in_shape"][-1])
        layers = list(data["layers"])
        kinds = [str(layer["type"]) for layer in layers]
        skip = int(data.get("in_skip", 0) or 0)
        in_gain = float(data.get("in_gain", 0.0) or 0.0)
        out_gain = float(data.get("out_gain", 0.0) or 0.0)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise AmpnetError(f"{where}: incomplete RTNeural model ({err})") from None
    if len(kinds) != 2 or kinds[0] not in LAYERS or kinds[1] != "dense":
        raise AmpnetError(
            f"{where}: layers {kinds} are not supported; ampnet reads one lstm or gru layer "
            "and a dense head"
        )
    if skip not in (0, 1):
        raise AmpnetError(f"{where}: in_skip={skip} is not supported (0 or 1)")
    if not 1 <= inputs <= MAX_INPUTS:
        raise AmpnetError(f"{where}: in_shape ends in {inputs}; AIDA-X takes 1 to {MAX_INPUTS}")
    if skip and out_gain:
        raise AmpnetError(
            f"{where}: out_gain={out_gain} dB with in_skip is not supported; ampnet's skip adds "
            "the input unscaled"
        )
    meta = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
    names = meta.get("params")
    try:
        hidden = int(layers[0]["shape"][-1])
        if names is not None and (not isinstance(names, list) or len(names) != inputs - 1):
            raise ValueError("one knob name per extra input")
        check_names(names)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise AmpnetError(f"{where}: cannot be read ({err})") from None
    model = LAYERS[kinds[0]](
        input_size=inputs,
        hidden_size=hidden,
        input_skip=bool(skip),
        burn_in=0,
        params=names,
        settle=PRE_ROLL,
    )
    rec, head = layers[0].get("weights"), layers[1].get("weights")
    kind = kinds[0]
    if not isinstance(rec, list) or len(rec) != 3 or not isinstance(head, list) or not head:
        raise AmpnetError(f"{where}: the {kind} layer needs [W, U, b] and the dense layer [K, c]")
    with torch.no_grad():
        rnn = model.rnn
        if kind == "gru":
            gates = 3 * hidden
            rnn.weight_ih_l0.copy_(_swap_rz(_array(rec[0], (inputs, gates), "gru W", where)).T)
            rnn.weight_hh_l0.copy_(_swap_rz(_array(rec[1], (hidden, gates), "gru U", where)).T)
            biases = _array(rec[2], (2, gates), "gru B", where)
            rnn.bias_ih_l0.copy_(_swap_rz(biases[0]))
            rnn.bias_hh_l0.copy_(_swap_rz(biases[1]))
        else:
            gates = 4 * hidden
            rnn.weight_ih_l0.copy_(_array(rec[0], (inputs, gates), "lstm W", where).T)
            rnn.weight_hh_l0.copy_(_array(rec[1], (hidden, gates), "lstm U", where).T)
            rnn.bias_ih_l0.copy_(_array(rec[2], (gates,), "lstm b", where))
            rnn.bias_hh_l0.zero_()
        gain = 10.0 ** (out_gain / 20.0)  # no skip here when out_gain is set: fold it in
        model.head.weight.copy_(gain * _array(head[0], (hidden, 1), "dense K", where).T)
        bias = _array(head[1], (1,), "dense c", where) if len(head) > 1 else torch.zeros(1)
        model.head.bias.copy_(gain * bias)
    rate = meta.get("samplerate", data.get("samplerate", DEFAULT_SAMPLE_RATE))
    return model.eval(), int(rate), in_gain
