"""The parts of a WaveNet (:mod:`ampnet.models.wavenet`): FiLM, one dilated layer, a layer
array (NAM's keys of either schema) and NAM's top-level head. Plain PyTorch."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .activations import activation_name, activation_spec, make_activation
from .conv import Conv1d

GATING = ("none", "gated", "blended")
FILMS = (
    "conv_pre_film",
    "conv_post_film",
    "input_mixin_pre_film",
    "input_mixin_post_film",
    "activation_pre_film",
    "activation_post_film",
    "layer1x1_post_film",
    "head1x1_post_film",
)
# Every key a layer array may have (NAM 0.5 and 0.7 schemas); anything else is refused.
ARRAY_KEYS = {
    "input_size",
    "condition_size",
    "channels",
    "dilations",
    "kernel_size",
    "kernel_sizes",
    "head_size",
    "head_bias",
    "head",
    "activation",
    "gated",
    "gating_mode",
    "secondary_activation",
    "bottleneck",
    "head1x1",
    "layer1x1",
    "groups_input",
    "groups_input_mixin",
    "slimmable",
    *FILMS,
}


def plain(value):
    """``value`` with every mapping a dict and every sequence (but strings) a list: configs
    arrive as JSON, Python or Hydra containers."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(v) for v in value]
    return value


def per_layer(value, n: int, what: str) -> list:
    """One value per layer: a list of ``n``, or one value for every layer."""
    if isinstance(value, list):
        if len(value) != n:
            raise ValueError(f"{what} lists {len(value)} values for {n} layers")
        return list(value)
    return [value] * n


def film_setting(value) -> dict | None:
    """A FiLM key as NAM reads it: absent/false/inactive -> None, else ``{shift, groups}``."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(f"a FiLM setting is an object, not {value!r}")
    if not value.get("active", True):
        return None
    return {"shift": bool(value.get("shift", True)), "groups": int(value.get("groups", 1))}


class FiLM(nn.Module):
    """Feature-wise linear modulation by the condition: ``x * scale(c) (+ shift(c))``,
    scale and shift the top and bottom rows of one grouped 1x1 convolution of ``c``."""

    def __init__(self, condition_size: int, dim: int, shift: bool = True, groups: int = 1):
        super().__init__()
        self.dim, self.shift, self.groups = dim, shift, groups
        self.conv = nn.Conv1d(condition_size, (2 if shift else 1) * dim, 1, groups=groups)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x: (batch, dim, n), c: (batch, condition_size, >= n), aligned at the end."""
        ss = self.conv(c[..., -x.shape[-1] :])
        y = x * ss[:, : self.dim]
        return y + ss[:, self.dim :] if self.shift else y


class WaveNetLayer(nn.Module):
    """One dilated layer: ``(x, c) -> (x_next, head term)`` (module docstring)."""

    def __init__(
        self,
        channels: int,
        bottleneck: int,
        condition_size: int,
        kernel_size: int,
        dilation: int,
        activation="Tanh",
        gating: str = "none",
        secondary=None,
        layer1x1: Mapping | None = None,
        head1x1: Mapping | None = None,
        groups_input: int = 1,
        groups_input_mixin: int = 1,
        films: Mapping[str, Mapping] | None = None,
    ):
        super().__init__()
        if gating not in GATING:
            raise ValueError(f"gating mode {gating!r}: use one of {GATING}")
        layer1x1 = {"active": True, "groups": 1, **dict(layer1x1 or {})}
        head1x1 = {"active": False, "out_channels": channels, "groups": 1, **dict(head1x1 or {})}
        if not layer1x1["active"] and bottleneck != channels:
            raise ValueError("a layer without a layer1x1 needs bottleneck == channels")
        mid = 2 * bottleneck if gating != "none" else bottleneck
        self.channels, self.bottleneck, self.gating = channels, bottleneck, gating
        self.kernel_size, self.dilation = kernel_size, dilation
        self.conv = Conv1d(channels, mid, kernel_size, dilation=dilation, groups=groups_input)
        self.input_mixer = nn.Conv1d(condition_size, mid, 1, bias=False, groups=groups_input_mixin)
        self.activation = make_activation(activation)
        self.secondary = make_activation(secondary or "Sigmoid") if gating != "none" else None
        self.layer1x1 = (
            nn.Conv1d(bottleneck, channels, 1, groups=layer1x1["groups"])
            if layer1x1["active"]
            else None
        )
        self.head1x1 = (
            nn.Conv1d(bottleneck, head1x1["out_channels"], 1, groups=head1x1["groups"])
            if head1x1["active"]
            else None
        )
        self.head_channels = head1x1["out_channels"] if head1x1["active"] else bottleneck
        dims = {
            "conv_pre_film": channels,
            "conv_post_film": mid,
            "input_mixin_pre_film": condition_size,
            "input_mixin_post_film": mid,
            "activation_pre_film": mid,
            "activation_post_film": bottleneck,
            "layer1x1_post_film": channels,
            "head1x1_post_film": self.head_channels,
        }
        films = {k: v for k, v in (films or {}).items() if v is not None}
        if "layer1x1_post_film" in films and self.layer1x1 is None:
            raise ValueError("layer1x1_post_film needs an active layer1x1")
        if "head1x1_post_film" in films and self.head1x1 is None:
            raise ValueError("head1x1_post_film needs an active head1x1")
        self.films = nn.ModuleDict(
            {k: FiLM(condition_size, dims[k], **films[k]) for k in FILMS if k in films}
        )

    @property
    def history(self) -> int:
        """Past input samples the dilated convolution reads."""
        return (self.kernel_size - 1) * self.dilation

    def _film(self, name: str, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.films[name](x, c) if name in self.films else x

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, history: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """x: (batch, channels, time), c: (batch, condition_size, >= time), aligned at the end.

        Without ``history`` the convolution is valid: outputs are ``history`` samples
        shorter than x. With it (the conv's past input, ``(batch, channels, history)``)
        they have x's length; returns ``(x_next, head term, new history)``.
        """
        xi = self._film("conv_pre_film", x, c)  # the conv's input, as its history keeps it
        if history is not None:
            xi = torch.cat([history, xi], dim=-1)
            history = xi[..., xi.shape[-1] - self.history :]
        z = self._film("conv_post_film", self.conv(xi), c)
        n = z.shape[-1]
        ci = c[..., -n:]
        mixed = self.input_mixer(self._film("input_mixin_pre_film", ci, ci))
        z = self._film("activation_pre_film", z + self._film("input_mixin_post_film", mixed, c), c)
        b = self.bottleneck
        if self.gating == "none":
            a = self.activation(z)
        elif self.gating == "gated":
            a = self.activation(z[:, :b]) * self.secondary(z[:, b:])
        else:  # blended: a mix of the activation and its input, the secondary says how much
            s = self.secondary(z[:, b:])
            a = s * self.activation(z[:, :b]) + (1 - s) * z[:, :b]
        a = self._film("activation_post_film", a, c)
        residual = x[..., -n:]
        if self.layer1x1 is not None:
            out = self.layer1x1(a)
            if self.gating == "blended":  # NAM's engine applies this FiLM in blended layers only
                out = self._film("layer1x1_post_film", out, c)
            residual = residual + out
        head = a if self.head1x1 is None else self._film("head1x1_post_film", self.head1x1(a), c)
        return residual, head, history


class LayerArray(nn.Module):
    """A re-channel, a stack of :class:`WaveNetLayer` and a head convolution.

    Takes NAM's keys of either schema (``head_size``/``head_bias``/``kernel_size``/``gated``
    or ``head``/``kernel_sizes``/``gating_mode`` and the rest of 0.7); unknown keys are an
    error. :meth:`config` writes the classic keys back when the array is classic.
    """

    def __init__(self, **cfg):
        super().__init__()
        cfg = plain(cfg)
        unknown = set(cfg) - ARRAY_KEYS
        if unknown:
            raise ValueError(f"unsupported layer-array key {sorted(unknown)[0]!r}")
        self.input_size = int(cfg["input_size"])
        self.condition_size = int(cfg["condition_size"])
        self.channels = int(cfg["channels"])
        self.dilations = [int(d) for d in cfg["dilations"]]
        n = len(self.dilations)
        if cfg.get("kernel_sizes") is not None and cfg.get("kernel_size") is not None:
            raise ValueError("give kernel_size or kernel_sizes, not both")
        kernels = cfg["kernel_sizes"] if cfg.get("kernel_sizes") is not None else cfg["kernel_size"]
        self.kernel_sizes = [int(k) for k in per_layer(kernels, n, "kernel_sizes")]
        head = cfg.get("head")
        if head is None:  # the classic keys
            head = {"out_channels": cfg["head_size"], "kernel_size": 1, "bias": cfg["head_bias"]}
        self.head = {
            "out_channels": int(head["out_channels"]),
            "kernel_size": int(head.get("kernel_size", 1)),
            "bias": bool(head.get("bias", True)),
            "head_dilation": int(head.get("head_dilation", 1)),
        }
        self.activations = [
            activation_spec(make_activation(a))
            for a in per_layer(cfg.get("activation", "Tanh"), n, "activation")
        ]
        if cfg.get("gating_mode") is not None:
            self.gating = [str(g) for g in per_layer(cfg["gating_mode"], n, "gating_mode")]
            secondaries = per_layer(cfg.get("secondary_activation"), n, "secondary_activation")
        else:  # classic: gated means a Sigmoid gate
            self.gating = ["gated" if cfg.get("gated") else "none"] * n
            secondaries = [None] * n
        self.secondaries = [
            activation_spec(make_activation(s or "Sigmoid")) if g != "none" else None
            for g, s in zip(self.gating, secondaries, strict=True)
        ]
        self.bottleneck = int(cfg.get("bottleneck") or self.channels)
        self.layer1x1 = {"active": True, "groups": 1, **dict(cfg.get("layer1x1") or {})}
        self.head1x1 = {
            "active": False,
            "out_channels": self.channels,
            "groups": 1,
            **dict(cfg.get("head1x1") or {}),
        }
        self.groups_input = int(cfg.get("groups_input", 1))
        self.groups_input_mixin = int(cfg.get("groups_input_mixin", 1))
        self.films = {k: film_setting(cfg.get(k)) for k in FILMS}
        self.slimmable = cfg.get("slimmable") or None
        self.rechannel = nn.Conv1d(self.input_size, self.channels, 1, bias=False)
        self.layers = nn.ModuleList(
            WaveNetLayer(
                self.channels,
                self.bottleneck,
                self.condition_size,
                k,
                d,
                act,
                gating,
                sec,
                self.layer1x1,
                self.head1x1,
                self.groups_input,
                self.groups_input_mixin,
                self.films,
            )
            for k, d, act, gating, sec in zip(
                self.kernel_sizes,
                self.dilations,
                self.activations,
                self.gating,
                self.secondaries,
                strict=True,
            )
        )
        self.head_in = self.layers[0].head_channels
        self.head_rechannel = Conv1d(
            self.head_in,
            self.head["out_channels"],
            self.head["kernel_size"],
            dilation=self.head["head_dilation"],
            bias=self.head["bias"],
        )

    # the classic view of an array, as the native kernel and older configs know it
    @property
    def head_size(self) -> int:
        return self.head["out_channels"]

    @property
    def head_bias(self) -> bool:
        return self.head["bias"]

    @property
    def kernel_size(self) -> int:
        return self.kernel_sizes[0]

    @property
    def gated(self) -> bool:
        return self.gating[0] == "gated"

    @property
    def activation(self) -> str:
        return activation_name(self.layers[0].activation)

    @property
    def classic(self) -> bool:
        """True when NAM's classic (0.5) keys describe the array exactly."""
        return (
            len(set(self.kernel_sizes)) == 1
            and len({str(a) for a in self.activations}) == 1
            and isinstance(self.activations[0], str)
            and len(set(self.gating)) == 1
            and self.gating[0] in ("none", "gated")
            and all(s in (None, "Sigmoid") for s in self.secondaries)
            and self.head["kernel_size"] == 1
            and self.head["head_dilation"] == 1
            and self.bottleneck == self.channels
            and self.layer1x1 == {"active": True, "groups": 1}
            and not self.head1x1["active"]
            and self.groups_input == self.groups_input_mixin == 1
            and not any(self.films.values())
            and not self.slimmable
        )

    @property
    def receptive_field(self) -> int:
        return 1 + sum(layer.history for layer in self.layers) + self.head_history

    def config(self) -> dict:
        """The keyword arguments that rebuild this array: NAM's classic keys for a classic
        array, its 0.7 keys otherwise."""
        if self.classic:
            return {
                "input_size": self.input_size,
                "condition_size": self.condition_size,
                "head_size": self.head_size,
                "channels": self.channels,
                "kernel_size": self.kernel_size,
                "dilations": list(self.dilations),
                "activation": self.activation,
                "gated": self.gated,
                "head_bias": self.head_bias,
            }
        return self.full_config()

    def full_config(self) -> dict:
        """Every setting, in NAM's 0.7 keys."""
        return {
            "input_size": self.input_size,
            "condition_size": self.condition_size,
            "head": dict(self.head),
            "channels": self.channels,
            "bottleneck": self.bottleneck,
            "kernel_sizes": list(self.kernel_sizes),
            "dilations": list(self.dilations),
            "activation": copy.deepcopy(self.activations),
            "gating_mode": list(self.gating),
            "secondary_activation": copy.deepcopy(self.secondaries),
            "head1x1": dict(self.head1x1),
            "layer1x1": dict(self.layer1x1),
            "groups_input": self.groups_input,
            "groups_input_mixin": self.groups_input_mixin,
            **{
                k: {"active": True, **v} if v else {"active": False, "shift": True, "groups": 1}
                for k, v in self.films.items()
            },
            "slimmable": copy.deepcopy(self.slimmable),
        }

    @property
    def head_history(self) -> int:
        """Past head sums the head convolution reads."""
        return self.head["head_dilation"] * (self.head["kernel_size"] - 1)

    @property
    def n_histories(self) -> int:
        return len(self.layers) + (1 if self.head_history else 0)

    def histories(self, batch: int, ref: torch.Tensor) -> list[torch.Tensor]:
        """Zeroed past inputs for every layer's conv, then the head conv's (when it has one)."""
        zeros = [ref.new_zeros(batch, self.channels, layer.history) for layer in self.layers]
        head = self.head_history
        return zeros + ([ref.new_zeros(batch, self.head_in, head)] if head else [])

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        head: torch.Tensor | None,
        state: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, input_size, time) -> (layer output, head output).

        Without ``state`` both are ``receptive_field - 1`` samples shorter than x; with it
        (from :meth:`histories`, updated in place) every conv first sees its own past
        input, so both have x's length.
        """
        x = self.rechannel(x)
        for i, layer in enumerate(self.layers):
            x, h, new = layer(x, c, None if state is None else state[i])
            if state is not None:
                state[i] = new
            head = h if head is None else head[..., -h.shape[-1] :] + h
        if state is not None and len(state) > len(self.layers):
            head = torch.cat([state[-1], head], dim=-1)
            state[-1] = head[..., head.shape[-1] - state[-1].shape[-1] :]
        return x, self.head_rechannel(head)


class PostHead(nn.Module):
    """NAM's top-level head: ``(activation, then a causal convolution)`` repeated, on the
    scaled head output. Channels: the last array's head size, ``channels``..., ``out_channels``."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int],
        activation="ReLU",
    ):
        super().__init__()
        sizes = [in_channels] + [channels] * (len(kernel_sizes) - 1) + [out_channels]
        self.spec = {
            "channels": int(channels),
            "out_channels": int(out_channels),
            "kernel_sizes": [int(k) for k in kernel_sizes],
            "activation": activation_spec(make_activation(activation)),
        }
        self.activation = make_activation(activation)
        self.convs = nn.ModuleList(
            Conv1d(sizes[i], sizes[i + 1], int(k)) for i, k in enumerate(kernel_sizes)
        )

    @property
    def receptive_field(self) -> int:
        return 1 + sum(conv.kernel_size[0] - 1 for conv in self.convs)

    def histories(self, batch: int, ref: torch.Tensor) -> list[torch.Tensor]:
        return [ref.new_zeros(batch, c.in_channels, c.kernel_size[0] - 1) for c in self.convs]

    def forward(self, w: torch.Tensor, state: list[torch.Tensor] | None = None) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            w = self.activation(w)
            if state is not None:
                w = torch.cat([state[i], w], dim=-1)
                state[i] = w[..., w.shape[-1] - state[i].shape[-1] :]
            w = conv(w)
        return w
