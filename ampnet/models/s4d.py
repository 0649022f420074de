"""S4D amp model: a stack of diagonal state-space layers (Gu, Gupta, Goel & Ré 2022, "On the
Parameterization and Initialization of Diagonal State Space Models").

``y = out(blocks(inp(x))) (+ x)``, each block ``u <- u + mix(tanh(ssm(u)))``, with ``inp``,
``mix`` and ``out`` pointwise linear maps. The SSM runs each of ``hidden_size`` channels
through its own linear system of ``state_size / 2`` complex modes (their conjugates are
the other half of the state, which ``2 Re`` accounts for), discretised by zero-order hold::

    x_k = Abar x_{k-1} + Bbar u_k,   y_k = 2 Re(C x_k) + D u_k,
    Abar = exp(dt A),   Bbar = (Abar - 1) / A * B,   A = -exp(log_a_real) + i a_imag.

The input reaches the state before the output is read (S4's convention), so no block
adds a delay. The nonlinearity is ``tanh``: an amp's own soft clipping is tanh-like; it
is odd, so the biases (which also set the silent state below) decide any asymmetry; and
it is bounded, so with stable modes (Re A < 0) every block stays bounded over hours of
audio whatever the mixes learn.

**One map, three ways to run it.**

- Training (:meth:`S4D.forward`): the SSM's impulse response ``K_l = 2 Re(C Abar^l Bbar)``
  for the window's length, exactly (a Vandermonde sum over the modes, :func:`mode_sum`),
  applied by FFT convolution zero-padded to twice the length, so nothing wraps around.
- Streaming (:meth:`S4D.forward_with_state`): the block goes through in chunks of
  :data:`CHUNK` samples, each one matrix product per channel,
  ``[u_chunk, x] @ [[Toeplitz(K), input -> state], [state -> output, Abar^n - 1]]``,
  which gives the chunk's output and the change of state. The tables are built in
  float64 and cached until a parameter changes. A traced export cannot loop a number of
  times that depends on the block, so it takes every chunk at once (the chunk-to-chunk
  powers of ``Abar^CHUNK`` as a lower-triangular matrix, whose memory grows as
  ``(n / CHUNK)^2``: keep exported blocks to some thousands of samples) and the samples
  left over from slices of the same tables. A state is real, ``(batch, hidden,
  state_size)``: the real parts, then the imaginary parts (ONNX has no complex numbers).
- Silence: with the knobs held, silence is a constant input to each block, and a
  diagonal SSM's fixed point for a constant ``u`` is ``x* = (1 - Abar)^-1 Bbar u = -B u / A``
  per mode, so :meth:`S4D.initial_state` computes the state after silence exactly, block
  by block. Training windows start from the zero state and mask their first ``burn_in``.

**Burn-in.** At initialisation (Re A = -1/2) a mode forgets as ``|Abar|^k = exp(-k dt / 2)``:
the slowest (``dt_min = 4e-3``) has a time constant of 500 samples (10 ms at 48 kHz), so
4096 samples of burn-in leave ``exp(-8.2) < 3e-4`` of the start transient. Training can
slow modes down; lower ``dt_min`` with a longer ``burn_in``.

Inside, signals are channels-first, ``(hidden, batch, time)``: a chunk is then one batched
matrix product over the channels, and a pointwise map one matrix product.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from .knobs import knob_names

CHUNK = 64  # streaming: samples per chunk (a chunk's matrix is CHUNK + state_size square)
INITS = ("lin", "inv")  # S4D-Lin and S4D-Inv, the paper's two initialisations of Im A

State = tuple[torch.Tensor, ...]  # one (batch, hidden, state_size) per block: real, then imag


class DiagonalSSM(nn.Module):
    """``channels`` independent single-input single-output diagonal SSMs (the S4D layer).

    Per channel: ``log_dt`` (the step size) and ``d`` (the skip); per mode ``log_a_real``,
    ``a_imag``, and ``b`` and ``c`` (complex, stored as (re, im) pairs).
    """

    def __init__(
        self,
        channels: int,
        state_size: int,
        init: str = "lin",
        dt_min: float = 4e-3,
        dt_max: float = 0.1,
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init={init!r}: use one of {INITS}")
        if state_size < 2 or state_size % 2:
            raise ValueError(f"state_size={state_size}: an even number (conjugate pairs), >= 2")
        self.channels, self.state_size, self.init = channels, state_size, init
        modes = state_size // 2
        n = torch.arange(modes, dtype=torch.float64)
        if init == "lin":  # S4D-Lin: A_n = -1/2 + i pi n
            imag = math.pi * n
        else:  # S4D-Inv: A_n = -1/2 + i N/pi (N / (2n + 1) - 1)
            imag = state_size / math.pi * (state_size / (2 * n + 1) - 1)
        low, high = math.log(dt_min), math.log(dt_max)
        self.log_dt = nn.Parameter(torch.rand(channels) * (high - low) + low)
        self.log_a_real = nn.Parameter(torch.full((channels, modes), math.log(0.5)))
        self.a_imag = nn.Parameter(imag.float().expand(channels, -1).clone())
        ones = torch.ones(channels, modes)
        self.b = nn.Parameter(torch.stack([ones, torch.zeros_like(ones)], -1))
        self.c = nn.Parameter(torch.randn(channels, modes, 2) * math.sqrt(0.5))
        self.d = nn.Parameter(torch.randn(channels))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, state_size={self.state_size}, init={self.init!r}"

    @property
    def modes(self) -> int:
        return self.state_size // 2

    def continuous(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``A``, ``B`` and ``C``, complex128 ``(channels, modes)``."""
        a = torch.complex(-torch.exp(self.log_a_real.double()), self.a_imag.double())
        return a, torch.view_as_complex(self.b.double()), torch.view_as_complex(self.c.double())

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``dt A``, ``Bbar`` and ``C``, complex128 ``(channels, modes)`` (zero-order hold)."""
        a, b, c = self.continuous()
        dta = a * torch.exp(self.log_dt.double())[:, None]
        re, im = dta.real, dta.imag  # exp(dt A) - 1, without cancellation for small dt A:
        change = torch.complex(
            torch.expm1(re) * torch.cos(im) - 2 * torch.sin(im / 2) ** 2,
            torch.exp(re) * torch.sin(im),
        )
        return dta, change / a * b, c

    def convolve(self, u: torch.Tensor, x0: torch.Tensor | None = None) -> torch.Tensor:
        """The SSM over ``u`` (channels, batch, time) by FFT convolution with its impulse
        response, from the zero state or from ``x0`` (channels, batch, state_size)."""
        dta, bbar, c = self.discrete()
        cdtype = torch.complex128 if u.dtype == torch.float64 else torch.complex64
        dta, length = dta.to(cdtype), u.shape[-1]
        taps = mode_sum((c * bbar).to(cdtype)[:, None], dta, length)  # (channels, 1, time)
        size = 1 << (2 * length - 1).bit_length()  # >= 2 * length: no circular wrap
        y = torch.fft.irfft(torch.fft.rfft(u, size) * torch.fft.rfft(taps, size), size)
        y = y[..., :length] + self.d[:, None, None] * u
        if x0 is not None:  # the start state's own response: 2 Re(C Abar^(l+1) x0)
            x0 = torch.complex(x0[..., : self.modes], x0[..., self.modes :]).to(cdtype)
            y = y + mode_sum(c.to(cdtype)[:, None] * torch.exp(dta)[:, None] * x0, dta, length)
        return y

    @torch.no_grad()
    def fixed_point(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The state a constant input ``u`` (channels, batch) holds still, (channels, batch,
        state_size), and the output there, (channels, batch)."""
        a, b, c = self.continuous()
        x = (-b / a)[:, None] * u.double()[..., None]  # (1 - Abar)^-1 Bbar u
        y = 2 * (c[:, None] * x).sum(-1).real + self.d.double()[:, None] * u.double()
        return torch.cat([x.real, x.imag], -1).to(u.dtype), y.to(u.dtype)


def mode_sum(weights: torch.Tensor, dta: torch.Tensor, length: int) -> torch.Tensor:
    """``2 Re(sum_m weights_m exp(l dtA_m))`` for ``l`` in ``[0, length)``: weights
    (channels, batch, modes), dta (channels, modes) -> (channels, batch, length).

    The powers split as ``exp((q CHUNK + s) dtA) = exp(q CHUNK dtA) exp(s dtA)``, so the
    (channels, modes, length) Vandermonde matrix is never built.
    """
    real = dta.real.dtype
    within = torch.exp(dta[..., None] * torch.arange(CHUNK, device=dta.device, dtype=real))
    starts = torch.arange(-(-length // CHUNK), device=dta.device, dtype=real) * CHUNK
    across = torch.exp(dta[..., None] * starts)
    out = torch.einsum("hbm,hmq,hms->hbqs", weights, across, within)
    return 2 * out.real.flatten(-2)[..., :length]


class _Tables:
    """One SSM's streaming tables for chunks of up to ``T = CHUNK`` samples, built in
    float64 and kept in the parameters' dtype; states are packed (re, im), ``2M`` wide."""

    def __init__(self, ssm: DiagonalSSM):
        dta, bbar, c = ssm.discrete()
        dtype, t = ssm.log_dt.dtype, CHUNK
        steps = torch.arange(t + 1, device=dta.device)
        powers = torch.exp(dta[..., None] * steps)  # Abar^r, r = 0 .. T: (H, M, T + 1)
        taps = 2 * torch.einsum("hm,hmj->hj", c * bbar, powers[..., :t]).real
        taps[:, 0] += ssm.d.double()
        lag = steps[None, :t] - steps[:t, None]  # [input i, output k] = k - i
        toeplitz = torch.where(lag >= 0, taps[:, lag.clamp(min=0)], 0.0)
        read = 2 * c[..., None] * powers[..., 1:]  # state -> output k: 2 C Abar^(k+1)
        write = bbar[..., None] * powers[..., :t].flip(-1)  # input j -> end: Abar^(T-1-j) Bbar
        self.toeplitz = toeplitz.to(dtype)  # (H, T, T)
        self.read = torch.cat([read.real, -read.imag], 1).to(dtype)  # (H, 2M, T)
        self.write = torch.cat([write.real, write.imag], 1).transpose(1, 2).to(dtype)  # (H, T, 2M)
        # Abar^r - 1 rather than Abar^r: a slow mode's Abar rounds close to 1 in float32
        # and x + (Abar - 1) x keeps the fixed point where x = Abar x would drift off it
        self.drift = torch.cat([(powers - 1).real, powers.imag], 1).to(dtype)  # (H, 2M, T + 1)
        self.log_chunk = torch.cat([t * dta.real, t * dta.imag], 1).to(dtype)  # log Abar^T
        self.modes = ssm.modes
        self._steps: dict[int, torch.Tensor] = {}

    def step(self, n: int) -> torch.Tensor:
        """``[u (n), x (2M)] @ step = [y (n), x_new - x (2M)]``: (H, n + 2M, n + 2M)."""
        if n not in self._steps:
            with torch.inference_mode(False):  # kept: plain tensors, as the tables are
                self._steps[n] = self._step(n)
        return self._steps[n]

    def _step(self, n: int) -> torch.Tensor:
        m = self.modes
        q = self.drift[..., n]
        re, im = torch.diag_embed(q[:, :m]), torch.diag_embed(q[:, m:])
        drift = torch.cat([torch.cat([re, im], 2), torch.cat([-im, re], 2)], 1)
        top = torch.cat([self.toeplitz[:, :n, :n], self.write[:, CHUNK - n :]], 2)
        return torch.cat([top, torch.cat([self.read[..., :n], drift], 2)], 1)

    def run(self, u: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The SSM over ``u`` (channels, batch, n) from state ``x`` (channels, batch, 2M)
        -> (output, new state), chunk by chunk."""
        if torch.jit.is_tracing():
            return self.run_traced(u, x)
        outputs = []
        for start in range(0, u.shape[-1], CHUNK):
            chunk = u[..., start : start + CHUNK]
            n = chunk.shape[-1]
            out = torch.bmm(torch.cat([chunk, x], -1), self.step(n))
            outputs.append(out[..., :n])
            x = x + out[..., n:]
        return (outputs[0] if len(outputs) == 1 else torch.cat(outputs, -1)), x

    def run_traced(self, u: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What :meth:`run` does, with no loop whose length depends on the block: every
        full chunk at once, then the rest. For traced (exported) steps."""
        channels, batch, n = u.shape
        t, m = CHUNK, self.modes
        full = n // t
        rest = n - full * t
        chunks = u[..., : full * t].reshape(channels, batch, full, t)
        local = torch.einsum("hbct,hts->hbcs", chunks, self.toeplitz)
        ends = torch.einsum("hbct,htm->hbcm", chunks, self.write)  # each chunk's, from zero
        # the states before each chunk and after the last: x_c = sum_{j<=c} a^(c-j) s_j with
        # a = Abar^T and s = [x, ends], as lower-triangular powers of a, per mode
        s = torch.cat([x[:, :, None], ends], 2).reshape(channels, batch, full + 1, 2, m)
        index = torch.arange(full + 1, device=u.device)
        lag = index[:, None] - index[None, :]
        keep = (lag >= 0).to(u.dtype)
        lag = lag.clamp(min=0).to(u.dtype)
        log_re, log_im = self.log_chunk[:, :m, None, None], self.log_chunk[:, m:, None, None]
        size = torch.exp(lag * log_re) * keep  # (H, M, chunks + 1, chunks + 1)
        re, im = size * torch.cos(lag * log_im), size * torch.sin(lag * log_im)
        powers = torch.stack([torch.stack([re, -im], -1), torch.stack([im, re], -1)], -2)
        states = torch.einsum("hmcjpq,hbjqm->hbcpm", powers, s).flatten(-2)
        y = local + torch.einsum("hbcm,hmt->hbct", states[:, :, :full], self.read)
        x = states[:, :, full]
        tail = u[..., full * t :]
        y_tail = torch.bmm(tail, self.toeplitz[:, :rest, :rest])
        y_tail = y_tail + torch.bmm(x, self.read[..., :rest])
        q = self.drift[:, None, :, rest]
        xr, xi, qr, qi = x[..., :m], x[..., m:], q[..., :m], q[..., m:]
        x = x + torch.cat([xr * qr - xi * qi, xr * qi + xi * qr], -1)
        x = x + torch.bmm(tail, self.write[:, t - rest :])
        return torch.cat([y.reshape(channels, batch, full * t), y_tail], -1), x


def pointwise(weight: torch.Tensor, bias: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``weight @ u + bias`` over the channels of ``u`` (channels, batch, time), with
    ``bias`` a column (channels, 1): one matrix product."""
    flat = torch.addmm(bias, weight, u.reshape(u.shape[0], -1))
    return flat.view(-1, *u.shape[1:])


def columns(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear layer as :func:`pointwise` takes it: (weight, bias column)."""
    return layer.weight, layer.bias[:, None]


class S4D(nn.Module):
    """Diagonal state-space model: ``(batch, input_size, time) -> (batch, 1, time)``.

    Channel 0 is the audio, further channels are knob values (``input_size = 1 +
    len(params)``; it may also count the audio only). ``hidden_size`` channels run
    through ``num_layers`` blocks, each an SSM with ``state_size`` (N) states per channel
    (N / 2 complex modes; ``init`` S4D-Lin or S4D-Inv, step sizes log-uniform in
    ``[dt_min, dt_max]``), tanh and a channel mix. With ``input_skip`` the audio is added
    to the output.
    """

    receptive_field = 1
    finite_memory = False  # its state depends on everything it has heard
    target = "ampnet.models.S4D"

    def __init__(
        self,
        input_size: int = 1,
        hidden_size: int = 16,
        state_size: int = 16,
        num_layers: int = 2,
        init: str = "lin",
        dt_min: float = 4e-3,
        dt_max: float = 0.1,
        input_skip: bool = True,
        burn_in: int = 4096,
        params: Sequence[str] | None = None,
    ):
        super().__init__()
        self.params = knob_names(params, input_size, "input_size")
        self.input_size = 1 + len(self.params)
        self.hidden_size, self.state_size, self.num_layers = hidden_size, state_size, num_layers
        self.init, self.dt_min, self.dt_max = init, float(dt_min), float(dt_max)
        self.input_skip = input_skip
        self.burn_in = int(burn_in)
        self.inp = nn.Linear(self.input_size, hidden_size)
        self.ssms = nn.ModuleList(
            DiagonalSSM(hidden_size, state_size, init, dt_min, dt_max) for _ in range(num_layers)
        )
        self.mixes = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(num_layers))
        self.out = nn.Linear(hidden_size, 1)
        # start as the input skip (or silence): a random head would add a DC offset (the
        # biases' silent state) that dominates the first steps' loss
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self._streaming: tuple[tuple, list] | None = None  # (parameter versions, parts)

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

    def config(self) -> dict:
        """Constructor arguments, with ``_target_``: ``build_model(model.config())`` rebuilds it."""
        config = {
            "_target_": self.target,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "state_size": self.state_size,
            "num_layers": self.num_layers,
            "init": self.init,
            "dt_min": self.dt_min,
            "dt_max": self.dt_max,
            "input_skip": self.input_skip,
            "burn_in": self.burn_in,
        }
        if self.params:
            config["params"] = list(self.params)
        return config

    def fold_input_gain(self, gain: float) -> S4D:
        """A copy that takes the raw audio where this one takes ``gain`` times it (the gain
        moves into the input projection); ``ValueError`` with an input skip, which bypasses it."""
        if self.input_skip:
            raise ValueError("its input skip bypasses the weights")
        model = copy.deepcopy(self)
        with torch.no_grad():
            model.inp.weight[:, 0] *= gain
        return model

    def start_state(self, batch: int = 1) -> State:
        """The zero state, where training windows start: one (batch, hidden, state_size) per block."""
        zeros = self.inp.weight.new_zeros(batch, self.hidden_size, self.state_size)
        return tuple(zeros.clone() for _ in self.ssms)

    @torch.no_grad()
    def initial_state(self, batch: int = 1, knobs: torch.Tensor | None = None) -> State:
        """The state after silence, knobs held at ``knobs`` (batch, n_knobs; zeros if None):
        each block's fixed point under its constant input (module docstring).

        Also readies the streaming tables, so that a step traced after it (an export)
        holds them as constants rather than the arithmetic that builds them.
        """
        self.streaming_parts()
        weight, bias = self.inp.weight, self.inp.bias
        if knobs is None:
            knobs = weight.new_zeros(batch, self.input_size - 1)
        u = weight[:, 1:] @ knobs.to(weight).T + bias[:, None]  # (hidden, batch): audio 0
        states = []
        for ssm, mix in zip(self.ssms, self.mixes, strict=True):
            x, y = ssm.fixed_point(u)
            states.append(x.transpose(0, 1))
            u = u + mix.weight @ torch.tanh(y) + mix.bias[:, None]
        return tuple(states)

    def streaming_parts(self) -> list:
        """What a streamed block uses: ``[inp, (tables, mix) per block, out]``, each map as
        :func:`columns`. Cached while no parameter changes and no gradient is wanted (a
        64-sample block is a few dozen small operations, so their setup would show)."""
        params = list(self.parameters())
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return self._build_streaming_parts()
        key = (*[p._version for p in params], *[p.data_ptr() for p in params], params[0].dtype)
        if self._streaming is None or self._streaming[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # plain tensors, fit for tracing
                self._streaming = (key, self._build_streaming_parts(detach=True))
        return self._streaming[1]

    def _build_streaming_parts(self, detach: bool = False) -> list:
        def maps(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
            return tuple(t.detach() for t in columns(layer)) if detach else columns(layer)

        pairs = zip(self.ssms, self.mixes, strict=True)
        blocks = [(_Tables(ssm), *maps(mix)) for ssm, mix in pairs]
        return [maps(self.inp), blocks, maps(self.out)]

    def _output(self, out: tuple, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The head: ``u`` (hidden, batch, time) -> (batch, 1, time), plus the skip."""
        y = pointwise(*out, u).transpose(0, 1)
        return y + x[:, :1] if self.input_skip else y

    def forward_with_state(
        self, x: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """x: (batch, input_size, n), a state from :meth:`initial_state` -> (y, new state);
        without ``state`` the run starts from the zero state."""
        if state is None:
            state = self.start_state(x.shape[0])
        inp, blocks, out = self.streaming_parts()
        u = pointwise(*inp, x.transpose(0, 1))
        after = []
        for (tables, weight, bias), s in zip(blocks, state, strict=True):
            y, s = tables.run(u, s.transpose(0, 1))
            u = u + pointwise(weight, bias, torch.tanh(y))
            after.append(s.transpose(0, 1))
        return self._output(out, u, x), tuple(after)

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        """x: (batch, input_size, time) -> (batch, 1, time), by FFT convolution.

        With ``pad_start`` the input is preceded by silence, knobs held at their first
        value: the run starts from :meth:`initial_state`, as a player's does. Without it,
        from the zero state (training windows, whose first ``burn_in`` samples the loss
        ignores). The output always has the input's length.
        """
        state = self.initial_state(x.shape[0], x[:, 1:, 0]) if pad_start else None
        u = pointwise(*columns(self.inp), x.transpose(0, 1))
        for i, (ssm, mix) in enumerate(zip(self.ssms, self.mixes, strict=True)):
            x0 = None if state is None else state[i].transpose(0, 1)
            u = u + pointwise(*columns(mix), torch.tanh(ssm.convolve(u, x0)))
        return self._output(columns(self.out), u, x)
