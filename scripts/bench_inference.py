"""Inference speed: ampnet against NAM 0.13's Python forward, measured in the same run.

    python scripts/bench_inference.py [--seconds 5] [--models wavenet,lstm] [--json out.json]

For each preset: offline throughput (samples/s, and x real time at 48 kHz) on 1 thread
and on all threads, for ampnet (native kernels, and its PyTorch fallback) and for NAM
running the same weights (the WaveNets through a .nam export read by NAM's own loader;
the LSTM as an equal-shaped NAM LSTM, which has no input skip); then ampnet's streaming
real-time factor (compute time / audio time) at blocks of 32, 64 and 256 samples on one
thread, and NAM's only streaming option (re-running the receptive field every block)
for comparison. Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ampnet import kernels
from ampnet.formats.nam import wavenet_to_nam
from ampnet.models import WaveNet
from ampnet.stream import Streamer, render

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
RATE = 48000
PRESETS = ["wavenet", "wavenet_lite", "wavenet_feather", "wavenet_nano", "lstm"]


def timed(fn, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def nam_model(model):
    """NAM 0.13's own model with the same weights (WaveNet) or the same shape (LSTM)."""
    from nam.models._from_nam import init_from_nam
    from nam.models.recurrent import LSTM as NamLSTM

    if isinstance(model, WaveNet):
        return init_from_nam(json.loads(json.dumps(wavenet_to_nam(model, RATE)))).eval()
    return NamLSTM(
        hidden_size=model.hidden_size, num_layers=model.num_layers, sample_rate=RATE
    ).eval()


def offline_rates(model, nam, x: np.ndarray, threads: int) -> dict:
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x)
    n = len(x)
    with torch.inference_mode():
        nam_s = timed(lambda: nam(xt, pad_start=True))
        torch_s = timed(lambda: render(model, x, threads=threads, backend="torch", chunk=n))
    ours_s = (
        timed(lambda: render(model, x, threads=threads)) if kernels.available() else float("nan")
    )
    return {"ampnet": n / ours_s, "ampnet_torch": n / torch_s, "nam": n / nam_s}


def stream_rtf(model, x: np.ndarray, block: int, backend: str) -> float:
    torch.set_num_threads(1)
    streamer = Streamer(model, max_block=block, backend=backend)
    out = np.empty(block, np.float32)
    blocks = [x[i : i + block] for i in range(0, len(x) - block + 1, block)]

    def run():
        for b in blocks:
            streamer.process(b, out)

    return timed(run) / (len(blocks) * block / RATE)


def nam_stream_rtf(nam, x: np.ndarray, block: int, receptive_field: int) -> float:
    """NAM has no streaming state: each block is run with the receptive field before it."""
    torch.set_num_threads(1)
    xt = torch.from_numpy(np.concatenate([np.zeros(receptive_field - 1, np.float32), x]))
    starts = range(receptive_field - 1, len(xt) - block + 1, block)

    def run():
        with torch.inference_mode():
            for s in starts:
                nam(xt[s - receptive_field + 1 : s + block], pad_start=False)

    return timed(run, repeats=1) / (len(starts) * block / RATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="audio per offline measurement")
    parser.add_argument("--models", default=",".join(PRESETS))
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()

    all_threads = os.cpu_count() or 1
    x = (0.3 * np.random.default_rng(0).standard_normal(int(args.seconds * RATE))).astype(
        np.float32
    )
    short = x[: RATE // 2]
    print(
        f"native kernels: {'yes' if kernels.available() else 'NO (PyTorch fallback only)'}; "
        f"{all_threads} threads; {args.seconds:g} s of audio at {RATE} Hz; torch {torch.__version__}"
    )
    results = {}
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = instantiate(OmegaConf.load(CONF / f"{name}.yaml")).eval()
        nam = nam_model(model)
        row = {"parameters": sum(p.numel() for p in model.parameters())}
        for threads in sorted({1, all_threads}):
            row[f"offline_{threads}t"] = offline_rates(model, nam, x, threads)
        for block in (32, 64, 256):
            row[f"stream_{block}"] = stream_rtf(model, x[: 2 * RATE], block, "auto")
        row["stream_64_torch"] = stream_rtf(model, x[: RATE // 2], 64, "torch")
        if isinstance(model, WaveNet):
            row["stream_64_nam"] = nam_stream_rtf(nam, short, 64, model.receptive_field)
        results[name] = row
        print(f"\n{name} ({row['parameters']} parameters)")
        for threads in sorted({1, all_threads}):
            r = row[f"offline_{threads}t"]
            print(
                f"  offline {threads} thread{'s' if threads > 1 else ''}: ampnet {r['ampnet'] / 1e6:6.2f} M samples/s "
                f"({r['ampnet'] / RATE:5.0f}x real time) | ampnet PyTorch {r['ampnet_torch'] / 1e6:5.2f} M/s | "
                f"NAM {r['nam'] / 1e6:5.2f} M/s ({r['nam'] / RATE:4.0f}x) | ampnet / NAM = {r['ampnet'] / r['nam']:.1f}x"
            )
        rtf = " ".join(
            f"{b}: {row[f'stream_{b}']:.3f} ({1 / row[f'stream_{b}']:.0f}x)" for b in (32, 64, 256)
        )
        print(f"  streaming real-time factor, 1 thread, by block size: {rtf}")
        line = f"  at 64: PyTorch fallback {row['stream_64_torch']:.2f}"
        if "stream_64_nam" in row:
            line += f" | NAM re-running the receptive field {row['stream_64_nam']:.2f}"
            line += f" | ampnet faster by {row['stream_64_nam'] / row['stream_64']:.0f}x"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
