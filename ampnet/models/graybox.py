"""A gray-box amp model: a short chain of DSP blocks whose settings read back after training.

    x -> pre-EQ -> input gain -> static nonlinearity -> post-EQ -> [cabinet FIR] -> output gain

Each EQ (:mod:`ampnet.models.eq`) is a cascade of RBJ biquads (shelves, peaks, high/low
pass) whose frequency, gain and Q are trainable within sane ranges, run as a causal FIR
obtained by frequency sampling the cascade's response (the biquads' impulse response folded
modulo ``eq_taps``). So training (FFT convolution), offline processing and streaming (one
convolution per block over each FIR's input history) are the same finite-memory system,
and ``receptive_field = 2 * eq_taps + cab_taps - 2`` (without a cabinet ``2 * eq_taps - 1``),
exactly.

The nonlinearity is ``f(x) - f(0)`` (silence in, silence out; no DC at rest) with ``f`` a
small MLP 1 -> H -> H -> 1 or a rational function ``P(x) / (1 + |b_1 x + ... + b_n x^n|)``
(a safe Padé activation unit, Molina et al. 2020), started as tanh's [5/4] Padé approximant.
The output gain is a signed amplitude: its sign is the model's learned polarity.

Knobs (``params``): a tiny MLP maps the knob values, sample by sample, to offsets (dB) of
the input gain and of every EQ band's gain. A band's offset ``d`` acts as a parallel path,
``H * (1 + (10^(d/20) - 1) * S_b)`` with ``S_b`` the band's normalised 1 dB change, so the
offset is exact at the band's centre (a shelf's far end) and each path is one more FIR of
the EQ: time-varying knobs stay exact sample by sample, and streaming equals offline.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F
from torch import nn

from .eq import EQ
from .knobs import check_names, pad_silence
from .layer_array import plain

INPUT_GAIN_DB = 36.0  # the input gain within +-36 dB
KNOB_RANGE_DB = 24.0  # a knob moves a gain by at most +-24 dB
FFT_FROM = 256  # output samples from which a convolution runs by FFT (eager mode only)
TANH_PADE = ([0.0, 1.0, 0.0, 105 / 945, 0.0, 1 / 945], [1.0, 0.0, 420 / 945, 0.0, 15 / 945])

DEFAULT_PRE = [
    {"type": "low_shelf", "freq": 150.0, "q": 0.707},
    {"type": "peak", "freq": 700.0, "q": 0.7},
    {"type": "high_shelf", "freq": 3000.0, "q": 0.707},
]
DEFAULT_POST = [
    {"type": "highpass", "freq": 30.0, "q": 0.707},
    {"type": "low_shelf", "freq": 200.0, "q": 0.707},
    {"type": "peak", "freq": 1000.0, "q": 0.7},
    {"type": "peak", "freq": 3000.0, "q": 1.0},
    {"type": "high_shelf", "freq": 5000.0, "q": 0.707},
    {"type": "lowpass", "freq": 16000.0, "q": 0.707},
]


class MLPCurve(nn.Module):
    """A static curve ``y = f(x)`` per sample: an MLP 1 -> hidden -> hidden -> 1 (tanh)."""

    def __init__(self, hidden: int = 12):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(-1)).squeeze(-1)

    def describe(self) -> dict:
        layers = [m for m in self.net if isinstance(m, nn.Linear)]
        return {
            "type": "mlp",
            "hidden": layers[0].out_features,
            "activation": "tanh",
            "layers": [{"weight": m.weight.tolist(), "bias": m.bias.tolist()} for m in layers],
        }


class RationalCurve(nn.Module):
    """A static curve ``y = P(x) / (1 + |b_1 x + ... + b_n x^n|)``: a safe Padé activation
    unit (Molina et al. 2020), started as tanh's [5/4] Padé approximant (truncated)."""

    def __init__(self, degrees: Sequence[int] = (5, 4)):
        super().__init__()
        m, n = (int(d) for d in degrees)
        if m < 1 or n < 1:
            raise ValueError(f"rational degrees {degrees}: both must be >= 1")
        num = (TANH_PADE[0] + [0.0] * m)[: m + 1]
        den = (TANH_PADE[1] + [0.0] * n)[1 : n + 1]
        self.numerator = nn.Parameter(torch.tensor(num))
        self.denominator = nn.Parameter(torch.tensor(den))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        powers = [torch.ones_like(x), x]  # x^0 .. x^max(m, n): few ops per block, traceable
        while len(powers) <= max(len(self.numerator) - 1, len(self.denominator)):
            powers.append(powers[-1] * x)
        powers = torch.stack(powers, dim=-1)
        p = powers[..., : len(self.numerator)] @ self.numerator
        q = powers[..., 1 : len(self.denominator) + 1] @ self.denominator
        return p / (1 + q.abs())

    def describe(self) -> dict:
        return {
            "type": "rational",
            "form": "P(x) / (1 + |b_1 x + ... + b_n x^n|), P(x) = a_0 + a_1 x + ... + a_m x^m",
            "numerator": self.numerator.tolist(),
            "denominator": [1.0, *self.denominator.tolist()],
        }


def fir(x: torch.Tensor, weight: torch.Tensor, history: torch.Tensor | None = None):
    """Causal FIR: x (batch, 1, time), weight (paths, 1, n) (taps reversed, as conv1d takes
    them) -> ((batch, paths, out), new history).

    Without ``history`` the convolution is valid (``n - 1`` samples shorter than x); with it
    (the last ``n - 1`` input samples) the output has x's length. Long inputs go by FFT
    in eager mode; a traced export always holds the direct convolution.
    """
    if history is not None:
        x = torch.cat([history, x], dim=-1)
        history = x[..., -(weight.shape[-1] - 1) :]
    n, length = weight.shape[-1], x.shape[-1]
    if length - n + 1 >= FFT_FROM and not torch.jit.is_tracing():
        size = scipy.fft.next_fast_len(length, real=True)
        spectrum = torch.fft.rfft(x, size) * torch.fft.rfft(weight[:, 0].flip(-1), size)
        return torch.fft.irfft(spectrum, size)[..., n - 1 : length], history
    return F.conv1d(x, weight), history


def _mix(paths: torch.Tensor, offsets_db: torch.Tensor) -> torch.Tensor:
    """(batch, 1 + k, n) FIR paths -> (batch, 1, n): the base path plus each knob path
    weighted by ``10^(offset/20) - 1`` per sample; offsets_db (batch, k, n)."""
    weights = 10 ** (offsets_db / 20) - 1
    return paths[:, :1] + (weights * paths[:, 1:]).sum(dim=1, keepdim=True)


class GrayBox(nn.Module):
    """Gray-box chain ``(batch, 1 + knobs, time) -> (batch, 1, time - receptive_field + 1)``
    (module docstring). ``pre_eq``/``post_eq`` list the bands, ``nonlinearity`` is ``mlp``
    (``hidden`` units) or ``rational`` (``degrees`` of P and of the denominator), ``cab_taps``
    > 0 adds a learned cabinet FIR, ``sample_rate`` is the rate the Hz values assume."""

    burn_in = 0
    finite_memory = True
    output_channels = 1

    def __init__(
        self,
        pre_eq: Sequence[Mapping] = tuple(DEFAULT_PRE),
        post_eq: Sequence[Mapping] = tuple(DEFAULT_POST),
        nonlinearity: str = "mlp",
        hidden: int = 12,
        degrees: Sequence[int] = (5, 4),
        eq_taps: int = 2048,
        cab_taps: int = 0,
        input_gain_db: float = 0.0,
        output_gain_db: float = 0.0,
        params: Sequence[str] | None = None,
        knob_hidden: int = 8,
        sample_rate: int = 48000,
    ):
        super().__init__()
        self.spec = {
            "pre_eq": plain(list(pre_eq)),
            "post_eq": plain(list(post_eq)),
            "nonlinearity": str(nonlinearity),
            "hidden": int(hidden),
            "degrees": [int(d) for d in degrees],
            "eq_taps": int(eq_taps),
            "cab_taps": int(cab_taps),
            "input_gain_db": float(input_gain_db),
            "output_gain_db": float(output_gain_db),
            "knob_hidden": int(knob_hidden),
            "sample_rate": int(sample_rate),
        }
        self.params = check_names(params)
        self.pre_eq = EQ(pre_eq, eq_taps, sample_rate)
        self.post_eq = EQ(post_eq, eq_taps, sample_rate)
        if nonlinearity == "mlp":
            self.curve = MLPCurve(hidden)
        elif nonlinearity == "rational":
            self.curve = RationalCurve(degrees)
        else:
            raise ValueError(f"nonlinearity={nonlinearity!r}: use 'mlp' or 'rational'")
        if abs(input_gain_db) >= INPUT_GAIN_DB:
            raise ValueError(f"input_gain_db={input_gain_db}: keep it within +-{INPUT_GAIN_DB}")
        self.input_gain = nn.Parameter(torch.tensor(math.atanh(input_gain_db / INPUT_GAIN_DB)))
        self.output_gain = nn.Parameter(torch.tensor(10 ** (output_gain_db / 20)))  # signed
        if cab_taps < 0 or cab_taps == 1:
            raise ValueError(f"cab_taps={cab_taps}: use 0 (no cabinet) or at least 2")
        self.cab = nn.Parameter(F.one_hot(torch.tensor(0), cab_taps).float()) if cab_taps else None
        self.knobs = None
        if self.params:  # knobs -> dB offsets of the input gain and of every band gain
            outputs = 1 + self.pre_eq.gain_bands + self.post_eq.gain_bands
            self.knobs = nn.Sequential(
                nn.Linear(len(self.params), knob_hidden), nn.Tanh(),
                nn.Linear(knob_hidden, outputs),
            )  # fmt: skip
            nn.init.zeros_(self.knobs[-1].weight)  # knobs start with no effect
            nn.init.zeros_(self.knobs[-1].bias)
        self._cache: tuple | None = None

    @property
    def receptive_field(self) -> int:
        """Input samples output sample ``t`` depends on: every FIR's length, chained."""
        lengths = [self.pre_eq.taps, self.post_eq.taps] + (
            [self.cab.shape[0]] if self.cab is not None else []
        )
        return sum(lengths) - len(lengths) + 1

    @property
    def history(self) -> int:
        return self.receptive_field - 1 + self.burn_in

    @property
    def input_channels(self) -> int:
        return 1 + len(self.params)

    def config(self) -> dict:
        """Constructor arguments, with ``_target_``: ``build_model(model.config())`` rebuilds it."""
        config = {"_target_": "ampnet.models.GrayBox", **copy.deepcopy(self.spec)}
        if self.params:
            config["params"] = list(self.params)
        return config

    def _taps(self) -> tuple:
        """The convolution weights of the pre-EQ paths (times the input gain), the post-EQ
        paths (times the output gain) and the cabinet (or None), and ``f(0)``.

        Recomputed whenever autograd records; otherwise cached until a parameter changes,
        so streaming costs only the convolutions and an export holds the taps as constants.
        """
        if torch.is_grad_enabled():
            return self._compute_taps()
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in self.parameters())
        if self._cache is None or self._cache[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                taps = tuple(t if t is None else t.detach().clone() for t in self._compute_taps())
                self._cache = (key, taps)
        return self._cache[1]

    def _compute_taps(self):
        shapes = self.knobs is not None
        gain_in = 10 ** (INPUT_GAIN_DB * torch.tanh(self.input_gain) / 20)
        pre = self.pre_eq.impulse_responses(shapes) * gain_in
        post = self.post_eq.impulse_responses(shapes) * self.output_gain
        cab = None if self.cab is None else self.cab[None]
        weights = [None if t is None else t.flip(-1).unsqueeze(1) for t in (pre, post, cab)]
        return (*weights, self.curve(torch.zeros_like(self.output_gain)))

    def _offsets_db(self, knobs: torch.Tensor) -> torch.Tensor:
        """knobs (batch, n_knobs, time) -> (batch, 1 + pre gain bands + post gain bands, time):
        the dB offsets of the input gain and of each band's gain, sample by sample."""
        return (KNOB_RANGE_DB * torch.tanh(self.knobs(knobs.transpose(1, 2)))).transpose(1, 2)

    def _run(self, x: torch.Tensor, state: list | None) -> tuple[torch.Tensor, list]:
        """The chain, valid (``state`` None) or continuing ``state`` (lengths kept)."""
        pre, post, cab, f0 = self._taps()
        history = [None, None, None] if state is None else [*state, None]
        offsets = None
        if self.knobs is not None:
            offsets = self._offsets_db(x[:, 1:])
        v, history[0] = fir(x[:, :1], pre, history[0])
        split = 1 + self.pre_eq.gain_bands
        if offsets is not None:
            if state is None:  # valid convolutions: keep the knobs of the samples left
                offsets = offsets[..., -v.shape[-1] :]
            v = _mix(v, offsets[:, 1:split]) * 10 ** (offsets[:, :1] / 20)
        # f(v) - f(0), and exactly 0 where v is: a matrix product over many samples need not
        # round like the one that gave f(0) (AVX-512 GEMM kernels do not), and silence in
        # must be silence out, not 1e-15
        w = torch.where(v == 0, 0.0, self.curve(v) - f0)
        y, history[1] = fir(w, post, history[1])
        if offsets is not None:
            if state is None:
                offsets = offsets[..., -y.shape[-1] :]
            y = _mix(y, offsets[:, split:])
        if cab is not None:
            y, history[2] = fir(y, cab, history[2])
        return y, history[: 3 if cab is not None else 2]

    def forward(self, x: torch.Tensor, pad_start: bool = False) -> torch.Tensor:
        """x: (batch, input_channels, time) -> (batch, 1, time - receptive_field + 1); with
        ``pad_start`` silence (knobs held) precedes x and the output has x's length."""
        if pad_start:
            x = pad_silence(x, self.receptive_field - 1)
        return self._run(x, None)[0]

    def forward_with_state(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """The streaming step: ``(y, new_state)`` for a block ``x``, y of x's length."""
        return self._run(x, state)

    @torch.no_grad()
    def initial_state(self, batch: int = 1, knobs: torch.Tensor | None = None) -> list:
        """Each FIR's past input after silence: zeros (silence stays silence through
        ``f(x) - f(0)``, whatever the knobs). Also readies the cached taps."""
        self._taps()
        ref = self.output_gain
        lengths = [self.pre_eq.taps, self.post_eq.taps]
        lengths += [self.cab.shape[0]] if self.cab is not None else []
        return [ref.new_zeros(batch, 1, n - 1) for n in lengths]

    def fold_input_gain(self, gain: float) -> GrayBox:
        """A copy that takes the raw audio where this one takes ``gain`` times it (the
        pre-EQ is linear, so the gain joins the input gain; exact up to rounding)."""
        model = copy.deepcopy(self)
        db = INPUT_GAIN_DB * math.tanh(self.input_gain.item()) + 20 * math.log10(gain)
        if abs(db) >= INPUT_GAIN_DB:
            raise ValueError(f"the input gain would be {db:.1f} dB, beyond +-{INPUT_GAIN_DB}")
        with torch.no_grad():
            model.input_gain.fill_(math.atanh(db / INPUT_GAIN_DB))
        return model

    @torch.no_grad()
    def describe(self, sample_rate: float | None = None) -> dict:
        """Every block's settings, JSON-ready (frequencies in Hz at ``sample_rate``)."""
        rate = float(sample_rate or self.spec["sample_rate"])
        slope = (self.curve(torch.tensor(1e-3)) - self.curve(torch.tensor(-1e-3))) / 2e-3
        out = self.output_gain.item()
        blocks = {
            "sample_rate": rate,
            "chain": ["pre_eq", "input_gain", "nonlinearity", "post_eq"]
            + (["cab"] if self.cab is not None else [])
            + ["output_gain"],
            "pre_eq": self.pre_eq.describe(rate),
            "input_gain_db": INPUT_GAIN_DB * math.tanh(self.input_gain.item()),
            "nonlinearity": {
                **self.curve.describe(),
                "applied": "f(x) - f(0)",
                "f(0)": float(self.curve(torch.zeros(()))),
                "slope_at_0": float(slope),
            },
            "post_eq": self.post_eq.describe(rate),
            "cab": None if self.cab is None else {"taps": int(self.cab.shape[0])},
            "output_gain_db": 20 * math.log10(max(abs(out), 1e-12)),
            "polarity": 1 if out >= 0 else -1,
            "receptive_field": self.receptive_field,
        }
        if self.params:  # what each knob alone at 1 adds to each gain (all knobs at 0 too)
            settings = {"all at 0": torch.zeros(len(self.params))}
            settings.update(
                {f"{k}=1": torch.eye(len(self.params))[i] for i, k in enumerate(self.params)}
            )
            split = 1 + self.pre_eq.gain_bands
            blocks["knobs"] = {"names": list(self.params), "offsets_db": {}}
            for name, knobs in settings.items():
                db = self._offsets_db(knobs[None, :, None])[0, :, 0].tolist()
                blocks["knobs"]["offsets_db"][name] = {
                    "input_gain": db[0],
                    "pre_eq_gain_bands": db[1:split],
                    "post_eq_gain_bands": db[split:],
                }
        return blocks

    @torch.no_grad()
    def curves(self, sample_rate: float | None = None, points: int = 512) -> dict:
        """What the blocks do, as arrays for a figure: each EQ's magnitude (dB) from its
        biquads and from its FIR, the nonlinearity over -1..1, the cabinet FIR's response."""
        rate = float(sample_rate or self.spec["sample_rate"])
        f = np.geomspace(20.0, 0.49 * rate, points)
        w = torch.tensor(2 * np.pi * f / rate, dtype=torch.float32)

        def db(h: np.ndarray) -> np.ndarray:
            return 20 * np.log10(np.maximum(np.abs(h), 1e-12))

        def fir_db(taps: np.ndarray) -> np.ndarray:  # the DTFT of the taps at f
            return db(np.exp(-1j * np.outer(w.numpy(), np.arange(len(taps)))) @ taps)

        curves = {"frequency_hz": f, "sample_rate": rate}
        for name, eq in (("pre_eq", self.pre_eq), ("post_eq", self.post_eq)):
            curves[f"{name}_db"] = db(eq.responses(w)[0].numpy())
            curves[f"{name}_fir_db"] = fir_db(eq.impulse_responses()[0].numpy())
        x = torch.linspace(-1.0, 1.0, 401)
        curves["nonlinearity_in"] = x.numpy()
        curves["nonlinearity_out"] = (self.curve(x) - self.curve(torch.zeros(()))).numpy()
        curves["cab_db"] = None
        if self.cab is not None:
            curves["cab_db"] = fir_db(self.cab.numpy())
        return curves
