"""NAM's flat weight order for ampnet's models (see ../shared/reference/nam.md, section 1).

The same flat vectors feed the ``.nam`` writer and the native streaming kernels
(:mod:`ampnet.kernels`), so a model runs from one weight layout everywhere.
"""

from __future__ import annotations

import numpy as np
import torch

from ampnet.models import LSTM, WaveNet


def _flat(*tensors: torch.Tensor | None) -> list[np.ndarray]:
    return [t.detach().cpu().float().reshape(-1).numpy() for t in tensors if t is not None]


def wavenet_weights(model: WaveNet) -> np.ndarray:
    """Every weight in NAM's classic order, ``head_scale`` last: ``(n_weights,)`` float32."""
    parts: list[np.ndarray] = []
    for array in model.layer_arrays:
        parts += _flat(array.rechannel.weight)
        for layer in array.layers:
            parts += _flat(layer.conv.weight, layer.conv.bias, layer.input_mixer.weight)
            parts += _flat(layer.layer1x1.weight, layer.layer1x1.bias)
        parts += _flat(array.head_rechannel.weight, array.head_rechannel.bias)
    parts.append(np.array([model.head_scale], dtype=np.float32))
    return np.concatenate(parts).astype(np.float32)


def lstm_weights(model: LSTM) -> np.ndarray:
    """NAM's LSTM order: per layer ``[W_ih W_hh]``, ``b_ih + b_hh``, ``h0``, ``c0``; then the head.

    ``h0``/``c0`` hold the state after silence (:meth:`~ampnet.models.LSTM.initial_state`,
    as NAM's trainer writes them), so a player starts where ampnet does. The input skip
    is not part of the layout (NAM's LSTM has none).
    """
    lstm = model.lstm
    h0, c0 = (s[:, 0] for s in model.initial_state())
    parts: list[np.ndarray] = []
    for i in range(model.num_layers):
        w_ih, w_hh = getattr(lstm, f"weight_ih_l{i}"), getattr(lstm, f"weight_hh_l{i}")
        bias = getattr(lstm, f"bias_ih_l{i}") + getattr(lstm, f"bias_hh_l{i}")
        parts += _flat(torch.cat([w_ih, w_hh], dim=1), bias, h0[i], c0[i])
    parts += _flat(model.head.weight, model.head.bias)
    return np.concatenate(parts).astype(np.float32)


def load_lstm_weights(model: LSTM, weights: np.ndarray) -> None:
    """Fill ``model`` from NAM's flat LSTM order (the summed bias goes to ``b_ih``, ``b_hh`` = 0)."""
    lstm, hidden, i = model.lstm, model.hidden_size, 0

    def take(n: int) -> torch.Tensor:
        nonlocal i
        i += n
        return torch.from_numpy(weights[i - n : i].copy())

    with torch.no_grad():
        for layer in range(model.num_layers):
            width = (model.input_size if layer == 0 else hidden) + hidden
            w = take(4 * hidden * width).view(4 * hidden, width)
            getattr(lstm, f"weight_ih_l{layer}").copy_(w[:, : width - hidden])
            getattr(lstm, f"weight_hh_l{layer}").copy_(w[:, width - hidden :])
            getattr(lstm, f"bias_ih_l{layer}").copy_(take(4 * hidden))
            getattr(lstm, f"bias_hh_l{layer}").zero_()
            model.h0[layer].copy_(take(hidden))
            model.c0[layer].copy_(take(hidden))
        model.head.weight.copy_(take(hidden).view(1, hidden))
        model.head.bias.copy_(take(1))


def lstm_weight_count(input_size: int, hidden: int, layers: int) -> int:
    """How many floats NAM's LSTM layout holds."""
    count = hidden + 1
    for layer in range(layers):
        width = (input_size if layer == 0 else hidden) + hidden
        count += 4 * hidden * width + 4 * hidden + 2 * hidden
    return count
