"""Knob (parameter) conditioning shared by the models: names, channel counts, silence.

A knob-aware model reads ``1 + len(params)`` input channels: the audio, then one
channel per knob holding the knob's value (0 to 1) at every sample. A model built
without names but with extra channels (a file from another tool) calls them
``knob1``, ``knob2``, ...
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def knob_names(params: Sequence[str] | None, channels: int, what: str) -> list[str]:
    """The knob names of a model whose config says ``channels`` inputs (audio included).

    ``channels`` may count the audio only (1, the knobs are then added) or the audio
    and every knob; anything else is a config error.
    """
    if channels < 1:
        raise ValueError(f"{what}={channels}: the audio is one channel, so at least 1")
    names = [str(p) for p in (params or [])]
    if not names:
        return [f"knob{i}" for i in range(1, channels)]
    bad = [n for n in names if not NAME.match(n)]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"knob names must be distinct identifiers, got {names}")
    if channels not in (1, 1 + len(names)):
        raise ValueError(
            f"{what}={channels} does not fit {len(names)} knob(s) {names}: "
            f"use 1 (audio; knobs are added) or {1 + len(names)}"
        )
    return names


def pad_silence(x: torch.Tensor, samples: int) -> torch.Tensor:
    """Prepend ``samples`` of silence to ``x`` (batch, channels, time): the audio channel
    gets zeros, knob channels hold their first value (the knob was already set)."""
    if samples <= 0:
        return x
    audio = F.pad(x[:, :1], (samples, 0))
    if x.shape[1] == 1:
        return audio
    knobs = x[:, 1:, :1].expand(-1, -1, samples)
    return torch.cat([audio, torch.cat([knobs, x[:, 1:]], dim=-1)], dim=1)
