"""Reading and writing NAM's ``.nam`` files (schema 0.7.0 written; 0.5.x and 0.7.x read).

A ``.nam`` file is JSON: ``version``, ``metadata``, ``architecture``, ``config``, a flat
``weights`` list and ``sample_rate`` (see ../shared/reference/nam.md). ampnet's WaveNet
has NAM's classic layer structure, so its weights repack one-to-one
(:mod:`ampnet.formats.nam_weights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np
import torch

from ampnet.errors import AmpnetError
from ampnet.formats.nam_weights import (
    load_lstm_weights,
    lstm_weight_count,
    lstm_weights,
    wavenet_weights,
)
from ampnet.models import LSTM, WaveNet

NAM_VERSION = "0.7.0"
FILM_KEYS = (
    "conv_pre_film",
    "conv_post_film",
    "input_mixin_pre_film",
    "input_mixin_post_film",
    "activation_pre_film",
    "activation_post_film",
    "layer1x1_post_film",
    "head1x1_post_film",
)


def _layer_array_config(array) -> dict:
    """One layer array in the 0.7.0 schema, every key as NAM 0.13 writes it."""
    n = len(array.dilations)
    return {
        "input_size": array.input_size,
        "condition_size": array.condition_size,
        "head": {"out_channels": array.head_size, "kernel_size": 1, "bias": array.head_bias},
        "channels": array.channels,
        "kernel_sizes": [array.kernel_size] * n,
        "dilations": list(array.dilations),
        "activation": [{"type": array.activation}] * n,
        "bottleneck": array.channels,
        "head1x1": {"active": False, "out_channels": 1, "groups": 1},
        "layer1x1": {"active": True, "groups": 1},
        "groups_input": 1,
        "groups_input_mixin": 1,
        **{key: {"active": False, "shift": True, "groups": 1} for key in FILM_KEYS},
        "gating_mode": ["gated" if array.gated else "none"] * n,
        "secondary_activation": [{"type": "Sigmoid"} if array.gated else None] * n,
        "slimmable": None,
    }


def _envelope(architecture: str, config: dict, weights: np.ndarray, sample_rate, metadata) -> dict:
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
        "head": None,
        "head_scale": model.head_scale,
    }
    return _envelope("WaveNet", config, wavenet_weights(model), sample_rate, metadata)


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
    if not isinstance(model, WaveNet | LSTM):
        return f"NAM plays WaveNets and LSTMs, not a {type(model).__name__}"
    if model.input_channels > 1:
        return f"NAM plays no knob models and this one has knobs ({', '.join(model.params)})"
    if isinstance(model, LSTM) and model.input_skip:
        return "NAM's LSTM has no input skip (train model=lstm_nam for a .nam)"
    return None


def to_nam(model, sample_rate: int | None, metadata: Mapping | None = None) -> dict:
    """The ``.nam`` dict of a WaveNet or an LSTM; one clear error for what NAM cannot play."""
    if isinstance(model, WaveNet):
        return wavenet_to_nam(model, sample_rate, metadata)
    if isinstance(model, LSTM):
        return lstm_to_nam(model, sample_rate, metadata)
    raise AmpnetError(f"no .nam form for a {type(model).__name__}")


def _same(values, what: str, where: str):
    values = list(values)
    if len(set(map(str, values))) > 1:
        raise AmpnetError(
            f"{where}: per-layer {what} differ ({values}); ampnet reads one per layer array"
        )
    return values[0]


def _activation_name(value, where: str) -> str:
    name = value["type"] if isinstance(value, Mapping) else value
    if isinstance(value, Mapping) and set(value) - {"type"}:
        raise AmpnetError(f"{where}: activation parameters {dict(value)} are not supported")
    return name


def _classic_layer(lc: Mapping, where: str) -> dict:
    """A layer array of either schema as ampnet's WaveNet arguments; refuses what it cannot run."""
    if "head" in lc and isinstance(lc["head"], Mapping):  # 0.6 / 0.7 schema
        head = lc["head"]
        if head.get("kernel_size", 1) != 1:
            raise AmpnetError(f"{where}: a head kernel of {head['kernel_size']} is not supported")
        for key, default in (
            ("bottleneck", lc["channels"]),
            ("groups_input", 1),
            ("groups_input_mixin", 1),
        ):
            if lc.get(key, default) != default:
                raise AmpnetError(f"{where}: {key}={lc[key]} is not supported")
        if (lc.get("head1x1") or {}).get("active") or not (
            lc.get("layer1x1") or {"active": True}
        ).get("active"):
            raise AmpnetError(f"{where}: head1x1 / inactive layer1x1 layers are not supported")
        if any((lc.get(k) or {}).get("active") for k in FILM_KEYS) or lc.get("slimmable"):
            raise AmpnetError(f"{where}: FiLM and slimmable layers are not supported")
        n = len(lc["dilations"])
        kernels = lc.get("kernel_sizes", lc.get("kernel_size"))
        kernel = _same(
            kernels if isinstance(kernels, list) else [kernels] * n, "kernel sizes", where
        )
        acts = lc["activation"] if isinstance(lc["activation"], list) else [lc["activation"]] * n
        activation = _same([_activation_name(a, where) for a in acts], "activations", where)
        gating = _same(lc.get("gating_mode", ["none"] * n), "gating modes", where)
        if gating not in ("none", "gated"):
            raise AmpnetError(f"{where}: gating mode {gating!r} is not supported")
        if gating == "gated":
            secondary = _same(
                [_activation_name(a, where) for a in lc["secondary_activation"]], "gates", where
            )
            if secondary != "Sigmoid":
                raise AmpnetError(f"{where}: a {secondary} gate is not supported (only Sigmoid)")
        head_size, head_bias, gated = (
            head["out_channels"],
            bool(head.get("bias", True)),
            gating == "gated",
        )
    else:  # classic 0.5.x schema
        kernel, activation = lc["kernel_size"], lc["activation"]
        head_size, head_bias, gated = (
            lc["head_size"],
            bool(lc["head_bias"]),
            bool(lc.get("gated", False)),
        )
    return {
        "input_size": int(lc["input_size"]),
        "condition_size": int(lc["condition_size"]),
        "head_size": int(head_size),
        "channels": int(lc["channels"]),
        "kernel_size": int(kernel),
        "dilations": [int(d) for d in lc["dilations"]],
        "activation": str(activation),
        "gated": gated,
        "head_bias": head_bias,
    }


def wavenet_from_nam(data: Mapping, where: str = ".nam file") -> WaveNet:
    """ampnet's WaveNet with a ``.nam`` WaveNet's config and weights (classic or 0.7 schema)."""
    config = data["config"]
    if config.get("head") is not None or config.get("condition_dsp") is not None:
        raise AmpnetError(f"{where}: a top-level head or condition DSP is not supported")
    try:
        model = WaveNet(
            [_classic_layer(lc, where) for lc in config["layers"]], head_scale=config["head_scale"]
        )
    except (KeyError, TypeError, ValueError) as err:
        raise AmpnetError(f"{where}: its WaveNet config cannot be built ({err})") from None
    weights = np.asarray(data["weights"], dtype=np.float32)
    load_wavenet_weights(model, weights, where)
    return model


def load_wavenet_weights(model: WaveNet, weights: np.ndarray, where: str) -> None:
    """Fill ``model`` from a flat NAM-ordered vector; its length must match exactly."""
    expected = len(wavenet_weights(model))
    if weights.shape != (expected,):
        raise AmpnetError(f"{where}: {weights.size} weights but its config needs {expected}")
    i = 0
    with torch.no_grad():
        for array in model.layer_arrays:
            modules = [array.rechannel]
            for layer in array.layers:
                modules += [layer.conv, layer.input_mixer, layer.layer1x1]
            modules.append(array.head_rechannel)
            for module in modules:
                for p in (module.weight, module.bias):
                    if p is not None:
                        p.copy_(torch.from_numpy(weights[i : i + p.numel()]).view_as(p))
                        i += p.numel()
    model.head_scale = float(weights[i])


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


def model_from_nam(data: Mapping, where: str = ".nam file"):
    """The ampnet model for a ``.nam`` dict; one clear error for what ampnet cannot play."""
    architecture = data.get("architecture")
    readers = {"WaveNet": wavenet_from_nam, "LSTM": lstm_from_nam}
    if architecture not in readers:
        raise AmpnetError(
            f"{where}: architecture {architecture!r} is not supported; ampnet reads WaveNet and LSTM .nam files"
        )
    if not isinstance(data.get("config"), Mapping) or not isinstance(data.get("weights"), list):
        raise AmpnetError(f"{where}: no config or weights list; is the file complete?")
    try:
        return readers[architecture](data, where)
    except (KeyError, TypeError, ValueError) as err:
        raise AmpnetError(f"{where}: incomplete {architecture} config ({err})") from None
