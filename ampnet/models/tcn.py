"""Causal convolutional amp models: a gated convolutional network (GCN) and a temporal
convolutional network (TCN), with knob FiLM and time-varying FiLM (TFiLM).

Both are a stack of dilated causal convolutions over the audio ``x_0`` (one channel); with
``z_l = conv_l(x_l)``:

    GCN (gated=True; Wright, Damskagg, Juvela & Valimaki 2020, "Real-time guitar amplifier
    emulation with deep learning"):
        a_l = tanh(z_f) * (1 + tanh(z_g))        (z_f, z_g: the two halves of z_l)
        x_{l+1} = x_l + R_l a_l                  (1x1 residual; x_0 enters as g_0 * x_0)
        y = mixer(a_0, ..., a_{L-1})             (a linear mix of every block's output)
    TCN (gated=False; Steinmetz & Reiss 2022 micro-TCN, Comunita et al. 2023):
        a_l = act(z_l)
        x_{l+1} = a_l + g_l * x_l                (a per-channel gain on the residual)
        y = w . x_L + b

The gate is Wright's tanh x sigmoid written as ``tanh(z_f) (1 + tanh(z_g)) = 2 tanh(z_f)
sigmoid(2 z_g)``: the same functions (the factors 2 live in the neighbouring weights) with one
elementwise operation fewer per block.

A block's activations ``a_l`` may be modulated, in this order:

- by the knobs (``params``) through FiLM: a small MLP maps the knob values, sample by sample,
  to every block's per-channel ``(scale, shift)``, ``a <- scale * a + shift``; a knob ramp
  is exact. Without knobs there is no FiLM.
- by TFiLM (Comunita, Steinmetz & Reiss, ICASSP 2023, "Modelling black-box audio effects
  with time-varying feature modulation") when ``tfilm_block = B``: ``|a|`` is max-pooled over
  blocks of B samples, a GRU runs over the pooled sequence and a linear map of its state gives
  ``(scale, shift)``. Block b is modulated by the state after blocks ``< b`` only (one block
  later than the paper, which looks ahead): strictly causal.

Every convolution is valid (no padding): without a state, ``time`` input samples give
``time - receptive_field + 1`` outputs; with one (:meth:`TCN.initial_state`), block-by-block
streaming, each convolution first reads its own past input. The TFiLM grid is shared by all
blocks: when streaming it starts at the first sample after the state from ``initial_state``
(the start of a file) and keeps the partial block's running peak, the position in the block
and the GRU state in the state, so any block sizes give the same output; a training window
anchors it at its first input sample and starts every GRU from zero.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation_spec, make_activation
from .conv import conv1d
from .knobs import check_names, pad_silence, silence
from .layer_array import per_layer, plain
from .recurrent import SETTLE, SETTLE_BLOCK, SETTLED

# TFiLM steps at the start of a training window whose output the loss ignores: the GRU
# starts from zero there, and a small GRU forgets its start within a few dozen steps
# (4096 samples, the recurrent models' burn-in, at blocks of 128).
BURN_IN_BLOCKS = 32


def _uniform(*shape: int, fan_in: int) -> nn.Parameter:
    """PyTorch's default initialisation of a convolution's weights and biases."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


def pointwise(weight: torch.Tensor, x: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as one batched matmul: ``weight`` (out, in) at every sample of ``x``
    (batch, in, time), plus ``add`` (a bias (out, 1) or a residual (batch, out or 1, time))."""
    return torch.baddbmm(add, weight.expand(x.shape[0], -1, -1), x)


def block_grid(
    pos: torch.Tensor, n: int, block: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the ``n`` samples of a chunk fall on the TFiLM grid of ``block``-sample blocks,
    the chunk starting ``pos`` (a (1,) long tensor) samples into the current block.

    Returns ``take``: for each slot of the chunk laid on whole blocks, its index into
    ``cat(peak, chunk)`` (0, the running peak, before the chunk; the chunk's last sample
    after it: repeats that max pooling ignores); ``block_of``: each sample's block, counted
    from the current one; ``last``: the block the chunk ends in. Tensor arithmetic only, so
    an exported step follows ``pos`` and ``n``.
    """
    blocks = (n + block - 1) // block + 1
    take = (torch.arange(blocks * block, device=pos.device) + (1 - pos)).clamp(0, n)
    block_of = torch.div(torch.arange(n, device=pos.device) + pos, block, rounding_mode="floor")
    return take, block_of, torch.div(pos + n, block, rounding_mode="floor")


class TFiLM(nn.Module):
    """Time-varying FiLM of one block's activations (module docstring): a GRU over their
    block-wise peaks gives each block's per-channel ``(scale, shift)``."""

    def __init__(self, channels: int, hidden: int, block: int):
        super().__init__()
        self.block = block
        self.rnn = nn.GRU(channels, hidden, batch_first=True)
        self.modulation = nn.Linear(hidden, 2 * channels)
        with torch.no_grad():  # start near the identity: scale 1, shift 0
            self.modulation.weight.mul_(0.1)
            self.modulation.bias.copy_(torch.cat([torch.ones(channels), torch.zeros(channels)]))

    def forward(
        self, a: torch.Tensor, grid: tuple, peak: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """a (batch, channels, n), ``grid`` from :func:`block_grid`, ``peak`` (batch, channels, 1)
        the current block's max ``|a|`` so far, ``hidden`` (1, batch, hidden) the GRU state
        after the blocks before it -> (modulated a, new peak, new hidden)."""
        take, block_of, last = grid
        b, c = a.shape[0], a.shape[1]
        peaks = torch.cat([peak, a], -1).gather(-1, take.expand(b, c, -1)).abs()
        peaks = peaks.view(b, c, -1, self.block).amax(-1)  # (batch, channels, blocks)
        rnn = self.rnn  # torch.gru: the GRU module's own kernel, without its per-call checks
        weights = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0]
        steps = peaks[..., :-1].transpose(1, 2)  # the last block is not complete before it is used
        after = torch.gru(steps, hidden, weights, True, 1, 0.0, False, False, True)[0]
        before = torch.cat([hidden.transpose(0, 1), after], 1)  # the state each block starts from
        modulation = F.linear(before, self.modulation.weight, self.modulation.bias)
        scale, shift = modulation.transpose(1, 2).index_select(-1, block_of).chunk(2, 1)
        # a chunk that ends on a boundary leaves a stale peak: the next block never reads it
        new_hidden = before.index_select(1, last).transpose(0, 1).contiguous()
        return torch.addcmul(shift, a, scale), peaks.index_select(-1, last), new_hidden


class KnobFiLM(nn.Module):
    """Knob values -> every block's ``(scale, shift)``, sample by sample (1x1, tanh, 1x1)."""

    def __init__(self, knobs: int, hidden: int, channels: int, blocks: int):
        super().__init__()
        self.blocks = blocks
        self.hidden_weight = _uniform(hidden, knobs, fan_in=knobs)
        self.hidden_bias = _uniform(hidden, 1, fan_in=knobs)
        self.weight = _uniform(2 * channels * blocks, hidden, fan_in=hidden)
        start = torch.cat([torch.ones(channels), torch.zeros(channels)]).repeat(blocks)
        self.bias = nn.Parameter(start[:, None])
        with torch.no_grad():  # start near the identity: scale 1, shift 0
            self.weight.mul_(0.1)

    def forward(self, knobs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """knobs (batch, n_knobs, time) -> (scale_0, shift_0, scale_1, ...), each (batch,
        channels, time)."""
        h = torch.tanh(pointwise(self.hidden_weight, knobs, self.hidden_bias))
        return pointwise(self.weight, h, self.bias).chunk(2 * self.blocks, 1)


class Block(nn.Module):
    """One dilated causal convolution with its residual weights and optional TFiLM.

    ``mix`` (channels, channels) is a GCN block's 1x1 residual (the last block has none);
    ``gain`` (channels, 1) scales the residual (every TCN block, the first GCN block).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int,
        mix: int | None,
        gain: int | None,
        tfilm: TFiLM | None,
    ):
        super().__init__()
        fan_in = in_channels * kernel_size
        self.in_channels, self.kernel_size, self.dilation = in_channels, kernel_size, dilation
        # weight[o, i * kernel_size + j]: input channel i, (kernel_size - 1 - j) * dilation ago
        self.weight = _uniform(out_channels, fan_in, fan_in=fan_in)
        self.bias = _uniform(out_channels, 1, fan_in=fan_in)
        self.mix = _uniform(mix, mix, fan_in=mix) if mix else None
        self.gain = nn.Parameter(torch.ones(gain, 1)) if gain else None
        self.tfilm = tfilm

    @property
    def history(self) -> int:
        """Past input samples the convolution reads."""
        return (self.kernel_size - 1) * self.dilation

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels} -> {self.weight.shape[0]}, kernel_size={self.kernel_size}, "
            f"dilation={self.dilation}"
        )

    def convolve(
        self, x: torch.Tensor, history: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (batch, in, time) -> (z, new history). Without ``history`` the convolution is
        valid (``self.history`` samples shorter); with it (batch, in, self.history) z has x's
        length and continues the previous call."""
        out, k, d = self.weight.shape[0], self.kernel_size, self.dilation
        if history is None:
            weight = self.weight.view(out, self.in_channels, k)
            return conv1d(x, weight, self.bias.view(out), d), None
        x = torch.cat([history, x], -1)
        b, c, t = x.shape
        n = t - self.history
        if torch.onnx.is_in_onnx_export():  # ONNX has no strided view
            z = F.conv1d(x, self.weight.view(out, c, k), self.bias.view(out), dilation=d)
        else:  # small blocks: a strided view of the taps and one matmul beat conv1d's setup
            taps = x.as_strided((b, c, k, n), (c * t, t, d, 1)).reshape(b, c * k, n)
            z = pointwise(self.weight, taps, self.bias)
        return z, x[..., n:]


class TCN(nn.Module):
    """Causal GCN (``gated=True``) or TCN: ``(batch, 1 + knobs, time) -> (batch, 1, time -
    receptive_field + 1)`` (module docstring).

    ``kernel_size`` is one size or one per block; ``activation`` is the TCN's (a NAM name,
    :mod:`ampnet.models.activations`); ``params`` names the knobs, mapped by a FiLM MLP of
    ``film_hidden`` units; ``tfilm_block`` (samples) turns TFiLM on with GRUs of
    ``tfilm_hidden`` units. ``burn_in`` (output samples a training window's loss ignores)
    defaults to 0, or ``BURN_IN_BLOCKS`` TFiLM blocks with TFiLM.
    """

    def __init__(
        self,
        channels: int = 16,
        kernel_size: int | Sequence[int] = 3,
        dilations: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128),
        gated: bool = False,
        activation="Tanh",
        params: Sequence[str] | None = None,
        film_hidden: int = 16,
        tfilm_block: int | None = None,
        tfilm_hidden: int = 8,
        burn_in: int | None = None,
    ):
        super().__init__()
        self.dilations = [int(d) for d in dilations]
        kernels = per_layer(plain(kernel_size), len(self.dilations), "kernel_size")
        self.kernel_sizes = [int(k) for k in kernels]
        if not self.dilations or min(self.dilations) < 1 or min(self.kernel_sizes) < 1:
            raise ValueError("a TCN needs at least one block, and dilations and kernel sizes >= 1")
        if gated and activation != "Tanh":
            raise ValueError("a gated (GCN) block is tanh x sigmoid; activation is the TCN's")
        if tfilm_block is not None and int(tfilm_block) < 1:
            raise ValueError(f"tfilm_block={tfilm_block}: a TFiLM block is at least 1 sample")
        self.channels, self.gated = int(channels), bool(gated)
        self.params = check_names(params)
        self.film_hidden, self.tfilm_hidden = int(film_hidden), int(tfilm_hidden)
        self.tfilm_block = int(tfilm_block) if tfilm_block else None
        if burn_in is None:
            burn_in = BURN_IN_BLOCKS * self.tfilm_block if self.tfilm_block else 0
        self.burn_in = int(burn_in)
        self.activation = None if self.gated else make_activation(plain(activation))
        c, n = self.channels, len(self.dilations)
        self.blocks = nn.ModuleList(
            Block(
                1 if i == 0 else c,
                2 * c if self.gated else c,
                k,
                d,
                mix=c if self.gated and i < n - 1 else None,
                gain=c if not self.gated or (i == 0 and n > 1) else None,
                tfilm=TFiLM(c, self.tfilm_hidden, self.tfilm_block) if self.tfilm_block else None,
            )
            for i, (k, d) in enumerate(zip(self.kernel_sizes, self.dilations, strict=True))
        )
        self.film = KnobFiLM(len(self.params), self.film_hidden, c, n) if self.params else None
        mixed = c * n if self.gated else c  # the GCN mixes every block, the TCN reads the last
        self.head = _uniform(1, mixed, fan_in=mixed)
        self.head_bias = _uniform(1, 1, fan_in=mixed)

    @property
    def receptive_field(self) -> int:
        """Number of input samples that output sample ``t`` depends on through the convolutions
        (``t`` included); TFiLM adds a memory beyond it."""
        return 1 + sum(b.history for b in self.blocks)

    @property
    def history(self) -> int:
        """Input samples a training window needs before its first target sample."""
        return self.receptive_field - 1 + self.burn_in

    @property
    def input_channels(self) -> int:
        return 1 + len(self.params)

    @property
    def output_channels(self) -> int:
        return 1

    @property
    def finite_memory(self) -> bool:
        """True without TFiLM: nothing older than the receptive field matters."""
        return self.tfilm_block is None

    def config(self) -> dict:
        """Constructor arguments, with ``_target_``: ``build_model(model.config())`` rebuilds it."""
        kernels = self.kernel_sizes
        config = {
            "_target_": "ampnet.models.TCN",
            "channels": self.channels,
            "kernel_size": kernels[0] if len(set(kernels)) == 1 else list(kernels),
            "dilations": list(self.dilations),
            "gated": self.gated,
            "activation": "Tanh" if self.gated else activation_spec(self.activation),
            "film_hidden": self.film_hidden,
            "tfilm_block": self.tfilm_block,
            "tfilm_hidden": self.tfilm_hidden,
            "burn_in": self.burn_in,
        }
        if self.params:
            config["params"] = list(self.params)
        return config

    def fold_input_gain(self, gain: float) -> TCN:
        """A copy that takes the raw audio where this one takes ``gain`` times it: the audio
        meets only the first convolution's weights and the first residual gain (exact)."""
        model = copy.deepcopy(self)
        with torch.no_grad():
            first = model.blocks[0]
            first.weight.mul_(gain)
            if first.gain is not None:
                first.gain.mul_(gain)
        return model

    @torch.no_grad()
    def as_wavenet(self):
        """A :class:`~ampnet.models.WaveNet` that computes what this network computes (so it
        streams on the WaveNet's native kernel and fits a ``.nam``), or None where the layer
        model cannot say it: knobs (an MLP FiLM), TFiLM, residual gains near zero.

        GCN block l is a gated WaveNet layer: ``tanh(z_f) (1 + tanh(z_g)) = 2 tanh(z_f)
        sigmoid(2 z_g)``, so the gate's rows are doubled and the 2 moves into the 1x1
        residual (``2 mix_l``) and the head1x1 (``2 head_l``, the mixer's slice for the
        block), whose sum is the mixer; its bias is the head's. The re-channel is the first
        residual gain, and the first convolution reads the one channel where that gain is
        largest, divided by it (exact up to rounding). For the TCN see :meth:`_tcn_as_wavenet`."""
        from .wavenet import WaveNet

        if self.params or self.tfilm_block:
            return None
        if not self.gated:
            return self._tcn_as_wavenet(WaveNet)
        c, first = self.channels, self.blocks[0]
        gain = first.gain.reshape(-1) if first.gain is not None else torch.ones(c)
        lead = int(gain.abs().argmax())
        if not torch.isfinite(gain).all() or float(gain[lead].abs()) < 1e-6:
            return None
        array = {
            "input_size": 1,
            "condition_size": 1,
            "channels": c,
            "bottleneck": c,
            "kernel_sizes": list(self.kernel_sizes),
            "dilations": list(self.dilations),
            "activation": "Tanh",
            "gating_mode": "gated",
            "secondary_activation": "Sigmoid",
            "head": {"out_channels": 1, "kernel_size": 1, "bias": True},
            "head1x1": {"active": True, "out_channels": 1, "groups": 1},
        }
        twin = WaveNet([array], head_scale=1.0).eval()
        (wn,) = twin.layer_arrays
        wn.rechannel.weight.copy_(gain.view(c, 1, 1))
        for i, (block, layer) in enumerate(zip(self.blocks, wn.layers, strict=True)):
            k = block.kernel_size
            weight = block.weight.view(2 * c, block.in_channels, k)
            if i == 0:  # reads gain * x: one channel of it, divided by its gain
                weight = torch.zeros(2 * c, c, k).index_copy_(
                    1, torch.tensor([lead]), weight / gain[lead]
                )
            bias = block.bias.reshape(-1).clone()
            weight = weight.clone()
            weight[c:] *= 2
            bias[c:] *= 2
            layer.conv.weight.copy_(weight)
            layer.conv.bias.copy_(bias)
            layer.input_mixer.weight.zero_()
            mix = block.mix if block.mix is not None else torch.zeros(c, c)
            layer.layer1x1.weight.copy_(2 * mix.view(c, c, 1))
            layer.layer1x1.bias.zero_()
            layer.head1x1.weight.copy_(2 * self.head[:, i * c : (i + 1) * c].view(1, c, 1))
            layer.head1x1.bias.zero_()
        wn.head_rechannel.weight.fill_(1.0)
        wn.head_rechannel.bias.copy_(self.head_bias.reshape(1))
        return twin

    def _tcn_as_wavenet(self, wavenet_class):
        """The TCN as a WaveNet (:meth:`as_wavenet`). With ``G_l`` block l's residual gain,
        ``x_{l+1} = a_l + G_l x_l`` unrolls to ``x_L = sum_l P_l a_l + P x_0`` (``P_l`` the
        product of the later gains), so the output ``w . x_L + b`` is a head1x1 of ``w P_l``
        on every block plus ``kappa x_0``, which a first layer of width 1 adds: its input
        mixer reads the audio, a LeakyReLU of slope 1 passes it on. The residual stream is
        kept as ``x_l = D_l x'_l`` (``D_l`` the gains of blocks 1 .. l-1, so the layer1x1 is
        ``1 / D_{l+1}`` and each convolution's weights take ``D_l``); None when a gain is
        within 1e-3 of zero."""
        c, n = self.channels, len(self.blocks)
        gains = [b.gain.reshape(-1) for b in self.blocks]
        if any(not torch.isfinite(g).all() or float(g.abs().min()) < 1e-3 for g in gains):
            return None
        w = self.head.reshape(-1)
        spec = activation_spec(self.activation)
        identity = {"type": "LeakyReLU", "negative_slope": 1.0}
        array = {
            "input_size": 1,
            "condition_size": 1,
            "channels": c,
            "bottleneck": c,
            "kernel_sizes": [1, *self.kernel_sizes],
            "dilations": [1, *self.dilations],
            "activation": [identity] + [spec] * n,
            "gating_mode": "none",
            "head": {"out_channels": 1, "kernel_size": 1, "bias": True},
            "head1x1": {"active": True, "out_channels": 1, "groups": 1},
        }
        twin = wavenet_class([array], head_scale=1.0).eval()
        (wn,) = twin.layer_arrays
        lead = int(gains[0].abs().argmax())
        wn.rechannel.weight.copy_(gains[0].view(c, 1, 1))
        later = [torch.ones(c) for _ in range(n)]  # P_l: the gains of blocks l+1 .. n-1
        for i in range(n - 2, -1, -1):
            later[i] = later[i + 1] * gains[i + 1]
        kappa = float((w * later[0] * gains[0]).sum())
        first = wn.layers[0]  # kappa * x_0 into the head, nothing into the stream
        for tensor in (first.conv.weight, first.conv.bias, first.layer1x1.weight):
            tensor.zero_()
        first.layer1x1.bias.zero_()
        first.input_mixer.weight[0, 0, 0] = kappa
        first.head1x1.weight.zero_()
        first.head1x1.weight[0, 0, 0] = 1.0
        first.head1x1.bias.zero_()
        scale = torch.ones(c)  # D_l
        for i, (block, layer) in enumerate(zip(self.blocks, wn.layers[1:], strict=True)):
            k = block.kernel_size
            weight = block.weight.view(c, block.in_channels, k)
            if i == 0:
                weight = torch.zeros(c, c, k).index_copy_(
                    1, torch.tensor([lead]), weight / gains[0][lead]
                )
            else:
                weight = weight * scale.view(1, c, 1)
            layer.conv.weight.copy_(weight)
            layer.conv.bias.copy_(block.bias.reshape(-1))
            layer.input_mixer.weight.zero_()
            after = torch.ones(c) if i == 0 else scale * gains[i]  # D_{i+1} = G_i D_i; D_1 = I
            layer.layer1x1.weight.copy_(torch.diag(1.0 / after).view(c, c, 1))
            layer.layer1x1.bias.zero_()
            scale = after
            layer.head1x1.weight.copy_((w * later[i]).view(1, c, 1))
            layer.head1x1.bias.zero_()
        wn.head_rechannel.weight.fill_(1.0)
        wn.head_rechannel.bias.copy_(self.head_bias.reshape(1))
        return twin

    def _run(self, x: torch.Tensor, state: list | None) -> tuple[torch.Tensor, list]:
        """The network over x (batch, 1 + knobs, time). Without a state: valid convolutions,
        every TFiLM from zero on the window's grid; with one (:meth:`initial_state`'s layout)
        the output has x's length and the new state comes back (the old one is not changed)."""
        n_blocks, streaming = len(self.blocks), state is not None
        films = self.film(x[:, 1:]) if self.film is not None else None
        h = x[:, :1]
        acts, new = [], [None] * (len(state) if streaming else 0)
        if streaming and self.tfilm_block:
            grid = block_grid(state[n_blocks].long(), x.shape[-1], self.tfilm_block)
            new[n_blocks] = torch.remainder(state[n_blocks] + x.shape[-1], self.tfilm_block)
        offset = 0  # without a state: how far this block's output starts into the window
        for i, block in enumerate(self.blocks):
            z, new_history = block.convolve(h, state[i] if streaming else None)
            if streaming:
                new[i] = new_history
            else:
                offset += block.history
                h = h[..., block.history :]
            if self.gated:
                f, g = torch.tanh(z).chunk(2, 1)
                a = torch.addcmul(f, f, g)
            else:
                a = self.activation(z)
            if films is not None:
                scale, shift = films[2 * i], films[2 * i + 1]
                if not streaming:
                    scale, shift = scale[..., offset:], shift[..., offset:]
                a = torch.addcmul(shift, a, scale)
            if block.tfilm is not None:
                peak_at, hidden_at = n_blocks + 1 + i, 2 * n_blocks + 1 + i
                if streaming:
                    a, new[peak_at], new[hidden_at] = block.tfilm(
                        a, grid, state[peak_at], state[hidden_at]
                    )
                else:
                    start = torch.full((1,), offset % self.tfilm_block, device=a.device)
                    grid_i = block_grid(start, a.shape[-1], self.tfilm_block)
                    zero_peak = a.new_zeros(a.shape[0], self.channels, 1)
                    zero_hidden = a.new_zeros(1, a.shape[0], self.tfilm_hidden)
                    a = block.tfilm(a, grid_i, zero_peak, zero_hidden)[0]
            if self.gated:
                acts.append(a)
                if block.mix is not None:
                    h = pointwise(block.mix, a, h if block.gain is None else block.gain * h)
            else:
                h = torch.addcmul(a, block.gain, h)
        if self.gated:
            if not streaming:  # every block's output, cut to the last block's samples
                acts = [a[..., a.shape[-1] - acts[-1].shape[-1] :] for a in acts]
            h = torch.cat(acts, 1)
        return pointwise(self.head, h, self.head_bias), new

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        """x: (batch, 1 + knobs, time) -> (batch, 1, time - receptive_field + 1).

        With ``pad_start`` silence (knobs held at their first value) precedes the input and
        the output has the input's length, as a player hears it: for a TFiLM model, whose
        memory has no end, the run starts from :meth:`initial_state`.
        """
        if pad_start:
            if not self.finite_memory:
                return self._run(x, self.initial_state(x.shape[0], x[:, 1:, 0]))[0]
            x = pad_silence(x, self.receptive_field - 1)
        return self._run(x, None)[0]

    def forward_with_state(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """The streaming step every model offers: ``(y, new state)`` for a block ``x``."""
        return self._run(x, state)

    @torch.no_grad()
    def initial_state(self, batch: int = 1, knobs: torch.Tensor | None = None) -> list:
        """The state after silence, knobs held at ``knobs`` (batch, n_knobs; zeros if None).

        A flat list: each block's convolution input history (batch, in, history); with TFiLM
        then the position in the current TFiLM block (1,), each block's running peak (batch,
        channels, 1) and each GRU state (1, batch, tfilm_hidden). Without TFiLM,
        ``receptive_field - 1`` samples of silence settle it exactly; with it, silence runs
        in whole TFiLM blocks (so a file starts on a block boundary) until the state stops
        moving, as a recurrent model settles (:mod:`ampnet.models.recurrent`).
        """
        ref = self.head
        state = [ref.new_zeros(batch, b.in_channels, b.history) for b in self.blocks]
        if self.tfilm_block:
            n = len(self.blocks)
            state += [ref.new_zeros(1)] + [ref.new_zeros(batch, self.channels, 1) for _ in range(n)]
            state += [ref.new_zeros(1, batch, self.tfilm_hidden) for _ in range(n)]
        knobs = ref.new_zeros(batch, len(self.params)) if knobs is None else knobs.to(ref)
        if self.finite_memory:
            if self.receptive_field == 1:
                return state
            return self._run(silence(knobs, self.receptive_field - 1), state)[1]
        block = self.tfilm_block
        step = block * math.ceil(max(SETTLE_BLOCK, self.receptive_field - 1) / block)
        quiet = silence(knobs, step)
        for _ in range(max(1, math.ceil(SETTLE / step))):
            _, after = self._run(quiet, state)
            pairs = zip(after, state, strict=True)
            moved = max(float((a - s).abs().max()) for a, s in pairs if a.numel())
            state = after
            if moved < SETTLED:
                break
        return state
