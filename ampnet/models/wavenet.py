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
(:mod:`ampnet.formats.nam_weights`); the classic layout is one configuration of it. The
layers, FiLM and heads are in :mod:`ampnet.models.layer_array`.

Knobs (``params``) are extra conditioning channels: each layer's input mixer sees
the audio and every knob value, so a knob moves every layer's pre-activation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .knobs import knob_names, pad_silence, silence
from .layer_array import FILMS, LayerArray, PostHead, plain

__all__ = ["FILMS", "LayerArray", "PostHead", "WaveNet", "plain"]


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
