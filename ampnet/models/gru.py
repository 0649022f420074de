"""GRU amp model: ``y = linear(gru(x)) + x``, the AIDA-X / Proteus shape with GRU cells.

How it starts (after silence) and trains is :mod:`ampnet.models.recurrent`'s. A GRU has
one state vector per layer (an LSTM two) and three gates (an LSTM four), so it costs
about three quarters of an LSTM of the same size.
"""

from __future__ import annotations

import torch
from torch import nn

from .recurrent import Recurrent, State


class GRU(Recurrent):
    """GRU cells (PyTorch's gates r, z, n) under :class:`~ampnet.models.recurrent.Recurrent`."""

    target = "ampnet.models.GRU"
    cell = "gru"
    gates = 3

    def build_cell(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        self.gru = nn.GRU(input_size, hidden_size, num_layers, batch_first=True)
        self.register_buffer("h0", torch.zeros(num_layers, hidden_size))

    def start_state(self, batch: int = 1) -> State:
        """``(h0,)``, ``(layers, batch, hidden)``: where silence (and training) starts."""
        return (self.h0[:, None].expand(-1, batch, -1).contiguous(),)

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        # PyTorch has no fused CPU GRU: its own runs each time step as small operations, about
        # 50x slower to train than an LSTM; the native recurrence gives the same result.
        from ampnet.kernels import recurrence  # the kernels import the models: not at import time

        if recurrence.native_ok(x, self.gru):
            h, hn = recurrence.gru(self.gru, x, state[0])
        else:
            h, hn = self.gru(x, state[0])
        return h, (hn,)
