"""The SimpleRNN JSON that Proteus and NeuralPi load (LSTM models).

Layout (as in ``../shared/data/captures/*.json``)::

    {"model_data": {"model": "SimpleRNN", "input_size": 1, "skip": 1, "output_size": 1,
                    "unit_type": "LSTM", "num_layers": 1, "hidden_size": 40, "bias_fl": true},
     "state_dict": {"rec.weight_ih_l0": [[...]], "rec.weight_hh_l0": [[...]],
                    "rec.bias_ih_l0": [...], "rec.bias_hh_l0": [...],
                    "lin.weight": [[...]], "lin.bias": [...]}}

``skip: 1`` adds the first input (the audio) to the output; extra inputs are knob values
(``input_size = 1 + knobs``, Proteus's layout). ampnet adds ``sample_rate`` and, for knob
models, the knob names as ``params`` to ``model_data`` (readers ignore unknown keys);
files without them are read as 48 kHz with knobs named ``knob1``, ``knob2``, ...

These players start the LSTM from the zero state, with no silence before the first
sample, and the layout has no place for a start state: ampnet reads such a file to
play that way (``settle=0``). AIDA-X does not read this layout (:mod:`ampnet.formats.aidax`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from ampnet.data.audio import DEFAULT_SAMPLE_RATE
from ampnet.errors import AmpnetError
from ampnet.models import LSTM
from ampnet.models.knobs import check_names


def unfit_reason(model) -> str | None:
    """Why a SimpleRNN JSON file cannot hold ``model`` (None when it can)."""
    return None if isinstance(model, LSTM) else "Proteus / NeuralPi JSON holds LSTMs only"


def lstm_to_proteus(model: LSTM, sample_rate: int | None) -> dict:
    """The SimpleRNN dict of an ampnet LSTM: its weights (a player starts it from zero)."""
    if not isinstance(model, LSTM):
        raise AmpnetError(f"the proteus format holds LSTMs, not a {type(model).__name__}")
    state = {}
    for name, tensor in model.lstm.state_dict().items():
        state[f"rec.{name}"] = tensor.tolist()
    state["lin.weight"] = model.head.weight.tolist()
    state["lin.bias"] = model.head.bias.tolist()
    model_data = {
        "model": "SimpleRNN",
        "input_size": model.input_size,
        "skip": int(model.input_skip),
        "output_size": 1,
        "unit_type": "LSTM",
        "num_layers": model.num_layers,
        "hidden_size": model.hidden_size,
        "bias_fl": True,
    }
    if sample_rate is not None:
        model_data["sample_rate"] = int(sample_rate)
    if model.params:
        model_data["params"] = list(model.params)
    return {"model_data": model_data, "state_dict": state}


def lstm_from_proteus(data: Mapping, where: str = "JSON file") -> tuple[LSTM, int]:
    """ampnet's LSTM (and the sample rate) for a SimpleRNN dict, starting from zero as the
    players do; one clear error if it is not one."""
    md, sd = data.get("model_data"), data.get("state_dict")
    if not isinstance(md, Mapping) or not isinstance(sd, Mapping):
        raise AmpnetError(f"{where}: not a SimpleRNN model (needs model_data and state_dict)")
    if md.get("unit_type", "LSTM") != "LSTM" or md.get("model", "SimpleRNN") != "SimpleRNN":
        raise AmpnetError(
            f"{where}: unit_type {md.get('unit_type')!r} is not supported; ampnet reads LSTM SimpleRNNs"
        )
    if int(md.get("output_size", 1)) != 1:
        raise AmpnetError(
            f"{where}: output_size {md['output_size']} is not supported (mono out only)"
        )
    try:
        inputs, hidden, layers = (
            int(md["input_size"]),
            int(md["hidden_size"]),
            int(md.get("num_layers", 1)),
        )
        skip = int(md.get("skip", 0))
    except (KeyError, TypeError, ValueError) as err:
        raise AmpnetError(f"{where}: incomplete model_data ({err})") from None
    if skip not in (0, 1):
        raise AmpnetError(f"{where}: skip={skip} is not supported (0 or 1)")
    if inputs < 1:
        raise AmpnetError(
            f"{where}: input_size={inputs}; it must count the audio input (1 or more)"
        )
    names = md.get("params")
    if names is not None:
        try:
            if not isinstance(names, list) or len(names) != inputs - 1:
                raise ValueError("one knob name per extra input")
            check_names(names)
        except ValueError:
            raise AmpnetError(
                f"{where}: params {names!r} must list one knob name per extra input ({inputs - 1})"
            ) from None
    model = LSTM(
        input_size=inputs,
        hidden_size=hidden,
        num_layers=layers,
        input_skip=bool(skip),
        burn_in=0,
        params=names,
        settle=0,
    )
    state = {f"lstm.{k}": v for k, v in model.lstm.state_dict().items()}
    state.update({"head.weight": model.head.weight, "head.bias": model.head.bias})
    with torch.no_grad():
        for name, target in state.items():
            key = name.replace("lstm.", "rec.").replace("head.", "lin.")
            if key not in sd:
                if key.startswith("rec.bias") and not md.get("bias_fl", True):
                    target.zero_()
                    continue
                raise AmpnetError(f"{where}: state_dict lacks {key}")
            try:
                value = torch.as_tensor(np.asarray(sd[key], dtype=np.float32))
            except (TypeError, ValueError):
                raise AmpnetError(f"{where}: {key} is not an array of numbers") from None
            if value.shape != target.shape:
                raise AmpnetError(
                    f"{where}: {key} has shape {tuple(value.shape)} but the config needs {tuple(target.shape)}"
                )
            target.copy_(value)
    extra = set(sd) - {n.replace("lstm.", "rec.").replace("head.", "lin.") for n in state}
    if extra:
        raise AmpnetError(f"{where}: unexpected weights {sorted(extra)} for a {layers}-layer LSTM")
    return model.eval(), int(md.get("sample_rate", DEFAULT_SAMPLE_RATE))
