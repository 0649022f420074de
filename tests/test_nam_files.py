"""Every ``.nam`` NAM's engine plays, ampnet plays the same way: the engine's own example
models against its golden renders (``../shared/nam-core``: block 64, exact tanh, prewarm
on), offline, streamed in blocks of 1, 63, 64 and 4096, and through ``ampnet.process``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from ampnet import kernels
from ampnet.formats import load_model_file
from ampnet.stream import Streamer, render

from .conftest import SHARED, run_module

CORE = SHARED.parent / "nam-core"
pytestmark = pytest.mark.skipif(
    not (CORE / "golden" / "input.wav").is_file(), reason=f"NAM's engine files not found at {CORE}"
)


def goldens() -> list[tuple[str, float | None]]:
    """(example name, size) for every golden render: ``<name>.wav`` or ``<name>_slim<V>.wav``."""
    if not (CORE / "golden").is_dir():
        return []
    cases = []
    for path in sorted((CORE / "golden").glob("*.wav")):
        if path.stem == "input":
            continue
        name, _, size = path.stem.partition("_slim")
        cases.append((name, float(size) if size else None))
    return cases


def golden(name: str, size: float | None) -> np.ndarray:
    stem = name if size is None else f"{name}_slim{size:g}"
    if not (CORE / "golden" / f"{stem}.wav").is_file():
        stem = f"{name}_slim{size}"
    return sf.read(CORE / "golden" / f"{stem}.wav", dtype="float32")[0]


def assert_engine_like(y: np.ndarray, expected: np.ndarray) -> None:
    esr = float(np.sum((y - expected) ** 2) / np.sum(expected**2))
    assert esr <= 1e-8, esr
    assert float(np.abs(y - expected).max()) <= 1e-4


def stream(streamer: Streamer, x: np.ndarray, block: int) -> np.ndarray:
    return np.concatenate([streamer.process(x[i : i + block]) for i in range(0, len(x), block)])


CASES = goldens()
IDS = [f"{n}" if s is None else f"{n}@{s:g}" for n, s in CASES]


def test_the_engine_examples_are_all_here():
    assert len(CASES) >= 16 and {"A2", "wavenet_a2_max", "wavenet_condition_dsp"} <= {
        n for n, _ in CASES
    }


@pytest.mark.parametrize("name, size", CASES, ids=IDS)
def test_every_engine_example_plays_like_the_engine(name, size):
    x = sf.read(CORE / "golden" / "input.wav", dtype="float32")[0]
    model = load_model_file(CORE / "examples" / f"{name}.nam", size).model
    assert_engine_like(render(model, x), golden(name, size))


# Streaming runs on the native kernel (every example file does) and checks the engine's
# start and state over the first part of each render (the whole at 4096). A size of 1.0
# plays what no size plays, so those renders are checked offline only.
STREAMED = [(n, s) for n, s in CASES if s != 1.0]
SECONDS = {1: 0.1, 63: 1.0, 64: 1.0, 4096: 3.0}


@pytest.mark.slow
@pytest.mark.parametrize("block", [1, 63, 64, 4096])
@pytest.mark.parametrize(
    "name, size", STREAMED, ids=[f"{n}" if s is None else f"{n}@{s:g}" for n, s in STREAMED]
)
def test_every_engine_example_streams_like_the_engine(name, size, block):
    x = sf.read(CORE / "golden" / "input.wav", dtype="float32")[0]
    x = x[: int(SECONDS[block] * 48000)]
    streamer = Streamer.from_file(CORE / "examples" / f"{name}.nam", size=size)
    assert streamer.backend == "native" or not kernels.available()
    assert_engine_like(stream(streamer, x, block), golden(name, size)[: len(x)])


@pytest.mark.slow
def test_process_plays_containers_at_the_size_asked(tmp_path):
    for name, size in [("A2", 0.3), ("slimmable_container", 0.0), ("slimmable_wavenet", 0.5)]:
        out = tmp_path / f"{name}.wav"
        result = run_module(
            "ampnet.process",
            str(CORE / "golden" / "input.wav"),
            "-o",
            str(out),
            "--model",
            str(CORE / "examples" / f"{name}.nam"),
            "--size",
            str(size),
            "-q",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert_engine_like(sf.read(out, dtype="float32")[0], golden(name, size))


def test_the_sizes_a_container_offers_are_reported():
    loaded = load_model_file(CORE / "examples" / "A2.nam")
    assert loaded.sizes == [0.5, 1.0]
    small = load_model_file(CORE / "examples" / "A2.nam", size=0.3).model
    assert small.layer_arrays[0].channels == 3 and loaded.model.layer_arrays[0].channels == 8


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda d: d.update(architecture="Transformer"),
            "architecture 'Transformer' is not supported",
        ),
        (
            lambda d: d["config"]["layers"][0].update(fancy_new_key=1),
            "unsupported layer-array key 'fancy_new_key'",
        ),
        (
            lambda d: d["config"].update(mixture_of_experts=4),
            "unsupported WaveNet key 'mixture_of_experts'",
        ),
    ],
)
def test_a_file_from_a_future_nam_is_one_clear_line(change, expected, tmp_path):
    data = json.loads((CORE / "examples" / "wavenet.nam").read_text())
    change(data)
    (tmp_path / "future.nam").write_text(json.dumps(data))
    sf.write(tmp_path / "in.wav", np.zeros(1000, np.float32), 48000)
    result = run_module(
        "ampnet.process", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.wav"),
        "--model", str(tmp_path / "future.nam"),
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "future.nam" in line and expected in line, line
    assert not (tmp_path / "o.wav").exists()
