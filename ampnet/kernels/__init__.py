"""Native block kernels for WaveNet and LSTM inference, compiled on first use.

``amp.c`` is built with the machine's C compiler (``cc -O3 -march=native``) into a
cache folder keyed by the source, the compiler flags and the CPU, and called through
ctypes: one call per block, no allocation per block, the GIL released. Where no
compiler is found :func:`library` returns None and callers use PyTorch instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from ampnet.formats.nam_weights import lstm_weights, wavenet_kernel_config, wavenet_weights
from ampnet.models import LSTM, WaveNet

SOURCE = Path(__file__).with_name("amp.c")


def flags() -> list[str]:
    """Compiler flags; ``AMPNET_MARCH`` (default ``native``) picks the instruction set."""
    return [
        "-O3",
        f"-march={os.environ.get('AMPNET_MARCH', 'native')}",
        "-fPIC",
        "-shared",
        "-std=c99",
    ]


_float_p = ctypes.POINTER(ctypes.c_float)
_int_p = ctypes.POINTER(ctypes.c_int)
_addr = ctypes.c_void_p  # blocks are passed as raw addresses: no ctypes objects per call


def cache_dir() -> Path:
    """Where compiled kernels live: ``$AMPNET_CACHE`` or ``~/.cache/ampnet``."""
    root = (
        os.environ.get("AMPNET_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ampnet"
    )
    return Path(root) / "kernels"


def _writable(folder: Path) -> Path:
    """``folder``, created; or a per-user temporary folder when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / f"ampnet-kernels-{os.getuid()}"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def _cpu_identity() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return next(
            (line for line in text.splitlines() if line.startswith(("flags", "Features"))), ""
        )
    except OSError:
        return platform.processor()


def _compiler() -> str | None:
    return (
        os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    )


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The loaded kernel library, compiling it if needed; None when it cannot be built."""
    if os.environ.get("AMPNET_NO_NATIVE"):
        return None
    compiler = _compiler()
    if compiler is None or sys.platform == "win32":
        return None
    key = hashlib.sha256(
        SOURCE.read_bytes()
        + " ".join([compiler, *flags(), platform.machine(), _cpu_identity()]).encode()
    ).hexdigest()[:16]
    path = _writable(cache_dir()) / f"amp-{key}.so"
    if not path.is_file():
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.so")
        result = subprocess.run(
            [compiler, *flags(), "-o", str(tmp), str(SOURCE), "-lm"], capture_output=True, text=True
        )
        if result.returncode != 0:
            tmp.unlink(missing_ok=True)
            detail = result.stderr.strip()[:300]
            warnings.warn(
                f"ampnet: native kernels not built, using PyTorch ({detail})", stacklevel=2
            )
            return None
        os.replace(tmp, path)
    lib = ctypes.CDLL(str(path))
    lib.wavenet_create.restype = ctypes.c_void_p
    lib.wavenet_create.argtypes = [_int_p, ctypes.c_int, _float_p, ctypes.c_long, ctypes.c_int]
    lib.lstm_create.restype = ctypes.c_void_p
    lib.lstm_create.argtypes = [ctypes.c_int] * 4 + [_float_p, ctypes.c_long]
    for name in ("wavenet", "lstm"):
        getattr(lib, f"{name}_process").argtypes = [
            ctypes.c_void_p,
            _addr,
            ctypes.c_int,
            _addr,
            ctypes.c_int,
        ]
        getattr(lib, f"{name}_reset").argtypes = [ctypes.c_void_p]
        getattr(lib, f"{name}_destroy").argtypes = [ctypes.c_void_p]
    return lib


def available() -> bool:
    return library() is not None


def _ptr(array: np.ndarray, kind=_float_p):
    return array.ctypes.data_as(kind)


class NativeModel:
    """A model's state in the native kernel: ``process(x, out)`` runs one block.

    ``x`` is ``(channels, n)`` float32 with contiguous rows (audio first, then any
    knobs), ``out`` ``(n,)`` float32 contiguous; the state carries over between calls
    until :meth:`reset`.
    """

    def __init__(self, model: WaveNet | LSTM, max_block: int = 4096):
        lib = library()
        if lib is None:
            raise RuntimeError("native kernels are not available on this machine")
        self._lib = lib
        if isinstance(model, WaveNet):
            self._kind = "wavenet"
            config = wavenet_kernel_config(model)
            weights = wavenet_weights(model)
            self._handle = lib.wavenet_create(
                _ptr(config, _int_p), len(config), _ptr(weights), len(weights), max_block
            )
        elif isinstance(model, LSTM):
            self._kind = "lstm"
            weights = lstm_weights(model)
            self._handle = lib.lstm_create(
                model.input_size,
                model.hidden_size,
                model.num_layers,
                int(model.input_skip),
                _ptr(weights),
                len(weights),
            )
        else:
            raise TypeError(f"no native kernel for {type(model).__name__}")
        if not self._handle:
            raise ValueError(f"the native kernel refused this {type(model).__name__}'s layout")
        self.channels = model.input_channels
        self._process = getattr(lib, f"{self._kind}_process")

    def process(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        if x.dtype != np.float32 or x.strides[-1] != 4 or x.shape[0] != self.channels:
            raise ValueError(f"expected ({self.channels}, n) float32 rows, got {x.dtype} {x.shape}")
        if out.dtype != np.float32 or not out.flags.c_contiguous or out.shape[0] < x.shape[-1]:
            raise ValueError("out must be a contiguous float32 array of at least n samples")
        self.bind(x, out)(x.shape[-1])
        return out

    def bind(self, x: np.ndarray, out: np.ndarray):
        """A function ``run(n)`` that processes ``x[:, :n]`` into ``out[:n]``: fixed buffers,
        addresses taken once, so the per-block call allocates nothing."""
        x_addr, out_addr = x.__array_interface__["data"][0], out.__array_interface__["data"][0]
        stride, process, handle = x.strides[0] // 4, self._process, self._handle
        return lambda n: process(handle, x_addr, stride, out_addr, n)

    def reset(self) -> None:
        getattr(self._lib, f"{self._kind}_reset")(self._handle)

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            getattr(self._lib, f"{self._kind}_destroy")(handle)
