"""Knob (parameter) rules, in one place: names, settings, channel counts, silence.

A knob-aware model reads ``1 + len(params)`` input channels: the audio, then one
channel per knob holding the knob's value (0 = knob at minimum, 1 = at maximum) at
every sample. A model built without names but with extra channels (a file from
another tool) calls them ``knob1``, ``knob2``, ...

Everything before a recording's start is *silence with the knobs already set*: the
audio channel is zero and each knob channel holds its first value. Offline rendering,
validation regions and streamers all start from :func:`silence`.

The checks raise ``ValueError`` (models import nothing of ampnet's); callers that
face a user turn them into one-line errors in their own words (``data.params``,
``--param``, a file's name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RANGE = "0 (minimum) to 1 (maximum)"


def check_names(names: Sequence[str] | None) -> list[str]:
    """``names`` as a list of distinct knob names (identifiers), or ``ValueError``."""
    names = [str(n) for n in (names or [])]
    if any(not NAME.match(n) for n in names) or len(set(names)) != len(names):
        raise ValueError(
            f"knob names must be distinct words of letters, digits and underscores "
            f"(e.g. [drive, tone]), got {names}"
        )
    return names


def knob_names(params: Sequence[str] | None, channels: int, what: str) -> list[str]:
    """The knob names of a model whose config says ``channels`` inputs (audio included).

    ``channels`` may count the audio only (1, the knobs are then added) or the audio
    and every knob; anything else is a config error.
    """
    if channels < 1:
        raise ValueError(f"{what}={channels}: the audio is one channel, so at least 1")
    names = check_names(params)
    if not names:
        return [f"knob{i}" for i in range(1, channels)]
    if channels not in (1, 1 + len(names)):
        raise ValueError(
            f"{what}={channels} does not fit {len(names)} knob(s) {names}: "
            f"use 1 (audio; knobs are added) or {1 + len(names)}"
        )
    return names


class SettingError(ValueError):
    """A knob setting that does not fit the knob names: what is missing, unknown or out of range."""

    def __init__(
        self,
        names: Sequence[str],
        given: Mapping,
        missing: Sequence[str] = (),
        unknown: Sequence[str] = (),
        bad: tuple[str, object] | None = None,
    ):
        self.names, self.given = list(names), dict(given)
        self.missing, self.unknown, self.bad = list(missing), list(unknown), bad
        if bad is not None:
            text = f"{bad[0]}={bad[1]} is not a number from {RANGE}"
        else:
            text = f"knobs {self.names}: missing {self.missing}, unknown {self.unknown}"
        super().__init__(text)


def knob_value(value) -> float | None:
    """``value`` as a knob setting in [0, 1], or None when it is not one."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if 0.0 <= value <= 1.0 else None


def check_setting(
    names: Sequence[str], given: Mapping | None, *, partial: bool = False
) -> dict[str, float]:
    """``given`` checked against knob ``names``: every knob known, every value in [0, 1]
    and, unless ``partial``, every knob set. Raises :class:`SettingError`."""
    given = dict(given or {})
    unknown = [k for k in given if k not in names]
    missing = [] if partial else [k for k in names if k not in given]
    if unknown or missing:
        raise SettingError(names, given, missing=missing, unknown=unknown)
    setting = {}
    for knob in names if not partial else given:
        value = knob_value(given[knob])
        if value is None:
            raise SettingError(names, given, bad=(knob, given[knob]))
        setting[knob] = value
    return setting


def silence(knobs: torch.Tensor, samples: int) -> torch.Tensor:
    """``samples`` of silence with the knobs held: ``knobs`` (batch, n_knobs) ->
    (batch, 1 + n_knobs, samples), audio zero and each knob channel at its value."""
    audio = knobs.new_zeros(knobs.shape[0], 1, samples)
    return torch.cat([audio, knobs[:, :, None].expand(-1, -1, samples)], dim=1)


def pad_silence(x: torch.Tensor, samples: int) -> torch.Tensor:
    """Prepend ``samples`` of :func:`silence` to ``x`` (batch, channels, time), the knobs
    held at their first value (the knob was already set when the recording began)."""
    if samples <= 0:
        return x
    return torch.cat([silence(x[:, 1:, 0], samples), x], dim=-1)
