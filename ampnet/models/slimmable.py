"""Several sizes of one capture, trained together and played one at a time (NAM's packed A2).

NAM 0.13 trains A2 at 3 and 8 channels as one network and ships them as one
``SlimmableContainer``: a player picks the size for its CPU. ``Slimmable`` does the same
with plain WaveNets: ``members`` are their configs, smallest first, and ``max_values``
the sizes each plays below (ascending, the last 1.0). Training runs every member on the
same batch and the loss covers them all; validation reports each member's ESR
(``val/esr_0`` for the smallest, ...) and their mean (``val/esr``).

Output channel 0 is the full (largest) member, what a player hears by default, then the
smaller ones; streaming plays the full member, and :meth:`at_size` gives the member a
player picks at a size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .wavenet import WaveNet, plain


class Slimmable(nn.Module):
    """WaveNets of several sizes in one model: ``(batch, channels, time) -> (batch, sizes, time')``."""

    burn_in = 0
    finite_memory = True

    def __init__(
        self,
        members: Sequence[Mapping],
        max_values: Sequence[float],
        params: Sequence[str] | None = None,
    ):
        super().__init__()
        members = [{k: v for k, v in plain(m).items() if k != "_target_"} for m in members]
        values = [float(v) for v in max_values]
        if len(values) != len(members) or values != sorted(set(values)) or values[-1] < 1.0:
            raise ValueError(
                f"max_values {values} must rise strictly, one per member, and end at 1.0"
            )
        self.max_values = values
        self.members = nn.ModuleList(
            WaveNet(**{**m, "params": params or m.get("params")}) for m in members
        )
        if len({m.input_channels for m in self.members}) != 1:
            raise ValueError("every member must read the same input channels")

    @property
    def params(self) -> list[str]:
        return self.members[0].params

    @property
    def receptive_field(self) -> int:
        return max(m.receptive_field for m in self.members)

    @property
    def history(self) -> int:
        return self.receptive_field - 1

    @property
    def input_channels(self) -> int:
        return self.members[0].input_channels

    @property
    def output_channels(self) -> int:
        return len(self.members)

    def config(self) -> dict:
        members = [
            {k: v for k, v in m.config().items() if k not in ("_target_", "params")}
            for m in self.members
        ]
        config = {"_target_": "ampnet.models.Slimmable", "members": members}
        config["max_values"] = list(self.max_values)
        if self.params:
            config["params"] = list(self.params)
        return config

    def at_size(self, size: float | None = None) -> WaveNet:
        """The member a player plays at ``size`` (0 to 1): the first whose ``max_value`` is
        above it, as NAM's engine picks in a container; the full one when None."""
        if size is None:
            return self.members[-1]
        return next(
            (m for m, v in zip(self.members, self.max_values, strict=True) if size < v),
            self.members[-1],
        )

    def fold_input_gain(self, gain: float) -> Slimmable:
        folded = Slimmable.__new__(Slimmable)
        nn.Module.__init__(folded)
        folded.max_values = list(self.max_values)
        folded.members = nn.ModuleList(m.fold_input_gain(gain) for m in self.members)
        return folded

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        """Every member on ``x``, the full one first, aligned at the end (the shortest output)."""
        outputs = [m(x, pad_start=pad_start) for m in reversed(self.members)]
        n = min(y.shape[-1] for y in outputs)
        return torch.cat([y[..., -n:] for y in outputs], dim=1)

    def initial_state(self, batch: int = 1, knobs: torch.Tensor | None = None) -> list:
        """The full member's state after silence: streaming plays the full size."""
        return self.members[-1].initial_state(batch, knobs)

    def forward_with_state(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        return self.members[-1].forward_with_state(x, state)
