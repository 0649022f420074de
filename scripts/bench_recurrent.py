"""Recurrent models on the CPU: a GRU's training step with ampnet's native recurrence
against PyTorch's own ``nn.GRU`` (and an LSTM's, which PyTorch runs fused), in one run.

    .venv/bin/python scripts/bench_recurrent.py [--hidden 24 64] [--window 20480]

One training step is forward and backward over a batch of 2 windows of ``--window``
samples plus the 4,096-sample burn-in (the default recipe's shape), one thread, median of
3 after a warm-up; ``nn.GRU`` is timed on a tenth of the window and scaled (it is linear
in time steps). Then the streaming real-time factor at 64-sample blocks, one thread, for
the GRU and the LSTM, native kernel and PyTorch path, and for the diagonal state-space
models (``model=s4d`` and ``model=s4d_large``), whose recurrence runs natively too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ampnet.kernels import recurrence
from ampnet.models import GRU, LSTM, S4D
from ampnet.stream import Streamer

RATE = 48000
S4D_PRESETS = {  # conf/model/s4d.yaml and s4d_large.yaml
    "s4d": {"hidden_size": 16, "state_size": 16, "num_layers": 2},
    "s4d_large": {"hidden_size": 32, "state_size": 32, "num_layers": 3},
}


def step_seconds(model, steps: int, native: bool, repeats: int = 3) -> float:
    x = 0.3 * torch.randn(2, 1, steps)
    saved = recurrence.native_ok
    if not native:
        recurrence.native_ok = lambda *_: False
    try:

        def run():
            model.zero_grad()
            model(x).square().mean().backward()

        run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    finally:
        recurrence.native_ok = saved
    return statistics.median(times)


def stream_rtf(model, backend: str, seconds: float = 5.0, block: int = 64) -> float:
    x = (0.3 * np.random.default_rng(0).standard_normal(int(seconds * RATE))).astype(np.float32)
    streamer = Streamer(model, max_block=block, backend=backend)
    out = np.empty(block, np.float32)
    start = time.perf_counter()
    for i in range(0, len(x) - block + 1, block):
        streamer.process(x[i : i + block], out)
    return (time.perf_counter() - start) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[24, 64])
    parser.add_argument("--window", type=int, default=20480)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = args.window + 4096
    print(f"one training step, batch 2 x {steps} samples, 1 thread (seconds; lower is faster)")
    for hidden in args.hidden:
        torch.manual_seed(0)
        gru, lstm = GRU(hidden_size=hidden, burn_in=0), LSTM(hidden_size=hidden, burn_in=0)
        native = step_seconds(gru, steps, native=True)
        plain = step_seconds(gru, steps // 10, native=False, repeats=1) * 10
        fused = step_seconds(lstm, steps, native=True)
        print(
            f"  hidden {hidden}: GRU native {native:.3f} | GRU nn.GRU {plain:.2f} "
            f"({plain / native:.0f}x slower) | LSTM (PyTorch fused) {fused:.3f}"
        )
    print("streaming real-time factor, 64-sample blocks, 1 thread (lower is faster)")
    for hidden in args.hidden:
        for cls in (GRU, LSTM):
            model = cls(hidden_size=hidden).eval()
            fast, slow = stream_rtf(model, "native"), stream_rtf(model, "torch", seconds=1.0)
            print(
                f"  {cls.__name__} {hidden}: native {fast:.4f} | PyTorch {slow:.3f} "
                f"({slow / fast:.0f}x slower)"
            )
    for name, shape in S4D_PRESETS.items():
        torch.manual_seed(0)
        model = S4D(**shape).eval()
        fast, slow = stream_rtf(model, "native"), stream_rtf(model, "torch", seconds=1.0)
        print(f"  {name}: native {fast:.4f} | PyTorch {slow:.3f} ({slow / fast:.0f}x slower)")


if __name__ == "__main__":
    main()
