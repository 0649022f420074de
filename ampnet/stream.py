"""Block-by-block inference with no added latency, and whole-file rendering.

:class:`Streamer` keeps every dilated convolution's input history (and the LSTM
state) between calls, so a block costs only its own samples and output sample n
depends on input samples up to n. It runs the native kernels (``ampnet.kernels``)
when the machine can build them, and the model's own PyTorch code otherwise; both
match offline processing of the concatenated blocks.

A knob-aware model reads its knobs as input channels (audio first, then one per
knob). The streamer holds them constant between :meth:`Streamer.set_params` calls
and ramps a change linearly across the next block, so turning a knob does not
click. Both engines take the knob channels sample by sample (in the native kernel
they are columns of each layer's input mixer), so ramps stay exact.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ampnet import kernels
from ampnet.errors import AmpnetError
from ampnet.formats import load_model_file
from ampnet.models.knobs import RANGE, SettingError, check_setting, silence


class _TorchEngine:
    """The model's own PyTorch forward, fed one block at a time with its state."""

    def __init__(self, model: nn.Module, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.state = None

    def reset(self, knobs: np.ndarray) -> None:
        """Back to the state after silence, knobs held at ``knobs`` ``(n_knobs,)``."""
        self.state = self.model.initial_state(1, torch.from_numpy(knobs)[None].to(self.device))

    @torch.inference_mode()
    def process(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(x)[None].to(self.device)
        y, self.state = self.model.forward_with_state(xt, self.state)
        out[:] = y[0, 0].cpu().numpy()
        return out

    def bind(self, x: np.ndarray, out: np.ndarray):
        return lambda n: self.process(x[:, :n], out[:n])


def knob_values(
    names: Sequence[str], given: Mapping[str, float] | None, *, partial: bool = False
) -> dict[str, float]:
    """Check knob settings against a model's knob ``names`` (:func:`check_setting`), in the
    words of a player: every name known, every value in [0, 1] and, unless ``partial``,
    every knob given. One clear error otherwise."""
    given = dict(given or {})
    try:
        return check_setting(names, given, partial=partial)
    except SettingError as err:
        if not names:
            drop = " ".join(f"{k}={v}" for k, v in given.items())
            raise AmpnetError(
                f"this model has no knobs (it captures one setting); drop {drop}"
            ) from None
        listing = ", ".join(names)
        if err.unknown:
            raise AmpnetError(
                f"unknown knob {err.unknown[0]!r}: this model's knobs are {listing}"
            ) from None
        if err.missing:
            example = " ".join(f"--param {k}=0.5" for k in names)
            raise AmpnetError(
                f"no value for knob {err.missing[0]!r}: this model's knobs are {listing}; "
                f"set each (e.g. {example})"
            ) from None
        knob, value = err.bad
        raise AmpnetError(f"knob {knob}={value}: use a number from {RANGE}") from None


_FLOAT32 = np.dtype(np.float32)
_NOTED: set[str] = set()  # reasons already printed: one line per process, not per streamer


def _engine(model: nn.Module, backend: str, max_block: int, device: str):
    if backend not in ("auto", "native", "torch"):
        raise ValueError(f"backend={backend!r}: use 'auto', 'native' or 'torch'")
    if device != "cpu" or backend == "torch":
        return _TorchEngine(model, device), "torch"
    why = kernels.unsupported(model)
    if why is None:
        return kernels.NativeModel(model, max_block=max_block), "native"
    if backend == "native":
        raise RuntimeError(f"backend='native': {why} (or AMPNET_NO_NATIVE is set)")
    if kernels.available() and why not in _NOTED:  # an unavailable library said so itself
        _NOTED.add(why)
        print(f"ampnet: {why}; {kernels.SLOWER}", file=sys.stderr, flush=True)
    return _TorchEngine(model, device), "torch"


class Streamer:
    """Stream audio through a model: ``process(block) -> block`` for any block size.

    ``block`` is a 1-D float32 array; the result has its length and carries the
    model's state into the next call. ``reset()`` returns to silence. Blocks longer
    than ``max_block`` are split internally. ``input_gain_db`` is the gain the model
    was trained with (stored in its checkpoint), applied before the model.

    A model with knobs (``model.params``) needs ``params={name: value}`` for every
    knob (0 to 1; no default: a capture has no neutral setting); :meth:`set_params`
    turns them between blocks.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        params: Mapping[str, float] | None = None,
        sample_rate: int | None = None,
        input_gain_db: float = 0.0,
        max_block: int = 4096,
        backend: str = "auto",
        device: str = "cpu",
    ):
        if not hasattr(model, "initial_state"):
            raise TypeError(f"cannot stream a {type(model).__name__}: it has no initial_state")
        self.model = model.eval()
        self.sample_rate = sample_rate
        self.input_gain = np.float32(10.0 ** (input_gain_db / 20.0))
        self._unity = self.input_gain == 1.0
        self.max_block = int(max_block)
        self.latency_samples = 0  # causal: output n depends on input up to n
        self._engine, self.backend = _engine(self.model, backend, self.max_block, device)
        self._x = np.zeros((model.input_channels, self.max_block), dtype=np.float32)
        self._y = np.zeros(self.max_block, dtype=np.float32)
        self._run = self._engine.bind(self._x, self._y)
        # the whole common case in one C call where the native glue builds (kernels.block_type)
        fast = getattr(self._engine, "block", None)
        fast = fast and fast(self._x, self._y, self._run, self.input_gain)
        self._fast = fast.process if fast is not None else None
        self._audio = self._x[0]
        self._seen = self._out = self._run_out = None  # see _bind_out
        self._out_n = 0
        self.param_names = list(getattr(model, "params", []))
        self._settings = knob_values(self.param_names, params)
        self._knobs = np.array([self._settings[k] for k in self.param_names], dtype=np.float32)
        self._target = self._knobs.copy()  # where a pending ramp ends
        self._ramp_steps = np.arange(1, self.max_block + 1, dtype=np.float32)
        self.reset()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs) -> Streamer:
        """A streamer for the model in an ampnet training checkpoint (loaded weights-only)."""
        if Path(path).suffix.lower() != ".ckpt":
            raise AmpnetError(f"{path}: not a .ckpt; use Streamer.from_file for exported models")
        return cls.from_file(path, **kwargs)

    @classmethod
    def from_file(cls, path: str | os.PathLike, size: float | None = None, **kwargs) -> Streamer:
        """A streamer for any model file ampnet reads: a training checkpoint or an export
        (.nam, AIDA-X or Proteus JSON); ``size`` (0 to 1) plays a slimmable .nam at that size."""
        loaded = load_model_file(path, size)
        kwargs.setdefault("sample_rate", loaded.sample_rate)
        kwargs.setdefault("input_gain_db", loaded.input_gain_db)
        return cls(loaded.model, **kwargs)

    @property
    def params(self) -> dict[str, float]:
        """The knob settings in effect once any pending change has ramped in."""
        return dict(self._settings)

    def set_params(self, **values: float) -> None:
        """Turn knobs (``drive=0.3``): the change ramps linearly across the next block."""
        values = knob_values(self.param_names, values, partial=True)
        self._settings.update(values)
        for knob, value in values.items():
            self._target[self.param_names.index(knob)] = value
        self._ramping = not np.array_equal(self._knobs, self._target)

    def reset(self) -> None:
        """Forget the past: the next block starts after silence, knobs at their settings."""
        self._knobs[:] = self._target
        self._ramping = False
        self._x[:] = silence(torch.from_numpy(self._knobs)[None], self.max_block)[0].numpy()
        self._engine.reset(self._knobs)

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Process one block of samples ``(n,)`` and return ``(n,)`` (written into ``out`` if given)."""
        if out is not None and self._fast is not None and not self._ramping:
            done = self._fast(block, out)  # None: a block it does not take (dtype, length)
            if done is not None:
                return done
        if block.__class__ is not np.ndarray or block.dtype is not _FLOAT32:
            block = np.asarray(block, dtype=np.float32)
        if block.ndim != 1:
            raise ValueError(f"a block is 1-D (samples,), got shape {block.shape}")
        n = block.shape[0]
        if 0 < n <= self.max_block and self._unity and not self._ramping:
            # the common case, a few hundred nanoseconds of Python: one copy in, one call
            self._audio[:n] = block
            if out is self._out and n <= self._out_n:  # straight into the caller's buffer
                self._run_out(n)
                return out
            self._run(n)
            if out is None:
                return self._y[:n].copy()
            out[:n] = self._y[:n]
            self._bind_out(out)
            return out
        if out is None:
            out = np.empty(n, dtype=np.float32)
        ramp = self._ramping and n > 0
        x, y, step = self._x[0], self._y, self.max_block
        for start in range(0, n, step):  # the per-block path: no allocation, few calls
            m = n - start if n - start < step else step
            if self._unity:
                x[:m] = block[start : start + m]
            else:
                np.multiply(block[start : start + m], self.input_gain, out=x[:m])
            if ramp:
                self._ramp(start, m, n)
            self._run(m)
            out[start : start + m] = y[:m]
        if ramp:
            self._knobs[:] = self._target
            self._x[1:] = self._knobs[:, None]
            self._ramping = False
        return out

    def _bind_out(self, out: np.ndarray) -> None:
        """Once a caller passes the same ``out`` twice in a row, write the next blocks that
        come with it straight into it (a caller that alternates buffers keeps the copy).

        Holding ``out`` keeps its memory alive, and makes NumPy refuse to resize it in place
        (``ndarray.resize`` checks for other references), so its address stays valid."""
        if out is not self._seen:
            self._seen = out
        elif out.__class__ is np.ndarray and out.dtype is _FLOAT32 and out.flags.c_contiguous:
            self._out, self._out_n = out, out.shape[0]
            self._run_out = self._engine.bind(self._x, out)

    def _ramp(self, start: int, m: int, n: int) -> None:
        """Knob rows for samples ``start .. start + m`` of an ``n``-sample block: a line
        from the old setting to the new one, reached on the block's last sample."""
        for k, (old, new) in enumerate(zip(self._knobs, self._target, strict=True)):
            row = self._x[1 + k, :m]
            np.add(self._ramp_steps[:m], np.float32(start), out=row)
            row *= (new - old) / np.float32(n)
            row += old


def render(
    model: nn.Module,
    audio: np.ndarray,
    *,
    params: Mapping[str, float] | None = None,
    input_gain_db: float = 0.0,
    chunk: int = 65536,
    threads: int | None = None,
    backend: str = "auto",
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Process a whole recording ``(n,)`` as a player would hear it (silence before its start).

    The file goes through in chunks of ``chunk`` samples with the state carried
    between them, so memory stays flat and the result equals one pass over the whole
    file. A WaveNet's memory is its receptive field, so with ``threads`` > 1 separate
    streamers take separate parts, each first fed the ``receptive_field - 1`` samples
    before its part: the result is the same. ``progress(samples_done)`` is called
    after each chunk. ``params`` sets a knob-aware model's knobs for the whole file.
    """
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    n = audio.shape[0]
    out = np.empty(n, dtype=np.float32)
    threads = max(1, threads or os.cpu_count() or 1)
    if model.finite_memory and device == "cpu":
        # each part re-reads receptive_field - 1 samples: keep parts 10x longer than that
        threads = min(threads, max(1, n // (10 * model.receptive_field)))
    else:
        threads = 1  # a recurrent model's state depends on everything before: one pass
    bounds = np.linspace(0, n, threads + 1).astype(int)
    # the native kernel is fastest on blocks that keep its working set in cache
    native = device == "cpu" and backend != "torch" and kernels.unsupported(model) is None
    block = min(chunk, 2048) if native else chunk

    def run(part: int) -> None:
        streamer = Streamer(
            model,
            params=params,
            input_gain_db=input_gain_db,
            max_block=block,
            backend=backend,
            device=device,
        )
        start, stop = bounds[part], bounds[part + 1]
        if part > 0:  # settle the histories on the samples before this part
            warm = max(0, start - (model.receptive_field - 1))
            streamer.process(audio[warm:start])
        for s in range(start, stop, chunk):
            e = min(stop, s + chunk)
            streamer.process(audio[s:e], out[s:e])
            if progress is not None:
                progress(e - s)

    if threads == 1:
        run(0)
    else:
        with torch.inference_mode(), ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, range(threads)))
    return out
