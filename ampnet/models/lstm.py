"""LSTM amp model: ``y = linear(lstm(x)) + x`` (the Proteus / AIDA-X "SimpleRNN" shape).

How it starts (after silence) and trains is :mod:`ampnet.models.recurrent`'s; NAM's
``.nam`` LSTM stores the start state as ``h0``/``c0``.
"""

from __future__ import annotations

import torch
from torch import nn

from .recurrent import Recurrent, State


class LSTM(Recurrent):
    """LSTM cells (gates i, f, g, o) under :class:`~ampnet.models.recurrent.Recurrent`."""

    target = "ampnet.models.LSTM"
    cell = "lstm"
    gates = 4

    def build_cell(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        # The state silence starts from: zeros for models trained here; a NAM file brings its own.
        self.register_buffer("h0", torch.zeros(num_layers, hidden_size))
        self.register_buffer("c0", torch.zeros(num_layers, hidden_size))

    def start_state(self, batch: int = 1) -> State:
        """``(h0, c0)``, each ``(layers, batch, hidden)``: where silence (and training) starts."""
        return (
            self.h0[:, None].expand(-1, batch, -1).contiguous(),
            self.c0[:, None].expand(-1, batch, -1).contiguous(),
        )

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, (hn, cn) = self.lstm(x, (state[0], state[1]))
        return h, (hn, cn)
