"""Strictly causal WaveNet with NAM's layer structure.

The network is a chain of *layer arrays*. Each array re-channels its input, runs a
stack of dilated-convolution layers and sums one head term per layer; the head sum
of one array is the head input of the next; the last array's head output, times
``head_scale``, is the model's output. Each layer:

    z = conv_dilated(x) + input_mixer(c)        (c: the model input, the conditioning)
    h = act(z)            or tanh(z_a) * sigmoid(z_b) when gated
    x = x + layer1x1(h)   (residual)            head += h

Convolutions are *valid* (no padding), so an input of ``receptive_field + n - 1``
samples gives ``n`` output samples and sample ``t`` of the output depends only on
inputs up to ``t``. The module and parameter layout mirrors NAM's WaveNet (classic
"A1" schema) so trained weights repack into a ``.nam`` file one-to-one.

Knobs (``params``) are extra conditioning channels: each layer's input mixer sees
the audio and every knob value, so a knob moves every layer's pre-activation (a
per-layer bias that follows the knob). Without knobs nothing changes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .knobs import knob_names, pad_silence, silence

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "Tanh": nn.Tanh,
    "Hardtanh": nn.Hardtanh,
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
    "Sigmoid": nn.Sigmoid,
    "SiLU": nn.SiLU,
    "Hardswish": nn.Hardswish,
    "Softsign": nn.Softsign,
}


def make_activation(name: str) -> nn.Module:
    """The activation module for a NAM activation name such as ``"Tanh"``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class WaveNetLayer(nn.Module):
    """One dilated layer: ``(x, c) -> (x + 1x1(h), h)`` with ``h`` the activation output."""

    def __init__(
        self,
        channels: int,
        condition_size: int,
        kernel_size: int,
        dilation: int,
        activation: str,
        gated: bool,
    ):
        super().__init__()
        mid = 2 * channels if gated else channels
        self.channels = channels
        self.gated = gated
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.conv = nn.Conv1d(channels, mid, kernel_size, dilation=dilation)
        self.input_mixer = nn.Conv1d(condition_size, mid, 1, bias=False)
        self.activation = make_activation(activation)
        self.layer1x1 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, channels, time), c: (batch, condition_size, >= time) -> both (batch, channels, time - (k-1)*d)."""
        z = self.conv(x)
        n = z.shape[-1]
        z = z + self.input_mixer(c[..., -n:])
        if self.gated:
            h = self.activation(z[:, : self.channels]) * torch.sigmoid(z[:, self.channels :])
        else:
            h = self.activation(z)
        return x[..., -n:] + self.layer1x1(h), h


class LayerArray(nn.Module):
    """A re-channel, a stack of :class:`WaveNetLayer` and a head re-channel."""

    def __init__(
        self,
        input_size: int,
        condition_size: int,
        head_size: int,
        channels: int,
        kernel_size: int,
        dilations: Sequence[int],
        activation: str = "Tanh",
        gated: bool = False,
        head_bias: bool = True,
    ):
        super().__init__()
        self.input_size = input_size
        self.condition_size = condition_size
        self.head_size = head_size
        self.channels = channels
        self.kernel_size = kernel_size
        self.dilations = [int(d) for d in dilations]
        self.activation = activation
        self.gated = gated
        self.head_bias = head_bias
        self.rechannel = nn.Conv1d(input_size, channels, 1, bias=False)
        self.layers = nn.ModuleList(
            WaveNetLayer(channels, condition_size, kernel_size, d, activation, gated)
            for d in self.dilations
        )
        self.head_rechannel = nn.Conv1d(channels, head_size, 1, bias=head_bias)

    @property
    def receptive_field(self) -> int:
        return 1 + sum((self.kernel_size - 1) * d for d in self.dilations)

    def config(self) -> dict:
        """The keyword arguments that rebuild this array (NAM's classic layer keys)."""
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

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor,
        head: torch.Tensor | None,
        history: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, input_size, time) -> (layer output, head output), both (batch, *, time - rf + 1).

        With ``history`` (one ``(batch, channels, (k-1)*d)`` tensor per layer, updated in
        place) each layer first sees its own past input, so the output has x's length.
        """
        x = self.rechannel(x)
        for i, layer in enumerate(self.layers):
            if history is not None:
                keep = history[i].shape[-1]
                x = torch.cat([history[i], x], dim=-1)
                history[i] = x[..., -keep:] if keep else x[..., :0]
            x, h = layer(x, c)
            head = h if head is None else head[..., -h.shape[-1] :] + h
        return x, self.head_rechannel(head)


class WaveNet(nn.Module):
    """Causal WaveNet: ``(batch, channels, time) -> (batch, 1, time - receptive_field + 1)``.

    ``layers`` is a list of layer-array settings (NAM's classic keys: ``input_size,
    condition_size, head_size, channels, kernel_size, dilations, activation, gated,
    head_bias``). Input channel 0 is the audio; the first ``input_size`` channels
    feed the first array and all ``condition_size`` channels feed every input mixer.
    ``params`` names the knobs: each adds a conditioning channel to every array
    (``condition_size`` may count the audio only, or the audio and the knobs).
    """

    burn_in = 0  # samples of output to ignore in the loss (recurrent models need some)

    def __init__(
        self,
        layers: Sequence[Mapping],
        head_scale: float = 0.02,
        params: Sequence[str] | None = None,
    ):
        super().__init__()
        if not layers:
            raise ValueError("a WaveNet needs at least one layer array")
        layers = [dict(cfg) for cfg in layers]
        self.params = knob_names(params, layers[0].get("condition_size", 1), "condition_size")
        if params:
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
            if cur.condition_size != arrays[0].condition_size:
                raise ValueError("every layer array must have the same condition_size")
        if arrays[-1].head_size != 1:
            raise ValueError("the last layer array must have head_size=1 (one output channel)")
        if arrays[0].input_size > arrays[0].condition_size:
            raise ValueError("the first array's input_size cannot exceed condition_size")
        self.layer_arrays = nn.ModuleList(arrays)
        self.head_scale = float(head_scale)

    @property
    def receptive_field(self) -> int:
        """Number of input samples that output sample ``t`` depends on (``t`` included)."""
        return 1 + sum(a.receptive_field - 1 for a in self.layer_arrays)

    @property
    def history(self) -> int:
        """Input samples a training window needs before its first target sample."""
        return self.receptive_field - 1 + self.burn_in

    @property
    def input_channels(self) -> int:
        """Channels the model reads: audio first, then any conditioning (knob) channels."""
        return self.layer_arrays[0].condition_size

    def config(self) -> dict:
        """Constructor arguments, with ``_target_``: ``build_model(model.config())`` rebuilds it."""
        config = {
            "_target_": "ampnet.models.WaveNet",
            "layers": [a.config() for a in self.layer_arrays],
            "head_scale": self.head_scale,
        }
        if self.params:
            config["params"] = list(self.params)
        return config

    def forward(
        self,
        x: torch.Tensor,
        pad_start: bool = False,
        state: list[list[torch.Tensor]] | None = None,
    ) -> torch.Tensor:
        """x: (batch, input_channels, time) -> (batch, 1, time - receptive_field + 1).

        With ``pad_start`` the input is preceded by silence (knobs held at their first
        value), so the output has the input's length (what a player hears when the file
        starts from silence). With a ``state`` from :meth:`initial_state` the output also
        has the input's length and continues the previous call's: block-by-block
        streaming (the state is updated).
        """
        if pad_start:
            x = pad_silence(x, self.receptive_field - 1)
        c = x
        y = x[:, : self.layer_arrays[0].input_size]
        head = None
        for i, array in enumerate(self.layer_arrays):
            y, head = array(y, c, head, None if state is None else state[i])
        return self.head_scale * head

    def fold_input_gain(self, gain: float) -> WaveNet:
        """A copy that takes the raw audio where this one takes ``gain`` times it: the gain
        moves into the weights that first touch the audio (exact: the re-channel and the
        input mixers are linear and have no bias)."""
        model = copy.deepcopy(self)
        with torch.no_grad():
            model.layer_arrays[0].rechannel.weight[:, 0] *= gain
            for array in model.layer_arrays:
                for layer in array.layers:
                    layer.input_mixer.weight[:, 0] *= gain
        return model

    @torch.no_grad()
    def initial_state(
        self, batch: int = 1, knobs: torch.Tensor | None = None
    ) -> list[list[torch.Tensor]]:
        """Per-layer input histories as they are after silence, knobs held at ``knobs``
        (batch, n_knobs; zeros if None).

        Layers have biases, so a silent input does not leave zeros in them; running
        ``receptive_field - 1`` samples of silence from zeroed histories settles them
        exactly (a WaveNet remembers nothing older).
        """
        ref = next(self.parameters())
        state = [
            [ref.new_zeros(batch, a.channels, (a.kernel_size - 1) * d) for d in a.dilations]
            for a in self.layer_arrays
        ]
        if knobs is None:
            knobs = ref.new_zeros(batch, self.input_channels - 1)
        self(silence(knobs.to(ref), self.receptive_field - 1), state=state)
        return state
