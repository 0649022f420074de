"""LSTM amp model: ``y = linear(lstm(x)) + x`` (the Proteus / AIDA-X "SimpleRNN" shape).

**Silence before the start.** A player does not start an LSTM from its zero state: AIDA-X
resets it and pre-rolls 2048 samples of silence, NAM's engine starts from the file's
``h0``/``c0`` and runs half a second of silence, NAM's trainer writes the state after
48,000 samples of silence as ``h0``/``c0``. An ampnet LSTM plays the same way: from
``(h0, c0)`` (zero for models trained here) it runs up to ``settle`` samples of silence,
knobs held, stopping early once the state has stopped moving, and the first sample
meets the state that leaves. Offline rendering (``pad_start=True``), chunked rendering
and every streamer start there. Training windows instead start from ``(h0, c0)`` and
mask their first ``burn_in`` samples.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .knobs import knob_names, silence

SETTLE = 48000  # silent samples at most before the first (NAM's trainer uses 48,000 for h0/c0)
SETTLE_BLOCK = 2048  # settle in blocks this long (AIDA-X's pre-roll is one block) ...
SETTLED = 1e-7  # ... until a block moves no state value by more than this


class LSTM(nn.Module):
    """Recurrent model: ``(batch, input_size, time) -> (batch, 1, time)``.

    Channel 0 is the audio, further channels are knob values (the Proteus layout:
    ``input_size = 1 + len(params)``; ``input_size`` may also count the audio only). With
    ``input_skip`` the audio is added to the output, so the network learns the
    difference from the dry signal. ``burn_in`` samples at the start of every
    training window only settle the state: their loss is masked. ``settle`` is the most
    silence a performance is preceded by (module docstring); 0 starts from ``(h0, c0)``.
    """

    receptive_field = 1

    def __init__(
        self,
        input_size: int = 1,
        hidden_size: int = 24,
        num_layers: int = 1,
        input_skip: bool = True,
        burn_in: int = 4096,
        params: Sequence[str] | None = None,
        settle: int = SETTLE,
    ):
        super().__init__()
        self.params = knob_names(params, input_size, "input_size")
        input_size = 1 + len(self.params)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.input_skip = input_skip
        self.burn_in = int(burn_in)
        self.settle = int(settle)
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        # The state silence starts from: zeros for models trained here; a NAM file brings its own.
        self.register_buffer("h0", torch.zeros(num_layers, hidden_size))
        self.register_buffer("c0", torch.zeros(num_layers, hidden_size))

    @property
    def history(self) -> int:
        """Input samples a training window needs before its first target sample."""
        return self.receptive_field - 1 + self.burn_in

    @property
    def input_channels(self) -> int:
        return self.input_size

    def config(self) -> dict:
        """Constructor arguments, with ``_target_``: ``build_model(model.config())`` rebuilds it."""
        config = {
            "_target_": "ampnet.models.LSTM",
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "input_skip": self.input_skip,
            "burn_in": self.burn_in,
            "settle": self.settle,
        }
        if self.params:
            config["params"] = list(self.params)
        return config

    def fold_input_gain(self, gain: float) -> LSTM:
        """A copy that takes the raw audio where this one takes ``gain`` times it (the gain
        moves into the input weights); ``ValueError`` with an input skip, which bypasses them."""
        if self.input_skip:
            raise ValueError("its input skip bypasses the weights")
        model = copy.deepcopy(self)
        with torch.no_grad():
            model.lstm.weight_ih_l0[:, 0] *= gain
        return model

    def start_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h0, c0)``, each ``(layers, batch, hidden)``: where silence (and training) starts."""
        return (
            self.h0[:, None].expand(-1, batch, -1).contiguous(),
            self.c0[:, None].expand(-1, batch, -1).contiguous(),
        )

    @torch.no_grad()
    def initial_state(
        self, batch: int = 1, knobs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The state after silence (module docstring), knobs held at ``knobs`` (batch,
        n_knobs; zeros if None): where a performance starts."""
        h, c = self.start_state(batch)
        if knobs is None:
            knobs = h.new_zeros(batch, self.input_size - 1)
        block = silence(knobs.to(h), min(SETTLE_BLOCK, self.settle)).transpose(1, 2)
        done = 0
        while done < self.settle:
            step = block[:, : self.settle - done]
            _, (h2, c2) = self.lstm(step, (h, c))
            moved = max(float((h2 - h).abs().max()), float((c2 - c).abs().max()))
            h, c, done = h2, c2, done + step.shape[1]
            if moved < SETTLED:
                break
        return h, c

    def forward_with_state(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x: (batch, input_size, time), state (h, c) each (layers, batch, hidden) -> (y, new state).

        Without ``state`` the run starts from :meth:`start_state`.
        """
        if state is None:
            state = self.start_state(x.shape[0])
        h, state = self.lstm(x.transpose(1, 2), state)
        y = self.head(h).transpose(1, 2)
        if self.input_skip:
            y = y + x[:, :1]
        return y, state

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        """x: (batch, input_size, time) -> (batch, 1, time).

        With ``pad_start`` the input is preceded by silence, knobs held at their first
        value: the run starts from :meth:`initial_state`, as a player's does. Without it,
        from :meth:`start_state` (training windows, whose first ``burn_in`` samples the
        loss ignores). A recurrent model's output always has the input's length.
        """
        state = self.initial_state(x.shape[0], x[:, 1:, 0]) if pad_start else None
        return self.forward_with_state(x, state)[0]
