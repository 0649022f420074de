"""Strictly causal WaveNet with NAM's layer structure, classic (A1) to 0.7 (A2 and beyond).

The network is a chain of *layer arrays*. Each array re-channels its input, runs a
stack of dilated-convolution layers and sums one head term per layer; the head sum
of one array, run through the array's head convolution, starts the next array's sum;
the last array's head output, times ``head_scale`` (and through an optional stack of
head convolutions), is the model's output. Each layer, with ``c`` the condition:

    z = conv_dilated(film(x)) + input_mixer(film(c))        (each FiLM optional)
    a = act(z)  |  act(z_a) * sec(z_b) (gated)  |  s * act(z_a) + (1 - s) * z_a, s = sec(z_b) (blended)
    x = x + layer1x1(a)   (or x unchanged without a layer1x1)
    head += head1x1(a)    (or a itself without a head1x1)

A FiLM scales (and shifts) a signal by a 1x1 convolution of the condition. The
condition is the model input (the audio and any knob channels), or, with a
``condition_dsp``, the output of a nested model run on the audio. Every convolution
is *valid* (no padding), so an input of ``receptive_field + n - 1`` samples gives ``n``
output samples and output sample ``t`` depends only on inputs up to ``t``. The module
and parameter layout mirrors NAM's, so weights repack into a ``.nam`` one-to-one
(:mod:`ampnet.formats.nam_weights`); today's classic layout is one configuration of it.

Knobs (``params``) are extra conditioning channels: each layer's input mixer sees
the audio and every knob value, so a knob moves every layer's pre-activation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .activations import activation_name, activation_spec, make_activation
from .knobs import knob_names, pad_silence, silence

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
        self.conv = nn.Conv1d(channels, mid, kernel_size, dilation=dilation, groups=groups_input)
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
        self.head_rechannel = nn.Conv1d(
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
            nn.Conv1d(sizes[i], sizes[i + 1], int(k)) for i, k in enumerate(kernel_sizes)
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


class WaveNet(nn.Module):
    """Causal WaveNet: ``(batch, channels, time) -> (batch, out, time - receptive_field + 1)``.

    ``layers`` is a list of layer-array settings (:class:`LayerArray`). Input channel 0
    is the audio; the first ``input_size`` channels feed the first array and all
    ``condition_size`` channels feed every input mixer. ``params`` names the knobs: each
    adds a conditioning channel to every array (``condition_size`` may count the audio
    only, or the audio and the knobs). ``head`` is NAM's top-level head (see
    :class:`PostHead`), ``condition_dsp`` a model whose output conditions every layer.
    """

    burn_in = 0  # samples of output to ignore in the loss (recurrent models need some)

    def __init__(
        self,
        layers: Sequence[Mapping],
        head_scale: float = 0.02,
        params: Sequence[str] | None = None,
        head: Mapping | None = None,
        condition_dsp: nn.Module | None = None,
    ):
        super().__init__()
        if not layers:
            raise ValueError("a WaveNet needs at least one layer array")
        layers = [dict(cfg) for cfg in layers]
        if condition_dsp is not None and params:
            raise ValueError("a WaveNet with a condition_dsp takes no knobs")
        self.params = knob_names(params, layers[0].get("condition_size", 1), "condition_size")
        if condition_dsp is not None:
            self.params = []
        elif params:
            for cfg in layers:
                knob_names(params, cfg.get("condition_size", 1), "condition_size")
                cfg["condition_size"] = 1 + len(self.params)
        arrays = [LayerArray(**cfg) for cfg in layers]
        for i in range(1, len(arrays)):
            prev, cur = arrays[i - 1], arrays[i]
            if cur.input_size != prev.channels:
                raise ValueError(
                    f"layer array {i} input_size={cur.input_size} must equal array {i - 1} channels={prev.channels}"
                )
            if cur.channels != prev.head_size:
                raise ValueError(
                    f"layer array {i} channels={cur.channels} must equal array {i - 1} head_size={prev.head_size}"
                )
            if cur.head_in != prev.head_size:
                raise ValueError(
                    f"layer array {i} sums {cur.head_in} head channels onto array {i - 1}'s "
                    f"{prev.head_size}; they must agree"
                )
            if cur.condition_size != arrays[0].condition_size:
                raise ValueError("every layer array must have the same condition_size")
        self.condition_dsp = condition_dsp
        if condition_dsp is not None:
            if condition_dsp.output_channels != arrays[0].condition_size:
                raise ValueError(
                    f"the condition_dsp gives {condition_dsp.output_channels} channels but the "
                    f"layer arrays take condition_size={arrays[0].condition_size}"
                )
        elif arrays[0].input_size > arrays[0].condition_size:
            raise ValueError("the first array's input_size cannot exceed condition_size")
        self.layer_arrays = nn.ModuleList(arrays)
        self.post_head = PostHead(arrays[-1].head_size, **plain(head)) if head else None
        self.head_scale = float(head_scale)

    @property
    def receptive_field(self) -> int:
        """Number of input samples that output sample ``t`` depends on (``t`` included)."""
        rf = 1 + sum(a.receptive_field - 1 for a in self.layer_arrays)
        if self.post_head is not None:
            rf += self.post_head.receptive_field - 1
        if self.condition_dsp is not None:
            rf += self.condition_dsp.receptive_field - 1
        return rf

    @property
    def history(self) -> int:
        """Input samples a training window needs before its first target sample."""
        return self.receptive_field - 1 + self.burn_in

    @property
    def input_channels(self) -> int:
        """Channels the model reads: audio first, then any conditioning (knob) channels."""
        if self.condition_dsp is not None:
            return self.condition_dsp.input_channels
        return self.layer_arrays[0].condition_size

    @property
    def finite_memory(self) -> bool:
        """True when nothing older than the receptive field matters (no recurrent part)."""
        return self.condition_dsp is None or self.condition_dsp.finite_memory

    @property
    def output_channels(self) -> int:
        if self.post_head is not None:
            return self.post_head.spec["out_channels"]
        return self.layer_arrays[-1].head_size

    @property
    def classic(self) -> bool:
        """True when NAM's classic (0.5) schema describes the model exactly."""
        return (
            all(a.classic for a in self.layer_arrays)
            and self.post_head is None
            and self.condition_dsp is None
        )

    def config(self) -> dict:
        """Constructor arguments, with ``_target_``: ``build_model(model.config())`` rebuilds it."""
        config = {
            "_target_": "ampnet.models.WaveNet",
            "layers": [a.config() for a in self.layer_arrays],
            "head_scale": self.head_scale,
        }
        if self.params:
            config["params"] = list(self.params)
        if self.post_head is not None:
            config["head"] = copy.deepcopy(self.post_head.spec)
        if self.condition_dsp is not None:
            config["condition_dsp"] = self.condition_dsp.config()
        return config

    def forward(
        self,
        x: torch.Tensor,
        pad_start: bool = False,
        state: list | None = None,
    ) -> torch.Tensor:
        """x: (batch, input_channels, time) -> (batch, out, time - receptive_field + 1).

        With ``pad_start`` the input is preceded by silence (knobs held at their first
        value), so the output has the input's length (what a player hears when the file
        starts from silence). With a ``state`` from :meth:`initial_state` the output also
        has the input's length and continues the previous call's: block-by-block
        streaming (the state is updated in place).
        """
        if pad_start and state is None:
            if self.condition_dsp is not None:  # a recurrent one settles its own way
                return self(x, state=self.initial_state(x.shape[0]))
            # NAM's receptive field adds up every array's history; when a later array's own
            # history is longer than a head kernel's, the valid output is longer: trim it
            return self(pad_silence(x, self.receptive_field - 1))[..., -x.shape[-1] :]
        if self.condition_dsp is None:
            c = x
        elif state is None:
            c = self.condition_dsp(x)
            x = x[..., -c.shape[-1] :]
        else:
            c, state[-1] = self.condition_dsp.forward_with_state(x, state[-1])
        y = x[:, : self.layer_arrays[0].input_size]
        head, at = None, 0
        for array in self.layer_arrays:
            count = array.n_histories
            own = None if state is None else state[at : at + count]
            y, head = array(y, c, head, own)
            if state is not None:
                state[at : at + count] = own
            at += count
        w = self.head_scale * head
        if self.post_head is not None:
            own = None if state is None else state[at : at + len(self.post_head.convs)]
            w = self.post_head(w, own)
            if state is not None:
                state[at : at + len(self.post_head.convs)] = own
        return w

    def forward_with_state(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """The streaming step every model offers: ``(y, state)`` for a block ``x``."""
        return self(x, state=state), state

    def fold_input_gain(self, gain: float) -> WaveNet:
        """A copy that takes the raw audio where this one takes ``gain`` times it: the gain
        moves into the weights that first touch the audio (exact: the re-channel and the
        input mixers are linear and have no bias)."""
        if self.condition_dsp is not None or any(
            a.films["input_mixin_pre_film"] for a in self.layer_arrays
        ):
            raise ValueError("its condition path is not linear in the audio")
        model = copy.deepcopy(self)
        with torch.no_grad():
            model.layer_arrays[0].rechannel.weight[:, 0] *= gain
            for array in model.layer_arrays:
                for layer in array.layers:
                    layer.input_mixer.weight[:, 0] *= gain
                    for film in layer.films.values():
                        film.conv.weight[:, 0] *= gain
        return model

    def slim(self, size: float) -> WaveNet:
        """The model a slimmable WaveNet plays at ``size`` (0 to 1): each slimmable array
        keeps ``allowed_channels[min(floor(size * n), n - 1)]`` channels and every weight
        its leading rows and columns, as NAM's engine does. Not slimmable: the model itself."""
        targets = []
        for a in self.layer_arrays:
            allowed = ((a.slimmable or {}).get("kwargs") or {}).get("allowed_channels")
            if a.slimmable and not allowed:
                allowed = list(range(1, a.channels + 1))
            targets.append(
                a.channels
                if not a.slimmable
                else allowed[min(math.floor(size * len(allowed)), len(allowed) - 1)]
            )
        if targets == [a.channels for a in self.layer_arrays]:
            return self
        for a, target in zip(self.layer_arrays, targets, strict=True):
            if target != a.channels and (
                a.head["kernel_size"] != 1 or a.groups_input != 1 or a.groups_input_mixin != 1
                or a.layer1x1["groups"] != 1 or a.head1x1["groups"] != 1
                or any(f and f["groups"] != 1 for f in a.films.values())
            ):  # fmt: skip
                raise ValueError("a slimmed array needs a head kernel of 1 and no groups")
        if self.post_head is not None:
            raise ValueError("a slimmable WaveNet cannot have a top-level head")
        configs = []
        for i, a in enumerate(self.layer_arrays):
            cfg = a.config()
            cfg = {**cfg, "channels": targets[i]}
            if a.layer1x1["active"]:
                cfg["bottleneck"] = max(1, a.bottleneck * targets[i] // a.channels)
            else:
                cfg["bottleneck"] = targets[i]
            if i > 0:
                cfg["input_size"] = targets[i - 1]
            if i + 1 < len(self.layer_arrays):
                head = dict(cfg.get("head") or {"kernel_size": 1, "bias": cfg.pop("head_bias")})
                cfg.pop("head_size", None)
                cfg["head"] = {**head, "out_channels": targets[i + 1]}
            configs.append(cfg)
        slim = WaveNet(configs, self.head_scale, condition_dsp=copy.deepcopy(self.condition_dsp))
        full = self.state_dict()
        with torch.no_grad():
            for name, tensor in slim.state_dict().items():
                tensor.copy_(full[name][tuple(slice(0, s) for s in tensor.shape)])
        return slim.eval()

    @torch.no_grad()
    def initial_state(self, batch: int = 1, knobs: torch.Tensor | None = None) -> list:
        """Every causal convolution's past input as it is after silence, knobs held at
        ``knobs`` (batch, n_knobs; zeros if None), and a condition_dsp's own state last.

        Layers have biases, so a silent input does not leave zeros in them; running
        ``receptive_field - 1`` samples of silence from zeroed histories settles them
        exactly (a WaveNet remembers nothing older).
        """
        ref = next(self.parameters())
        state: list = [h for a in self.layer_arrays for h in a.histories(batch, ref)]
        if self.post_head is not None:
            state += self.post_head.histories(batch, ref)
        if self.condition_dsp is not None:
            state.append(self.condition_dsp.initial_state(batch))
        if knobs is None:
            knobs = ref.new_zeros(batch, self.input_channels - 1)
        own = self.receptive_field - (
            self.condition_dsp.receptive_field - 1 if self.condition_dsp is not None else 0
        )
        self(silence(knobs.to(ref), own - 1), state=state)
        return state
