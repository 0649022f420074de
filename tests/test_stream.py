"""Streaming: block by block equals offline, adds no latency, allocates nothing per block."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from ampnet import kernels
from ampnet.models import GRU, LSTM, WaveNet
from ampnet.stream import Streamer, render

MIXED = [
    {
        "input_size": 1,
        "condition_size": 1,
        "channels": 6,
        "head_size": 4,
        "kernel_size": 3,
        "dilations": [1, 2, 4, 8, 16],
        "activation": "Tanh",
        "gated": False,
        "head_bias": False,
    },
    {
        "input_size": 6,
        "condition_size": 1,
        "channels": 4,
        "head_size": 1,
        "kernel_size": 2,
        "dilations": [32, 1, 64],
        "activation": "Tanh",
        "gated": True,
        "head_bias": True,
    },
]
BACKENDS = ["native", "torch"] if kernels.available() else ["torch"]
GLUE = [True, False] if kernels.block_type() is not None else [False]


def without_glue(streamer: Streamer) -> Streamer:
    """The same streamer calling its kernel through ctypes (as where pyblock.c cannot build)."""
    streamer._fast = None
    return streamer


GLUE = [True, False] if kernels.block_type() is not None else [False]


def models():
    torch.manual_seed(0)
    return {
        "wavenet": WaveNet(MIXED).eval(),
        "wavenet_relu": WaveNet(
            [{**MIXED[0], "activation": "ReLU"}, {**MIXED[1], "activation": "SiLU"}]
        ).eval(),
        "lstm": LSTM(hidden_size=12, num_layers=2).eval(),
        "gru": GRU(hidden_size=12, num_layers=2).eval(),
    }


def offline(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)[None, None], pad_start=True)[0, 0].numpy()


def signal(n: int = 9000, seed: int = 0) -> np.ndarray:
    return (0.4 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def stream(streamer: Streamer, x: np.ndarray, sizes) -> np.ndarray:
    out, pos, i = [], 0, 0
    while pos < len(x):
        size = sizes[i % len(sizes)]
        out.append(streamer.process(x[pos : pos + size]))
        pos, i = pos + size, i + 1
    return np.concatenate(out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["wavenet", "wavenet_relu", "lstm", "gru"])
@pytest.mark.parametrize(
    "sizes", [[1], [2], [63], [64], [128], [4096], [1, 7, 64, 300, 2, 4096, 33]]
)
def test_stream_equals_offline_for_any_block_sizes(name, sizes, backend):
    model = models()[name]
    x = signal(6000 if sizes != [1] else 1500)
    streamer = Streamer(model, max_block=512, backend=backend)
    assert streamer.backend == backend
    np.testing.assert_allclose(stream(streamer, x, sizes), offline(model, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_adds_no_latency(backend):
    model = models()["wavenet"]
    silence = Streamer(model, backend=backend).process(np.zeros(200, np.float32))
    x = np.zeros(200, np.float32)
    x[120] = 0.5
    y = Streamer(model, backend=backend).process(x)
    np.testing.assert_array_equal(y[:120], silence[:120])  # nothing before the impulse moves
    assert abs(y[120] - silence[120]) > 1e-6  # the impulse is heard at its own sample
    assert Streamer(model).latency_samples == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_reset_returns_to_silence(name, backend):
    model = models()[name]
    x = signal(2000)
    streamer = Streamer(model, backend=backend)
    first = streamer.process(x)
    streamer.process(signal(3000, seed=1))
    streamer.reset()
    np.testing.assert_array_equal(streamer.process(x), first)


@pytest.mark.parametrize("glue", GLUE)
def test_per_block_path_does_not_grow_memory(glue):
    model = models()["wavenet"]
    streamer = Streamer(model, max_block=256)
    if not glue:
        without_glue(streamer)
    block, out = signal(64), np.empty(64, np.float32)
    for _ in range(200):
        streamer.process(block, out)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(5000):
        streamer.process(block, out)
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes more after 5000 blocks"


def test_the_python_block_call_builds_where_the_kernels_do():
    if not kernels.available():
        pytest.skip("no native kernels on this machine")
    assert kernels.block_type() is not None, "pyblock.c did not build (are Python.h and cc here?)"
    assert Streamer(models()["lstm"])._fast is not None
    assert Streamer(models()["lstm"], backend="torch")._fast is None


@pytest.mark.parametrize("glue", GLUE)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["wavenet", "lstm", "gru"])
def test_streaming_into_the_callers_buffers_equals_offline(name, backend, glue):
    """One out buffer for every block (written straight into once it comes twice in a row),
    two buffers in turn, and in place: each equals offline."""
    model = models()[name]
    x = signal(4000)
    same, turns = np.empty(128, np.float32), [np.empty(128, np.float32) for _ in range(2)]
    for how in ("same", "turns", "in place"):
        streamer = Streamer(model, max_block=128, backend=backend)
        if not glue:
            without_glue(streamer)
        y, pos, k = [], 0, 0
        while pos < len(x):
            block = x[pos : pos + [64, 64, 7, 128, 100][k % 5]].copy()
            out = {"same": same, "turns": turns[k % 2], "in place": block}[how]
            y.append(streamer.process(block, out)[: len(block)].copy())
            pos, k = pos + len(block), k + 1
        np.testing.assert_allclose(np.concatenate(y), offline(model, x), rtol=0, atol=1e-5)


def test_a_buffer_the_streamer_writes_into_cannot_be_resized_under_it():
    streamer = without_glue(Streamer(models()["wavenet"], max_block=64))
    out = np.empty(64, np.float32)
    for _ in range(3):
        streamer.process(signal(64), out)
    with pytest.raises(ValueError, match="resize"):
        out.resize(1 << 20)


@pytest.mark.skipif(kernels.block_type() is None, reason="pyblock.c does not build here")
@pytest.mark.parametrize("name", ["wavenet", "lstm"])
def test_the_one_call_path_is_the_ctypes_path_sample_for_sample(name):
    """pyblock.c against the ctypes call on every kind of block: float32 and float64,
    strided, longer than max_block, with an input gain; then its out buffer is the
    caller's to resize (the glue holds no reference to it)."""
    model = models()[name]
    x = signal(6000)
    runs = []
    for glue in (True, False):
        streamer = Streamer(model, max_block=100, input_gain_db=-3.0)
        if not glue:
            without_glue(streamer)
        out, y, pos, k = np.empty(400, np.float32), [], 0, 0
        while pos < len(x):
            n = [64, 1, 100, 250, 37][k % 5]
            block = x[pos : pos + n]
            if k % 7 == 3:
                block = block.astype(np.float64)
            if k % 7 == 5:
                block = np.repeat(block, 2)[::2]  # strided: not C-contiguous
            y.append(streamer.process(block, out)[: len(block)].copy())
            pos, k = pos + n, k + 1
        runs.append(np.concatenate(y))
    np.testing.assert_array_equal(runs[0], runs[1])
    gain = np.float32(10 ** (-3 / 20))
    np.testing.assert_allclose(runs[0], offline(model, x * gain), rtol=0, atol=1e-5)
    out = np.empty(64, np.float32)
    streamer = Streamer(model, max_block=64)
    for _ in range(3):
        streamer.process(signal(64), out)
    out.resize(1 << 16, refcheck=True)


@pytest.mark.skipif(kernels.block_type() is None, reason="pyblock.c does not build here")
def test_the_block_glue_refuses_what_it_cannot_run():
    streamer = Streamer(models()["lstm"], max_block=32)
    x, y = np.zeros((1, 32), np.float64), np.zeros(32, np.float32)
    with pytest.raises(TypeError, match="float32"):
        streamer._engine.block(x, y, streamer._engine.bind(streamer._x, y))
    fast = streamer._fast
    assert fast(np.zeros(33, np.float32), np.zeros(33, np.float32)) is None  # too long
    assert fast(np.zeros(8, np.float32), np.zeros(4, np.float32)) is None  # out too short
    assert fast(np.zeros(8, np.int32), np.zeros(8, np.float32)) is None
    assert fast(np.zeros((2, 4), np.float32), np.zeros(8, np.float32)) is None
    assert fast(np.zeros(0, np.float32), np.zeros(8, np.float32)) is None
    assert fast(np.zeros(8, np.float32), np.zeros(8, np.float32)[::-1]) is None
    with pytest.raises(ValueError):  # and the Streamer then says why, as before
        streamer.process(np.zeros(8, np.float32), np.zeros(4, np.float32))


def test_input_gain_is_applied_before_the_model():
    model = models()["wavenet"]
    x = signal(3000)
    louder = Streamer(model, input_gain_db=6.0).process(x)
    np.testing.assert_allclose(louder, offline(model, x * np.float32(10 ** (6 / 20))), atol=1e-5)


def test_blocks_must_be_one_dimensional():
    with pytest.raises(ValueError, match="1-D"):
        Streamer(models()["lstm"]).process(np.zeros((2, 10), np.float32))


@pytest.mark.parametrize("name", ["wavenet", "lstm", "gru"])
@pytest.mark.parametrize("chunk", [997, 4096, 65536])
def test_render_in_chunks_equals_the_whole_file(name, chunk):
    model = models()[name]
    x = signal(40000)
    np.testing.assert_allclose(
        render(model, x, chunk=chunk, threads=1), offline(model, x), rtol=0, atol=1e-6
    )


def test_render_on_several_threads_is_identical():
    model = models()["wavenet"]
    x = signal(60000)
    one = render(model, x, chunk=1000, threads=1)
    np.testing.assert_array_equal(render(model, x, chunk=1000, threads=3), one)


def test_streamer_from_checkpoint_and_from_nam_file(tmp_path):
    import json

    from ampnet.formats.nam import wavenet_to_nam

    from .conftest import write_checkpoint

    model = models()["wavenet"]
    ckpt = write_checkpoint(model, tmp_path / "m.ckpt", sample_rate=44100, input_gain_db=-3.0)
    (tmp_path / "m.nam").write_text(json.dumps(wavenet_to_nam(model, 44100)))
    x = signal(3000)
    from_ckpt = Streamer.from_checkpoint(ckpt)
    assert from_ckpt.sample_rate == 44100
    np.testing.assert_allclose(
        from_ckpt.process(x), offline(model, x * np.float32(10 ** (-3 / 20))), atol=1e-5
    )
    from_nam = Streamer.from_file(tmp_path / "m.nam")
    assert from_nam.sample_rate == 44100
    np.testing.assert_allclose(from_nam.process(x), offline(model, x), atol=1e-5)
