"""Reading and writing NAM's ``.nam`` files (schema 0.7.0 written; 0.5.x to 0.7.x read).

A ``.nam`` file is JSON: ``version``, ``metadata``, ``architecture``, ``config``, a flat
``weights`` list and ``sample_rate`` (see ../shared/reference/nam.md). ampnet's WaveNet
has NAM's layer structure of either schema, so its weights repack one-to-one
(:mod:`ampnet.formats.nam_weights`). A ``SlimmableContainer`` holds complete models, each
for sizes below its ``max_value``: reading one picks the model a size plays, as NAM's
engine does (the first whose ``max_value`` is above the size; the last by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from ampnet.errors import AmpnetError
from ampnet.formats.nam_weights import (
    load_lstm_weights,
    load_wavenet_weights,
    lstm_weight_count,
    lstm_weights,
    wavenet_weights,
)
from ampnet.models import LSTM, Slimmable, WaveNet, wavenet_form

NAM_VERSION = "0.7.0"
TOP_KEYS = {"layers", "head", "head_scale", "condition_dsp", "in_channels"}


def _activation(spec) -> dict:
    """An activation as NAM 0.13 writes it: an object with its type (and parameters); A2's
    LeakyReLU carries its slope, which NAM's engine looks for to pick its A2 fast path."""
    if isinstance(spec, Mapping):
        return dict(spec)
    if spec == "LeakyReLU":
        return {"type": "LeakyReLU", "negative_slope": 0.01}
    return {"type": spec}


def _layer_array_config(array) -> dict:
    """One layer array in the 0.7.0 schema, as NAM 0.13 writes it: the array's own 0.7
    settings, with activations as objects and the head dilation only when it is not 1."""
    config = array.full_config()
    if config["head"]["head_dilation"] == 1:
        del config["head"]["head_dilation"]
    config["activation"] = [_activation(a) for a in config["activation"]]
    config["secondary_activation"] = [
        None if s is None else _activation(s) for s in config["secondary_activation"]
    ]
    return config


def _envelope(architecture: str, config: dict, weights, sample_rate, metadata) -> dict:
    now = datetime.now()
    meta = {
        "date": {k: getattr(now, k) for k in ("year", "month", "day", "hour", "minute", "second")},
        **dict(metadata or {}),
    }
    out = {
        "version": NAM_VERSION,
        "metadata": meta,
        "architecture": architecture,
        "config": config,
        "weights": [float(w) for w in weights],
    }
    if sample_rate is not None:
        out["sample_rate"] = int(sample_rate)
    return out


def wavenet_to_nam(
    model: WaveNet, sample_rate: int | None, metadata: Mapping | None = None
) -> dict:
    """The ``.nam`` dict of a WaveNet (audio input only: NAM plays no knob channels)."""
    if model.input_channels != 1:
        raise AmpnetError(
            f"this WaveNet takes {model.input_channels} input channels (audio and knobs); "
            "NAM plays audio-only models: export ONNX or TorchScript instead"
        )
    config = {
        "layers": [_layer_array_config(a) for a in model.layer_arrays],
        "head": None if model.post_head is None else dict(model.post_head.spec),
        "head_scale": model.head_scale,
    }
    if model.condition_dsp is not None:
        config["condition_dsp"] = to_nam(model.condition_dsp, sample_rate)
    return _envelope("WaveNet", config, wavenet_weights(model), sample_rate, metadata)


def container_to_nam(
    submodels: Sequence[tuple[float, object]],
    sample_rate: int | None,
    metadata: Mapping | None = None,
) -> dict:
    """A ``SlimmableContainer`` of ``(max_value, model)`` pairs, ascending, the last at 1.0:
    a player at size ``v`` plays the first model whose ``max_value`` is above ``v``."""
    values = [float(v) for v, _ in submodels]
    if not values or values != sorted(set(values)) or values[-1] < 1.0:
        raise AmpnetError(f"container sizes {values} must rise strictly and end at 1.0 or above")
    inner = [{"max_value": v, "model": to_nam(m, sample_rate)} for v, m in submodels]
    out = _envelope("SlimmableContainer", {"submodels": inner}, [], sample_rate, metadata)
    for key in ("loudness", "gain"):  # NAM's trainer copies them from the largest model
        if key in (metadata or {}):
            out["metadata"][key] = metadata[key]
    return out


def lstm_to_nam(model: LSTM, sample_rate: int | None, metadata: Mapping | None = None) -> dict:
    """The ``.nam`` dict of an LSTM; NAM's LSTM has no input skip and no knob inputs."""
    if model.input_skip:
        raise AmpnetError(
            "this LSTM adds its input to its output (input skip), which NAM's LSTM cannot: "
            "export the aidax format, or train with model=lstm_nam for a .nam"
        )
    if model.input_size != 1:
        raise AmpnetError(
            "this LSTM takes knob inputs; NAM plays audio-only models: export aidax or ONNX"
        )
    config = {"input_size": 1, "hidden_size": model.hidden_size, "num_layers": model.num_layers}
    return _envelope("LSTM", config, lstm_weights(model), sample_rate, metadata)


def unfit_reason(model) -> str | None:
    """Why a ``.nam`` file cannot hold ``model`` (None when it can)."""
    if isinstance(model, Slimmable):  # a container of its members
        return next(filter(None, (unfit_reason(m) for m in model.members)), None)
    model = wavenet_form(model)  # a GCN is a WaveNet in other words
    if not isinstance(model, WaveNet | LSTM):
        return f"NAM plays WaveNets and LSTMs, not a {type(model).__name__}"
    if model.input_channels > 1:
        return f"NAM plays no knob models and this one has knobs ({', '.join(model.params)})"
    if isinstance(model, LSTM) and model.input_skip:
        return "NAM's LSTM has no input skip (train model=lstm_nam for a .nam)"
    return None


def to_nam(model, sample_rate: int | None, metadata: Mapping | None = None) -> dict:
    """The ``.nam`` dict of a WaveNet (or a GCN, written as one) or an LSTM; one clear error
    for what NAM cannot play."""
    model = wavenet_form(model)
    if isinstance(model, WaveNet):
        return wavenet_to_nam(model, sample_rate, metadata)
    if isinstance(model, LSTM):
        return lstm_to_nam(model, sample_rate, metadata)
    if isinstance(model, Slimmable):
        return container_to_nam(
            list(zip(model.max_values, model.members, strict=True)), sample_rate, metadata
        )
    raise AmpnetError(f"no .nam form for a {type(model).__name__}")


def wavenet_from_nam(data: Mapping, where: str = ".nam file") -> WaveNet:
    """ampnet's WaveNet with a ``.nam`` WaveNet's config and weights (any schema from 0.5)."""
    config = data["config"]
    unknown = set(config) - TOP_KEYS
    if unknown:
        raise AmpnetError(f"{where}: unsupported WaveNet key {sorted(unknown)[0]!r}")
    if int(config.get("in_channels", 1)) != 1:
        raise AmpnetError(
            f"{where}: in_channels={config['in_channels']} is not supported (mono in)"
        )
    nested = config.get("condition_dsp")
    condition = model_from_nam(nested, f"{where} (its condition_dsp)") if nested else None
    try:
        model = WaveNet(
            config["layers"],
            head_scale=config.get("head_scale", 0.02),
            head={k: v for k, v in config["head"].items() if k != "in_channels"}
            if config.get("head")
            else None,
            condition_dsp=condition,
        )
        load_wavenet_weights(model, np.asarray(data["weights"], dtype=np.float32))
    except (KeyError, TypeError, ValueError) as err:
        raise AmpnetError(f"{where}: its WaveNet config cannot be played ({err})") from None
    return model.eval()


def lstm_from_nam(data: Mapping, where: str = ".nam file") -> LSTM:
    """ampnet's LSTM with a ``.nam`` LSTM's config, weights and start state, settling as
    NAM's engine does (half a second of silence from the file's ``h0``/``c0``)."""
    config = data["config"]
    try:
        inputs, hidden, layers = (
            int(config["input_size"]),
            int(config["hidden_size"]),
            int(config["num_layers"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise AmpnetError(f"{where}: incomplete LSTM config ({err})") from None
    weights = np.asarray(data["weights"], dtype=np.float32)
    expected = lstm_weight_count(inputs, hidden, layers)
    if weights.shape != (expected,):
        raise AmpnetError(f"{where}: {weights.size} weights but its LSTM config needs {expected}")
    # NAM's engine starts from the file's h0/c0 and prewarms half a second of silence
    # (one sample when the file gives no rate): ampnet plays it the same way
    rate = data.get("sample_rate")
    settle = int(0.5 * rate) if isinstance(rate, int | float) and rate > 0 else 1
    model = LSTM(
        input_size=inputs,
        hidden_size=hidden,
        num_layers=layers,
        input_skip=False,
        burn_in=0,
        settle=settle,
    )
    load_lstm_weights(model, weights)
    return model


def container_sizes(data: Mapping) -> list[float]:
    """The ``max_value`` of each model of a SlimmableContainer dict (empty for other models)."""
    if data.get("architecture") != "SlimmableContainer":
        return []
    return [float(sub["max_value"]) for sub in data["config"]["submodels"]]


def _container_pick(data: Mapping, size: float | None, where: str) -> Mapping:
    try:
        subs = list(data["config"]["submodels"])
        values = [float(sub["max_value"]) for sub in subs]
    except (KeyError, TypeError, ValueError) as err:
        raise AmpnetError(f"{where}: incomplete SlimmableContainer ({err})") from None
    if not subs or values != sorted(set(values)) or values[-1] < 1.0:
        raise AmpnetError(f"{where}: container sizes {values} must rise strictly and end at 1.0")
    if size is None:
        return subs[-1]["model"]
    return next(
        (s["model"] for s, v in zip(subs, values, strict=True) if size < v), subs[-1]["model"]
    )


def model_from_nam(data: Mapping, where: str = ".nam file", size: float | None = None):
    """The ampnet model for a ``.nam`` dict, at ``size`` (0 to 1) for a slimmable model or a
    container (full size when None); one clear error for what ampnet cannot play."""
    if not isinstance(data, Mapping):
        raise AmpnetError(f"{where}: not a model (expected a JSON object)")
    architecture = data.get("architecture")
    if architecture == "SlimmableContainer":
        return model_from_nam(_container_pick(data, size, where), where, size)
    readers = {"WaveNet": wavenet_from_nam, "LSTM": lstm_from_nam}
    if architecture not in readers:
        raise AmpnetError(
            f"{where}: architecture {architecture!r} is not supported; ampnet reads WaveNet, "
            "LSTM and SlimmableContainer .nam files"
        )
    if not isinstance(data.get("config"), Mapping) or not isinstance(data.get("weights"), list):
        raise AmpnetError(f"{where}: no config or weights list; is the file complete?")
    try:
        model = readers[architecture](data, where)
    except (KeyError, TypeError, ValueError) as err:
        raise AmpnetError(f"{where}: incomplete {architecture} config ({err})") from None
    if size is not None and isinstance(model, WaveNet):
        try:
            model = model.slim(size)
        except ValueError as err:
            raise AmpnetError(f"{where}: cannot be played at size {size} ({err})") from None
    return model
