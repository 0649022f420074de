"""Native block kernels for WaveNet, LSTM, GRU, S4D and gray-box inference, compiled on first use.

``amp.c`` is built with the machine's C compiler (``cc -O3 -march=native``) into a
cache folder keyed by the source, the compiler and its version, the flags and the
CPU, and called through ctypes: one call per block, no allocation per block, the
GIL released. Whatever stops that (no compiler, a failed or hung build, a library
that will not load, a cache folder someone else could write to) makes
:func:`library` return None once, with one line on stderr saying why, and callers
use PyTorch instead: correct, only slower. ``pyblock.c``, a CPython extension built
the same way where the Python headers are, makes a Streamer's whole block (copy in,
run, copy out) one C call instead of a ctypes call (:func:`block_type`).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import uuid
import weakref
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ampnet.formats.nam_weights import lstm_weights, wavenet_weights
from ampnet.models import GRU, LSTM, S4D, TCN, GrayBox, WaveNet, wavenet_form
from ampnet.models.activations import LeakyHardtanh, PReLU, activation_name
from ampnet.models.graybox import MLPCurve
from ampnet.models.knobs import silence
from ampnet.models.layer_array import FILMS

SOURCE = Path(__file__).with_name("amp.c")
GLUE = Path(__file__).with_name("pyblock.c")  # the per-block call from Python, without ctypes
COMPILE_TIMEOUT = 180  # seconds; a compiler that hangs must not hang the player
SLOWER = "streaming runs on PyTorch (correct, but slower: about 30x for a WaveNet at small blocks)"


class Unavailable(Exception):
    """Why the native kernels cannot be used on this machine."""


def flags() -> list[str]:
    """Compiler flags; ``AMPNET_MARCH`` (default ``native``) picks the instruction set."""
    return [
        "-O3",
        f"-march={os.environ.get('AMPNET_MARCH', 'native')}",
        "-fPIC",
        "-shared",
        "-std=c99",
        # ISO C mode would otherwise keep every a * b + c as two roundings, two instructions:
        # fused multiply-adds are both faster and more exact
        "-ffp-contract=fast",
    ]


_float_p = ctypes.POINTER(ctypes.c_float)
_double_p = ctypes.POINTER(ctypes.c_double)
_int_p = ctypes.POINTER(ctypes.c_int)
_addr = ctypes.c_void_p  # blocks are passed as raw addresses: no ctypes objects per call
# the kernel's own numbering (process_of in amp.c)
KINDS = ("wavenet", "lstm", "gru", "s4d", "graybox", "tcn")


def cache_dir() -> Path:
    """Where compiled kernels live: ``$AMPNET_CACHE`` or ``~/.cache/ampnet``."""
    root = (
        os.environ.get("AMPNET_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ampnet"
    )
    return Path(root) / "kernels"


def private(path: Path) -> bool:
    """True when ``path`` is a real file or folder (no link) owned by this user that
    nobody else can write: only then may a library in it be loaded."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return (
        not stat.S_ISLNK(info.st_mode)
        and info.st_uid == os.getuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _folder() -> Path:
    """A folder for the compiled library that only this user can write: the cache folder,
    else ``<tmp>/ampnet-kernels-<uid>``, else a fresh temporary folder."""
    for folder in (cache_dir(), Path(tempfile.gettempdir()) / f"ampnet-kernels-{os.getuid()}"):
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            continue
        if private(folder) and os.access(folder, os.W_OK):
            return folder
    return Path(tempfile.mkdtemp(prefix="ampnet-kernels-"))  # 0700, new: compiled afresh


def _cpu_identity() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next(
            (line for line in text.splitlines() if line.startswith(("flags", "Features"))), ""
        )
    except OSError:
        return platform.processor()


def compiler() -> list[str] | None:
    """The C compiler command (``$CC``, else cc, gcc or clang on the PATH), or None."""
    if os.environ.get("CC"):
        words = shlex.split(os.environ["CC"])
        found = shutil.which(words[0]) if words else None
        return [found, *words[1:]] if found else None
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return [found] if found else None


def _run(command: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{what} took over {COMPILE_TIMEOUT} s") from None
    except OSError as err:
        raise Unavailable(f"{what} failed to start ({err})") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()[:300]
        raise Unavailable(f"{what} failed ({detail})")
    return result


def library_path(cc: list[str]) -> Path:
    """Where the library for this source, compiler (and version), flags and CPU lives."""
    version = _run([*cc, "--version"], f"{cc[0]} --version").stdout.strip().splitlines()
    identity = [*cc, version[0] if version else "", *flags(), platform.machine(), _cpu_identity()]
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(identity).encode()).hexdigest()[:16]
    return _folder() / f"amp-{key}.so"


def _compile(cc: list[str], path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.so")
    try:
        _run([*cc, *flags(), "-o", str(tmp), str(SOURCE), "-lm"], "compiling the kernels")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load(path: Path) -> ctypes.CDLL:
    if not private(path):
        raise Unavailable(f"{path} is not owned by this user alone; not loading it")
    try:
        lib = ctypes.CDLL(str(path))
        lib.activation_id.restype = ctypes.c_int
        lib.activation_id.argtypes = [ctypes.c_char_p]
        lib.wavenet_create.restype = ctypes.c_void_p
        lib.wavenet_create.argtypes = [_int_p, ctypes.c_int, _float_p, ctypes.c_long]
        lib.wavenet_create.argtypes += [_float_p, ctypes.c_long, ctypes.c_int]
        lib.wavenet_set_condition.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.wavenet_set_condition.restype = ctypes.c_int
        lib.lstm_create.restype = ctypes.c_void_p
        lib.lstm_create.argtypes = [ctypes.c_int] * 4 + [_float_p, ctypes.c_long]
        lib.lstm_set_start.argtypes = [ctypes.c_void_p, _float_p, _float_p]
        lib.gru_create.restype = ctypes.c_void_p
        lib.gru_create.argtypes = [ctypes.c_int] * 4 + [_float_p, ctypes.c_long]
        lib.gru_set_start.argtypes = [ctypes.c_void_p, _float_p]
        lib.s4d_create.restype = ctypes.c_void_p
        lib.s4d_create.argtypes = [ctypes.c_int] * 5 + [_double_p, ctypes.c_long]
        lib.s4d_set_start.argtypes = [ctypes.c_void_p, _double_p]
        lib.graybox_create.restype = ctypes.c_void_p
        lib.graybox_create.argtypes = [_int_p, _float_p, ctypes.c_long]
        lib.tcn_create.restype = ctypes.c_void_p
        lib.tcn_create.argtypes = [_int_p, _float_p, ctypes.c_long]
        lib.tcn_set_start.argtypes = [ctypes.c_void_p, _float_p]
        lib.gru_forward.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_int] + [_addr] * 6
        lib.gru_forward.restype = None
        lib.gru_backward.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_int] + [_addr] * 8
        lib.gru_backward.restype = None
        for name in KINDS:
            getattr(lib, f"{name}_process").argtypes = [
                _addr,
                _addr,
                ctypes.c_int,
                _addr,
                ctypes.c_int,
            ]
            getattr(lib, f"{name}_reset").argtypes = [ctypes.c_void_p]
            getattr(lib, f"{name}_destroy").argtypes = [ctypes.c_void_p]
        lib.bind_block.restype = ctypes.c_void_p
        lib.bind_block.argtypes = [ctypes.c_int, _addr, _addr, ctypes.c_int, _addr]
        lib.run_block.argtypes = [_addr, ctypes.c_int]
        lib.run_block.restype = None
        lib.time_blocks.argtypes = [ctypes.c_int, _addr, _addr, ctypes.c_long, ctypes.c_int, _addr]
        lib.time_blocks.restype = ctypes.c_double
        lib.unbind_block.argtypes = [_addr]
    except (OSError, AttributeError) as err:
        raise Unavailable(f"{path} does not load ({err})") from None
    return lib


def build() -> ctypes.CDLL:
    """Compile (or find in the cache) and load the kernels; :class:`Unavailable` says why not."""
    if sys.platform == "win32":
        raise Unavailable("the native kernels are built for Linux and macOS only")
    cc = compiler()
    if cc is None:
        raise Unavailable("no C compiler found (set CC, or install gcc or clang)")
    path = library_path(cc)
    if path.is_file():
        try:
            return _load(path)
        except Unavailable:
            path.unlink(missing_ok=True)  # a broken or foreign cached file: build it again
    _compile(cc, path)
    return _load(path)


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The loaded kernel library, compiling it if needed; None (said once, on stderr) when
    it cannot be had, or when ``AMPNET_NO_NATIVE`` is set."""
    if os.environ.get("AMPNET_NO_NATIVE"):
        return None
    try:
        return build()
    except Unavailable as why:
        print(f"ampnet: native kernels unavailable: {why}; {SLOWER}", file=sys.stderr, flush=True)
        return None


def available() -> bool:
    return library() is not None


def _glue_build(cc: list[str]):
    """Compile (or find in the cache) and import ``pyblock.c``; :class:`Unavailable` says why not."""
    include = sysconfig.get_paths().get("include") or ""
    if not (Path(include) / "Python.h").is_file():
        raise Unavailable(f"no Python.h in {include!r} (install the Python development headers)")
    version = _run([*cc, "--version"], f"{cc[0]} --version").stdout.strip().splitlines()
    extra = ["-undefined", "dynamic_lookup"] if sys.platform == "darwin" else []
    command = ["-O2", "-fPIC", "-shared", f"-I{include}", *extra]
    identity = [*cc, version[0] if version else "", *command, sys.version, platform.machine()]
    key = hashlib.sha256(GLUE.read_bytes() + " ".join(identity).encode()).hexdigest()[:16]
    path = _folder() / f"pyblock-{key}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"
    if not path.is_file():
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.so")
        try:
            _run([*cc, *command, "-o", str(tmp), str(GLUE)], "compiling the Python block call")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    if not private(path):
        raise Unavailable(f"{path} is not owned by this user alone; not loading it")
    try:
        spec = importlib.util.spec_from_file_location("ampnet_pyblock", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.Block
    except (ImportError, OSError, AttributeError) as err:
        path.unlink(missing_ok=True)  # a broken cached file: built again next time
        raise Unavailable(f"{path} does not import ({err})") from None


@lru_cache(maxsize=1)
def block_type():
    """The ``Block`` type of ``pyblock.c`` (None when it cannot be built: no Python headers,
    no compiler, Windows, or ``AMPNET_NO_PYBLOCK`` set). Without it a Streamer calls the
    kernel through ctypes: the same output, about a microsecond more per block."""
    if os.environ.get("AMPNET_NO_PYBLOCK") or sys.platform == "win32" or library() is None:
        return None
    cc = compiler()
    try:
        return _glue_build(cc) if cc else None
    except Unavailable:
        return None


def _ptr(array: np.ndarray, kind=_float_p):
    return array.ctypes.data_as(kind)


def activation_ids(lib: ctypes.CDLL, names) -> list[int]:
    """The kernel's number for each activation name (-1 where it has none)."""
    return [lib.activation_id(str(name).encode()) for name in names]


def gru_weights(model: GRU) -> np.ndarray:
    """The order ``gru_create`` reads: per layer W_ih, W_hh, b_ih, b_hh and the state after
    silence (:meth:`~ampnet.models.GRU.initial_state`); then the head's W and b."""
    (h0,) = model.initial_state()
    parts = []
    for i in range(model.num_layers):
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        parts += [getattr(model.gru, f"{n}_l{i}").detach().reshape(-1) for n in names]
        parts.append(h0[i, 0])
    parts += [model.head.weight.detach().reshape(-1), model.head.bias.detach()]
    return torch.cat(parts).numpy().astype(np.float32)


@torch.no_grad()
def s4d_weights(model: S4D) -> np.ndarray:
    """The order ``s4d_create`` reads, float64: the input map's W and b; per block Abar,
    Bbar and 2 C (real parts, then imaginary, each (hidden, modes)), D, the mix's W and b
    and the state after silence (:meth:`~ampnet.models.S4D.initial_state`); the head's W, b."""
    parts = [model.inp.weight, model.inp.bias]
    for ssm, mix, start in zip(model.ssms, model.mixes, model.initial_state(), strict=True):
        dta, bbar, c = ssm.discrete()
        abar, c2 = torch.exp(dta), 2 * c
        parts += [abar.real, abar.imag, bbar.real, bbar.imag, c2.real, c2.imag]
        parts += [ssm.d, mix.weight, mix.bias, start[0]]
    parts += [model.out.weight, model.out.bias]
    return torch.cat([p.detach().double().reshape(-1) for p in parts]).numpy()


@torch.no_grad()
def graybox_weights(model: GrayBox) -> tuple[np.ndarray, np.ndarray]:
    """What ``graybox_create`` takes: the shape (int32: the pre-EQ's, post-EQ's and cabinet's
    taps, or 0; the curve, 0 for the MLP, 1 for the rational; its size, hidden units or the
    numerator's degree; the denominator's degree; each EQ's paths, 1 + its gain bands with
    knobs; the knobs; the knob MLP's hidden units) and the float32 weights: every FIR path's
    taps as conv1d holds them (the gains folded in), the curve's parameters, f(0), and the
    knob MLP's weights and biases."""
    pre, post, cab, f0 = model._taps()
    firs = [pre[:, 0], post[:, 0]] + ([cab[:, 0]] if cab is not None else [])
    curve = model.curve
    if isinstance(curve, MLPCurve):
        first, second, third = (m for m in curve.net if isinstance(m, nn.Linear))
        parts = [first.weight[:, 0], first.bias, second.weight, second.bias, third.weight[0]]
        parts.append(third.bias)
        kind, size, den = 0, first.out_features, 0
    else:
        parts = [curve.numerator, curve.denominator]
        kind, size, den = 1, len(curve.numerator) - 1, len(curve.denominator)
    parts.append(f0.reshape(1))
    knobs, hidden = len(model.params), 0
    if model.knobs is not None:
        inner, outer = model.knobs[0], model.knobs[-1]
        parts += [inner.weight, inner.bias, outer.weight, outer.bias]
        hidden = inner.out_features
    taps = [f.shape[-1] for f in firs] + ([0] if cab is None else [])
    shape = [*taps, kind, size, den, pre.shape[0], post.shape[0], knobs, hidden]
    flat = torch.cat([t.detach().float().reshape(-1) for t in [*firs, *parts]])
    return np.array(shape, np.int32), flat.numpy()


ACT_PARAMS = 4  # amp.c: parameters of an activation before its per-channel ones


@torch.no_grad()
def tcn_weights(model: TCN, lib: ctypes.CDLL) -> tuple[np.ndarray, np.ndarray]:
    """What ``tcn_create`` takes for a TCN or GCN the WaveNet kernel cannot run (knob FiLM,
    TFiLM): the shape (int32: gated, the activation's id, channels, blocks, knobs, the knob
    MLP's hidden units, the TFiLM block or 0, the TFiLM GRU's units, each block's kernel and
    dilation) and the float32 weights in the order amp.c reads them."""
    parts = []
    for block in model.blocks:
        parts += [block.weight, block.bias]
        parts += [p for p in (block.mix, block.gain) if p is not None]
        if block.tfilm is not None:
            rnn, mod = block.tfilm.rnn, block.tfilm.modulation
            parts += [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0]
            parts += [mod.weight, mod.bias]
    film = model.film
    if film is not None:
        parts += [film.hidden_weight, film.hidden_bias, film.weight, film.bias]
    parts += [model.head, model.head_bias]
    flat = torch.cat([t.detach().float().reshape(-1) for t in parts]).numpy()
    act = 0 if model.gated else activation_ids(lib, [activation_name(model.activation)])[0]
    gated = [0.0] * (ACT_PARAMS + model.channels)  # a GCN's gate reads no parameters
    params = gated if model.gated else _act_params(model.activation, model.channels)
    shape = [
        int(model.gated),
        act,
        model.channels,
        len(model.blocks),
        len(model.params),
        model.film_hidden if model.params else 0,
        model.tfilm_block or 0,
        model.tfilm_hidden,
    ]
    for block in model.blocks:
        shape += [block.kernel_size, block.dilation]
    weights = np.concatenate([flat, np.asarray(params, np.float32)])
    return np.array(shape, np.int32), weights


def tcn_start(model: TCN, knobs: np.ndarray | None = None) -> np.ndarray:
    """``tcn_set_start``'s state: :meth:`TCN.initial_state` with the knobs held, flattened."""
    held = None if knobs is None else torch.from_numpy(np.asarray(knobs, np.float32))[None]
    state = model.initial_state(1, held)
    return torch.cat([t.float().reshape(-1) for t in state]).numpy()


def _act_params(module, channels: int) -> list[float]:
    """What ``activation_p`` in amp.c reads for ``module`` (``ACT_PARAMS + channels``)."""
    out = [0.0] * (ACT_PARAMS + channels)
    if isinstance(module, nn.LeakyReLU):
        out[0] = module.negative_slope
    elif isinstance(module, PReLU):
        slopes = module.slopes.tolist()
        out[:channels] = slopes * channels if len(slopes) == 1 else slopes
    elif isinstance(module, LeakyHardtanh):
        out[:4] = [module.min_val, module.max_val, module.min_slope, module.max_slope]
    return out


def wavenet_kernel_config(model: WaveNet, lib: ctypes.CDLL) -> tuple[np.ndarray, np.ndarray]:
    """The integer layout and the activation parameters the native kernel reads (see
    ``wavenet_create`` in amp.c)."""
    config, params = [len(model.layer_arrays)], []
    gatings = ("none", "gated", "blended")
    for a in model.layer_arrays:
        acts = [activation_name(layer.activation) for layer in a.layers]
        secs = [
            activation_name(layer.secondary) if layer.secondary is not None else None
            for layer in a.layers
        ]
        act_ids = activation_ids(lib, acts)
        sec_ids = [activation_ids(lib, [n])[0] if n else -1 for n in secs]
        h1x1 = a.head1x1["out_channels"] if a.head1x1["active"] else 0
        config += [a.input_size, a.condition_size, a.head_size, a.channels, a.bottleneck]
        config += [gatings.index(a.gating[0]), int(a.head_bias), act_ids[0], a.head["kernel_size"]]
        config += [a.head["head_dilation"], len(a.dilations), sec_ids[0]]
        config += [int(a.layer1x1["active"]), a.layer1x1["groups"], h1x1, a.head1x1["groups"]]
        config += [a.groups_input, a.groups_input_mixin]
        for name in FILMS:
            film = a.films[name]
            config += [film["groups"], int(film["shift"])] if film else [0, 0]
        for i, layer in enumerate(a.layers):
            config += [a.kernel_sizes[i], a.dilations[i], act_ids[i]]
            config += [gatings.index(a.gating[i]), sec_ids[i]]
            params += _act_params(layer.activation, a.bottleneck)
            params += _act_params(layer.secondary, a.bottleneck)
    post = model.post_head
    if post is None:
        config += [0, 0]
    else:
        config += [len(post.convs), activation_ids(lib, [activation_name(post.activation)])[0]]
        for conv in post.convs:
            config += [conv.out_channels, conv.kernel_size[0]]
        params += _act_params(post.activation, max(conv.in_channels for conv in post.convs))
    return np.array(config, dtype=np.int32), np.array(params, dtype=np.float32)


def _kernel_gap(model: WaveNet) -> str | None:
    """What of ``model`` the WaveNet kernel does not implement (None when it runs all of it)."""
    dsp = model.condition_dsp
    if dsp is not None and not isinstance(dsp, WaveNet):
        return f"a {type(dsp).__name__} condition_dsp"
    return _kernel_gap(dsp) if dsp is not None else None


def _wavenet_handle(lib: ctypes.CDLL, model: WaveNet, max_block: int):
    """A kernel handle for ``model`` and its condition_dsp (owned by it), or None."""
    config, act_params = wavenet_kernel_config(model, lib)
    weights = wavenet_weights(model)
    handle = lib.wavenet_create(
        _ptr(config, _int_p),
        len(config),
        _ptr(weights),
        len(weights),
        _ptr(act_params),
        len(act_params),
        max_block,
    )
    if not handle or model.condition_dsp is None:
        return handle
    dsp = _wavenet_handle(lib, model.condition_dsp, max_block)
    if not dsp or not lib.wavenet_set_condition(handle, dsp):
        for h in (handle, dsp):
            if h:
                lib.wavenet_destroy(h)
        return None
    return handle


def unsupported(model) -> str | None:
    """Why the native kernel cannot run ``model`` (None when it can)."""
    model = wavenet_form(model)
    lib = library()
    if lib is None:
        return "the native kernels are unavailable"
    if isinstance(model, WaveNet):
        gap = _kernel_gap(model)
        if gap is not None:
            return f"the native kernel has no {gap} yet"
        names = []
        while model is not None:  # the model, then its condition_dsp (a WaveNet, see above)
            names += [
                activation_name(module)
                for a in model.layer_arrays
                for layer in a.layers
                for module in (layer.activation, layer.secondary)
                if module is not None
            ]
            if model.post_head is not None:
                names.append(activation_name(model.post_head.activation))
            model = model.condition_dsp
        missing = [n for n, i in zip(names, activation_ids(lib, names), strict=True) if i < 0]
        if missing:
            return f"the native kernel has no {missing[0]} activation"
        return None
    if type(model) in (LSTM, GRU, S4D, GrayBox):
        return None
    if isinstance(model, TCN):  # what TCN.as_wavenet cannot say: knob FiLM, TFiLM
        if not model.gated:
            name = activation_name(model.activation)
            if activation_ids(lib, [name])[0] < 0:
                return f"the native kernel has no {name} activation"
        return None
    return f"there is no native kernel for a {type(model).__name__} yet"


class NativeModel:
    """A model's state in the native kernel: ``process(x, out)`` runs one block.

    ``x`` is ``(channels, n)`` float32 with contiguous rows (audio first, then any
    knobs), ``out`` ``(n,)`` float32 contiguous; the state carries over between calls
    until :meth:`reset`.
    """

    def __init__(self, model: WaveNet | LSTM | GRU | S4D | GrayBox | TCN, max_block: int = 4096):
        model = wavenet_form(model)
        why = unsupported(model)
        if why is not None:
            raise RuntimeError(f"cannot run this {type(model).__name__} natively: {why}")
        lib = self._lib = library()
        if isinstance(model, WaveNet):
            self._kind = "wavenet"
            self._handle = _wavenet_handle(lib, model, max_block)
        elif isinstance(model, S4D):
            self._kind = "s4d"
            weights = s4d_weights(model)
            self._handle = lib.s4d_create(
                model.input_size,
                model.hidden_size,
                model.state_size // 2,
                model.num_layers,
                int(model.input_skip),
                _ptr(weights, _double_p),
                len(weights),
            )
        elif isinstance(model, GrayBox):
            self._kind = "graybox"
            shape, weights = graybox_weights(model)
            self._handle = lib.graybox_create(_ptr(shape, _int_p), _ptr(weights), len(weights))
        elif isinstance(model, TCN):
            self._kind = "tcn"
            shape, weights = tcn_weights(model, lib)
            self._handle = lib.tcn_create(_ptr(shape, _int_p), _ptr(weights), len(weights))
            if self._handle:
                start = tcn_start(model)
                lib.tcn_set_start(self._handle, _ptr(start))
        else:  # an LSTM or a GRU: the same constructor arguments, each its weight order
            self._kind = "lstm" if isinstance(model, LSTM) else "gru"
            weights = lstm_weights(model) if self._kind == "lstm" else gru_weights(model)
            self._handle = getattr(lib, f"{self._kind}_create")(
                model.input_size,
                model.hidden_size,
                model.num_layers,
                int(model.input_skip),
                _ptr(weights),
                len(weights),
            )
        if not self._handle:
            raise ValueError(f"the native kernel refused this {type(model).__name__}'s layout")
        self.channels = model.input_channels
        self._model, self._max_block = model, max_block

    def process(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        if x.dtype != np.float32 or x.strides[-1] != 4 or x.shape[0] != self.channels:
            raise ValueError(f"expected ({self.channels}, n) float32 rows, got {x.dtype} {x.shape}")
        if out.dtype != np.float32 or not out.flags.c_contiguous or out.shape[0] < x.shape[-1]:
            raise ValueError("out must be a contiguous float32 array of at least n samples")
        self.bind(x, out)(x.shape[-1])
        return out

    def bind(self, x: np.ndarray, out: np.ndarray):
        """A function ``run(n)`` that processes ``x[:, :n]`` into ``out[:n]``: fixed buffers,
        addresses taken once (in a C binding, so ctypes converts two arguments per block, not
        five), so the per-block call allocates nothing. ``x`` and ``out`` must outlive it."""
        x_addr, out_addr = x.__array_interface__["data"][0], out.__array_interface__["data"][0]
        kind = KINDS.index(self._kind)
        binding = self._lib.bind_block(kind, self._handle, x_addr, x.strides[0] // 4, out_addr)
        if not binding:
            raise MemoryError("the native kernel could not bind a block buffer")
        run = partial(self._lib.run_block, binding)
        weakref.finalize(run, self._lib.unbind_block, binding)
        return run

    def block(self, x: np.ndarray, out: np.ndarray, run, gain: float = 1.0):
        """A ``Block`` (``pyblock.c``) over ``run`` (from :meth:`bind` on ``x`` and ``out``):
        its ``process(block, out)`` copies ``block`` (times ``gain``) into ``x[0]``, runs the
        kernel and copies ``out`` into the caller's array, in one C call; None when the
        glue cannot be built."""
        block_cls = block_type()
        if block_cls is None:
            return None
        address = ctypes.cast(self._lib.run_block, ctypes.c_void_p).value
        return block_cls(address, run.args[0], x, out, x.shape[-1], (run, self), float(gain))

    def time_blocks(self, x: np.ndarray, block: int) -> tuple[float, np.ndarray]:
        """Stream ``x`` ``(channels, n)`` through the kernel ``block`` samples a call in a C
        loop, as a plugin host would: ``(seconds, output)``, timed in C around the calls only
        (the like of NAM's engine ``bench``). Continues from the current state."""
        if not 0 < block <= self._max_block:
            raise ValueError(f"block must be 1..{self._max_block}, got {block}")
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise ValueError(f"expected ({self.channels}, n) float32, got {x.shape}")
        out = np.zeros(x.shape[1], np.float32)
        kind = KINDS.index(self._kind)
        seconds = self._lib.time_blocks(
            kind, self._handle, x.ctypes.data, x.shape[1], block, out.ctypes.data
        )
        return seconds, out

    def reset(self, knobs: np.ndarray | None = None) -> None:
        """Back to the state after silence, knobs held at ``knobs`` ``(n_knobs,)`` (zeros if
        None): the kernel's own reset is silence with every knob at 0."""
        getattr(self._lib, f"{self._kind}_reset")(self._handle)
        if self.channels == 1 or self._kind == "graybox":  # a gray box's FIRs start from zeros
            return
        knobs = np.zeros(self.channels - 1, np.float32) if knobs is None else knobs
        if self._kind in ("lstm", "gru"):  # its state after silence depends on the knobs: set it
            start = self._model.initial_state(1, torch.from_numpy(knobs)[None])
            states = [np.ascontiguousarray(s[:, 0].numpy(), dtype=np.float32) for s in start]
            getattr(self._lib, f"{self._kind}_set_start")(self._handle, *map(_ptr, states))
        elif self._kind == "tcn":  # the convolutions' histories and TFiLM's state after silence
            start = tcn_start(self._model, knobs)
            self._lib.tcn_set_start(self._handle, _ptr(start))
        elif self._kind == "s4d":  # so does its: the fixed point of every block
            start = self._model.initial_state(1, torch.from_numpy(knobs)[None])
            state = torch.cat([s[0].double().reshape(-1) for s in start]).numpy()
            self._lib.s4d_set_start(self._handle, _ptr(state, _double_p))
        elif knobs.any():  # a WaveNet remembers its last receptive_field - 1 inputs: replay them
            quiet = silence(torch.from_numpy(knobs)[None], self._max_block)[0].numpy()
            sink = np.empty(self._max_block, np.float32)
            run = self.bind(quiet, sink)
            for done in range(0, self._model.receptive_field - 1, self._max_block):
                run(min(self._max_block, self._model.receptive_field - 1 - done))

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            getattr(self._lib, f"{self._kind}_destroy")(handle)
