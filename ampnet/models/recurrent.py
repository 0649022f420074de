"""What the recurrent amp models share: ``y = linear(rnn(x)) (+ x)``, the Proteus / AIDA-X
"SimpleRNN" shape, with the cell (LSTM or GRU) left to the subclass.

**Silence before the start.** A player does not start a recurrent model from its zero
state: AIDA-X resets it and pre-rolls 2048 samples of silence, NAM's engine starts an
LSTM from the file's ``h0``/``c0`` and runs half a second of silence, NAM's trainer writes
the state after 48,000 samples of silence as ``h0``/``c0``. An ampnet model plays the
same way: from its start state (zero for models trained here) it runs up to ``settle``
samples of silence, knobs held, stopping early once the state has stopped moving, and
the first sample meets the state that leaves. Offline rendering (``pad_start=True``),
chunked rendering and every streamer start there. Training windows instead start from
the start state and mask their first ``burn_in`` samples.
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

State = tuple[torch.Tensor, ...]  # each (layers, batch, hidden): (h, c) for an LSTM, (h,) for a GRU


class Recurrent(nn.Module):
    """Recurrent model: ``(batch, input_size, time) -> (batch, 1, time)``.

    Channel 0 is the audio, further channels are knob values (the Proteus layout:
    ``input_size = 1 + len(params)``; ``input_size`` may also count the audio only). With
    ``input_skip`` the audio is added to the output, so the network learns the
    difference from the dry signal. ``burn_in`` samples at the start of every
    training window only settle the state: their loss is masked. ``settle`` is the most
    silence a performance is preceded by (module docstring); 0 starts from the start state.
    ``truncate`` > 0 trains with truncated back-propagation through time: the window runs
    in pieces of that many samples, the state carried on but its gradient cut between
    them (NAM trains its LSTMs so, with 512); it changes nothing outside training.
    """

    receptive_field = 1
    target = ""  # the class path build_model knows it by
    cell: str = ""  # the attribute holding the torch cell (checkpoint keys: lstm.*, gru.*)

    def __init__(
        self,
        input_size: int = 1,
        hidden_size: int = 24,
        num_layers: int = 1,
        input_skip: bool = True,
        burn_in: int = 4096,
        params: Sequence[str] | None = None,
        settle: int = SETTLE,
        truncate: int = 0,
    ):
        super().__init__()
        self.params = knob_names(params, input_size, "input_size")
        self.input_size = 1 + len(self.params)
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.input_skip = input_skip
        self.burn_in = int(burn_in)
        self.settle = int(settle)
        self.truncate = int(truncate)
        self.build_cell(self.input_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, 1)

    @property
    def rnn(self) -> nn.RNNBase:
        return getattr(self, self.cell)

    @property
    def history(self) -> int:
        """Input samples a training window needs before its first target sample."""
        return self.receptive_field - 1 + self.burn_in

    @property
    def input_channels(self) -> int:
        return self.input_size

    @property
    def output_channels(self) -> int:
        return 1

    finite_memory = False  # its state depends on everything it has heard
    gates = 0  # weight blocks per cell (LSTM 4, GRU 3)

    @property
    def macs_per_sample(self) -> int:
        """Multiply-adds per output sample: every gate's input and recurrent weights, and the head."""
        inputs = [self.input_size] + [self.hidden_size] * (self.num_layers - 1)
        cells = sum(self.gates * self.hidden_size * (i + self.hidden_size) for i in inputs)
        return cells + self.hidden_size

    def config(self) -> dict:
        """Constructor arguments, with ``_target_``: ``build_model(model.config())`` rebuilds it."""
        config = {
            "_target_": self.target,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "input_skip": self.input_skip,
            "burn_in": self.burn_in,
            "settle": self.settle,
        }
        if self.truncate:
            config["truncate"] = self.truncate
        if self.params:
            config["params"] = list(self.params)
        return config

    def fold_input_gain(self, gain: float) -> Recurrent:
        """A copy that takes the raw audio where this one takes ``gain`` times it (the gain
        moves into the input weights); ``ValueError`` with an input skip, which bypasses them."""
        if self.input_skip:
            raise ValueError("its input skip bypasses the weights")
        model = copy.deepcopy(self)
        with torch.no_grad():
            model.rnn.weight_ih_l0[:, 0] *= gain
        return model

    def build_cell(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        """Create the torch cell (as attribute ``cell``) and the buffers of its start state."""
        raise NotImplementedError

    def start_state(self, batch: int = 1) -> State:
        """Where silence (and training) starts: the stored state, each ``(layers, batch, hidden)``."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The cell over ``x`` (batch, time, input_size) from ``state``: (outputs, new state)."""
        raise NotImplementedError

    @torch.no_grad()
    def initial_state(self, batch: int = 1, knobs: torch.Tensor | None = None) -> State:
        """The state after silence (module docstring), knobs held at ``knobs`` (batch,
        n_knobs; zeros if None): where a performance starts."""
        state = self.start_state(batch)
        if knobs is None:
            knobs = state[0].new_zeros(batch, self.input_size - 1)
        block = silence(knobs.to(state[0]), min(SETTLE_BLOCK, self.settle)).transpose(1, 2)
        done = 0
        while done < self.settle:
            part = block[:, : self.settle - done]
            _, after = self.step(part, state)
            moved = max(float((a - b).abs().max()) for a, b in zip(after, state, strict=True))
            state, done = after, done + part.shape[1]
            if moved < SETTLED:
                break
        return state

    def forward_with_state(
        self, x: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """x: (batch, input_size, time), a state from :meth:`initial_state` -> (y, new state).

        Without ``state`` the run starts from :meth:`start_state`.
        """
        if state is None:
            state = self.start_state(x.shape[0])
        seq = x.transpose(1, 2)
        if self.truncate and self.training and torch.is_grad_enabled():
            parts = []
            for start in range(0, seq.shape[1], self.truncate):
                if start:
                    state = tuple(s.detach() for s in state)
                part, state = self.step(seq[:, start : start + self.truncate], state)
                parts.append(part)
            h = torch.cat(parts, dim=1)
        else:
            h, state = self.step(seq, state)
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
