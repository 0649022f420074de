"""NAM's flat weight order for ampnet's models (see ../shared/reference/nam.md, section 1).

The same flat vectors feed the ``.nam`` writer and the native streaming kernels
(:mod:`ampnet.kernels`), so a model runs from one weight layout everywhere.
"""

from __future__ import annotations

import numpy as np
import torch

from ampnet.models import LSTM, WaveNet
from ampnet.models.wavenet import FILMS


def _flat(*tensors: torch.Tensor | None) -> list[np.ndarray]:
    return [t.detach().cpu().float().reshape(-1).numpy() for t in tensors if t is not None]


def wavenet_tensors(model: WaveNet) -> list[torch.Tensor]:
    """Every weight tensor of a WaveNet in NAM's order (0.7; the classic order is the part of
    it a classic model has): per array the re-channel; per layer the dilated conv, the input
    mixer, the layer1x1 and head1x1 when active and each active FiLM in NAM's order; the
    head convolution; then the top-level head's convolutions. ``head_scale`` follows them.
    A condition_dsp's weights are its own (nested in its own ``.nam`` dict)."""
    tensors: list[torch.Tensor | None] = []
    for array in model.layer_arrays:
        tensors.append(array.rechannel.weight)
        for layer in array.layers:
            tensors += [layer.conv.weight, layer.conv.bias, layer.input_mixer.weight]
            for conv in (layer.layer1x1, layer.head1x1):
                if conv is not None:
                    tensors += [conv.weight, conv.bias]
            for name in FILMS:
                if name in layer.films:
                    tensors += [layer.films[name].conv.weight, layer.films[name].conv.bias]
        tensors += [array.head_rechannel.weight, array.head_rechannel.bias]
    if model.post_head is not None:
        for conv in model.post_head.convs:
            tensors += [conv.weight, conv.bias]
    return [t for t in tensors if t is not None]


def wavenet_weights(model: WaveNet) -> np.ndarray:
    """Every weight in NAM's order, ``head_scale`` last: ``(n_weights,)`` float32."""
    parts = _flat(*wavenet_tensors(model))
    parts.append(np.array([model.head_scale], dtype=np.float32))
    return np.concatenate(parts).astype(np.float32)


def load_wavenet_weights(model: WaveNet, weights: np.ndarray) -> None:
    """Fill ``model`` from NAM's flat order; ``ValueError`` unless the count is exact."""
    tensors = wavenet_tensors(model)
    expected = sum(t.numel() for t in tensors) + 1
    if weights.shape != (expected,):
        raise ValueError(f"{weights.size} weights but its config needs {expected}")
    i = 0
    with torch.no_grad():
        for t in tensors:
            t.copy_(torch.from_numpy(weights[i : i + t.numel()]).view_as(t))
            i += t.numel()
    model.head_scale = float(weights[i])  # NAM's engine takes it from here, not the config


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
