"""The activations NAM's engine knows, by their ``.nam`` names, with their parameters.

A spec is a name (``"Tanh"``) or a dict (``{"type": "LeakyReLU", "negative_slope": 0.01}``);
:func:`make_activation` builds the module and :func:`activation_spec` gives the spec back
(the name alone when the parameters are the defaults), so a model's config and its
``.nam`` file say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class LeakyReLU(nn.LeakyReLU):
    """NAM's LeakyReLU: ``x`` above 0, ``negative_slope * x`` below (default 0.01)."""

    def spec(self) -> dict:
        return {"type": "LeakyReLU", "negative_slope": self.negative_slope}


class PReLU(nn.Module):
    """NAM's PReLU with fixed slopes: one for every channel, or one shared.

    Channels are dim 1 of ``(batch, channels, time)``; NAM writes the slopes as
    ``negative_slopes`` (one per channel) or ``negative_slope`` (shared).
    """

    def __init__(self, negative_slopes):
        super().__init__()
        slopes = torch.as_tensor(negative_slopes, dtype=torch.float32).reshape(-1)
        self.register_buffer("slopes", slopes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slopes = self.slopes.view(1, -1, 1) if self.slopes.numel() > 1 else self.slopes
        return torch.where(x > 0, x, slopes * x)

    def spec(self) -> dict:
        values = [float(v) for v in self.slopes]
        if len(values) == 1:
            return {"type": "PReLU", "negative_slope": values[0]}
        return {"type": "PReLU", "negative_slopes": values}


class LeakyHardtanh(nn.Module):
    """``x`` between ``min_val`` and ``max_val``; outside, lines of slope ``min_slope`` and
    ``max_slope`` through the corners (NAM's LeakyHardtanh)."""

    def __init__(self, min_val=-1.0, max_val=1.0, min_slope=0.01, max_slope=0.01):
        super().__init__()
        self.min_val, self.max_val = float(min_val), float(max_val)
        self.min_slope, self.max_slope = float(min_slope), float(max_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = (x - self.min_val) * self.min_slope + self.min_val
        high = (x - self.max_val) * self.max_slope + self.max_val
        return torch.where(x < self.min_val, low, torch.where(x > self.max_val, high, x))

    def spec(self) -> dict:
        keys = ("min_val", "max_val", "min_slope", "max_slope")
        return {"type": "LeakyHardtanh", **{k: getattr(self, k) for k in keys}}


PLAIN: dict[str, type[nn.Module]] = {
    "Tanh": nn.Tanh,
    "Hardtanh": nn.Hardtanh,
    "ReLU": nn.ReLU,
    "Sigmoid": nn.Sigmoid,
    "SiLU": nn.SiLU,
    "Hardswish": nn.Hardswish,
    "Softsign": nn.Softsign,
}
NAMES = sorted([*PLAIN, "LeakyReLU", "PReLU", "LeakyHardtanh"])
DEFAULTS = {
    "LeakyReLU": LeakyReLU().spec(),
    "LeakyHardtanh": LeakyHardtanh().spec(),
}


def make_activation(spec) -> nn.Module:
    """The module for an activation spec: a NAM name or ``{"type": name, **parameters}``."""
    if isinstance(spec, Mapping):
        name = spec.get("type")
        params = {k: v for k, v in spec.items() if k != "type"}
    else:
        name, params = spec, {}
    name = "LeakyHardtanh" if name == "LeakyHardTanh" else name  # both spellings are NAM's
    if name in PLAIN:
        return PLAIN[name]()  # NAM reads no parameters for these
    if name == "LeakyReLU":
        return LeakyReLU(float(params.get("negative_slope", 0.01)))
    if name == "PReLU":
        return PReLU(params.get("negative_slopes", params.get("negative_slope", 0.01)))
    if name == "LeakyHardtanh":
        keys = ("min_val", "max_val", "min_slope", "max_slope")
        return LeakyHardtanh(**{k: params[k] for k in keys if k in params})
    raise ValueError(f"unknown activation {name!r}; choose one of {NAMES}")


def activation_spec(module: nn.Module):
    """The spec that rebuilds ``module``: its name, or a dict when it has parameters that
    differ from the defaults (PReLU always carries its slopes)."""
    spec = module.spec() if hasattr(module, "spec") else type(module).__name__
    if isinstance(spec, dict) and DEFAULTS.get(spec["type"]) == spec:
        return spec["type"]
    return spec


def activation_name(module: nn.Module) -> str:
    """The NAM name of ``module`` (``"LeakyReLU"``), whatever its parameters."""
    spec = activation_spec(module)
    return spec["type"] if isinstance(spec, dict) else spec
