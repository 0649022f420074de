"""Inference speed: ampnet against NAM 0.13's Python forward and NAM's C++ engine, in one run.

    python scripts/bench_inference.py [--seconds 5] [--models wavenet,lstm] [--json out.json]
    python scripts/bench_inference.py --engine-only      # just the table against NAM's engine
    python scripts/bench_inference.py --features         # A2 with 0.7 layer features, against it
    python scripts/bench_inference.py --families         # every model family, native and PyTorch

For each preset: offline throughput (samples/s, and x real time at 48 kHz) on 1 thread
and on all threads, for ampnet (native kernels, and its PyTorch fallback) and for NAM
running the same weights (the WaveNets through a .nam export read by NAM's own loader;
the LSTM as an equal-shaped NAM LSTM, which has no input skip); then ampnet's streaming
real-time factor (compute time / audio time) at blocks of 32, 64 and 256 samples on one
thread, and NAM's only streaming option (re-running the receptive field every block)
for comparison. Random weights: speed does not depend on them.

Against NAM's engine (``../shared/nam-core``, the plugin's DSP core, built with
``build.sh native`` for the instruction set ampnet's kernel uses): A1 standard, A2-Full
(LeakyReLU, and with SiLU, gated, tanh), ampnet's default (A2 with tanh at 10 channels),
A2-Lite and a 1x24 LSTM, the same weights in both (through a ``.nam``), one thread, blocks
of 32, 64 and 256, the real-time factor of ``Streamer.process`` (what a Python host pays),
of the bound kernel called from a Python loop, and of the kernel in a C loop timed in C
(what a plugin pays, and what the engine's own ``bench`` times around its ``process()``),
the median of three runs interleaved with the engine's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ampnet import kernels
from ampnet.data.synth import synth_di
from ampnet.formats.nam import to_nam, wavenet_to_nam
from ampnet.models import WaveNet
from ampnet.stream import Streamer, render

REPO = Path(__file__).resolve().parents[1]
ENGINE = (
    Path(os.environ.get("AMPNET_SHARED_DATA", REPO.parent / "shared" / "data")).parent / "nam-core"
)
RATE = 48000
# model=a2 is NAM's A2-Full layout, model=wavenet (the default) the same with tanh at 10
# channels; wavenet_a1 is NAM's A1 standard.
PRESETS = [
    "wavenet_a1",
    "wavenet_lite",
    "wavenet_feather",
    "wavenet_nano",
    "lstm",
    "a2",
    "wavenet",
    "a2_lite",
]
ENGINE_ROWS = {
    "A1 standard": "wavenet_a1",
    "A2-Full": "a2",
    "A2-Full SiLU": "wavenet_silu",  # the engine's general path: its A2 fast path is LeakyReLU's
    "A2 gated 6ch": "wavenet_gated",  # the general path too (its gated layers)
    "A2-Full Tanh": "wavenet_tanh",  # the general path too
    "A2 Tanh 10ch": "wavenet",  # ampnet's default; the general path too
    "A2-Lite": "a2_lite",
    "LSTM 1x24": "lstm_nam",
}
_FILM = {"active": True, "shift": True, "groups": 1}
# --features: A2-Full with NAM 0.6/0.7 layer features the engine also plays (its general
# path; its A2 fast path is for the plain layout), blocks of 64
FEATURE_ROWS = {
    "A2 blended": ("a2", {"gating_mode": "blended", "secondary_activation": "Sigmoid"}),
    "A2 2 FiLMs": ("a2", {"conv_post_film": _FILM, "activation_post_film": _FILM}),
    "A2 head1x1": ("a2", {"head1x1": {"active": True, "out_channels": 8, "groups": 1}}),
    "A2 grouped": ("a2", {"groups_input": 2, "layer1x1": {"active": True, "groups": 2}}),
}


# --families: each family's presets streamed natively and on PyTorch (64-sample blocks, one
# thread); a preset with "+knobs" takes two knobs, held
FAMILY_ROWS = [
    "wavenet", "a2", "a2_lite", "lstm", "gru", "gcn", "gcn_long", "tcn", "tcn_long", "tcn_tfilm",
    "s4d", "s4d_large", "graybox", "graybox_rational", "graybox_cab", "graybox+knobs",
]  # fmt: skip
KNOBS = {"drive": 0.3, "tone": 0.6}


def preset(name: str, seed: int = 0):
    """A model preset as ``python -m ampnet.train model=<name>`` builds it, random weights."""
    name, _, knobs = name.partition("+")
    overrides = [f"model={name}"] + ([f"+model.params=[{','.join(KNOBS)}]"] if knobs else [])
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    torch.manual_seed(seed)
    return instantiate(cfg.model).eval()


def row_model(spec):
    """A preset (``"wavenet"``), or ``(preset, changes)``: its first layer array with 0.7
    keys changed (random weights, as every row here)."""
    if isinstance(spec, str):
        return preset(spec)
    name, change = spec
    base = preset(name)
    layers = [a.full_config() for a in base.layer_arrays]
    layers[0].update(change)
    torch.manual_seed(0)
    return WaveNet(layers, head_scale=base.head_scale).eval()


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
    params = {k: KNOBS[k] for k in getattr(model, "params", None) or ()}
    streamer = Streamer(model, max_block=block, backend=backend, params=params or None)
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
    parser.add_argument(
        "--models", default=None, help="comma-separated presets (default: all of the table's)"
    )
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument(
        "--engine-only", action="store_true", help="only the table against NAM's engine"
    )
    parser.add_argument(
        "--features",
        action="store_true",
        help="only A2 with 0.7 layer features (blended, FiLM, head1x1, groups) against the engine",
    )
    parser.add_argument(
        "--families",
        action="store_true",
        help="only every model family's presets, native and on PyTorch, at 64-sample blocks",
    )
    args = parser.parse_args()
    if args.families:
        family_table(
            args.seconds, args.json, args.models.split(",") if args.models else FAMILY_ROWS
        )
        return
    if args.engine_only or args.features:
        engine_table(args.json, FEATURE_ROWS if args.features else ENGINE_ROWS,
                     (64,) if args.features else (32, 64, 256))  # fmt: skip
        return

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
    for name in (args.models or ",".join(PRESETS)).split(","):
        model = preset(name)
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
    results["engine"] = engine_table(None)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def engine_table(json_path: str | None, specs=ENGINE_ROWS, blocks=(32, 64, 256)) -> dict:
    """ampnet's streaming real-time factor next to NAM's engine's, same weights, same input."""
    build = subprocess.run(
        ["bash", str(ENGINE / "build.sh"), "native"], capture_output=True, text=True
    )
    if build.returncode != 0:
        print(f"\nNAM's engine: not built ({build.stderr.strip()[-200:]}); no engine rows")
        return {}
    tool = build.stdout.strip().splitlines()[-1]
    di = REPO.parent / "shared" / "data" / "di.wav"
    x = sf.read(di, dtype="float32")[0] if di.is_file() else synth_input(30.0)
    torch.set_num_threads(1)
    rows: dict = {}
    print(
        f"\nstreaming against NAM's engine (native build), 1 thread, {len(x) / RATE:.1f} s of "
        "audio, median of 3; real-time factor (lower is faster)"
    )
    print(
        f"{'model':12s} {'block':>5s} {'ampnet Streamer':>16s} {'kernel call':>12s} {'C loop':>8s} "
        f"{'engine':>8s} {'Streamer/engine':>16s} {'C loop/engine':>14s}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "in.wav"
        sf.write(wav, x, RATE, subtype="FLOAT")
        for i, (label, spec) in enumerate(specs.items()):
            model = row_model(spec)
            path = Path(tmp) / f"model{i}.nam"
            path.write_text(json.dumps(to_nam(model, RATE)))
            for block in blocks:
                ours, call, loop, theirs = [], [], [], []
                for _ in range(3):  # interleaved, so a busy moment hits both tools
                    ours.append(stream_rtf_once(model, x, block))
                    call.append(kernel_rtf_once(model, x, block))
                    loop.append(c_loop_rtf_once(model, x, block))
                    out = subprocess.run(
                        [tool, "bench", str(path), str(wav), "--block", str(block), "--reps", "1"],
                        capture_output=True, text=True,
                    )  # fmt: skip
                    theirs.append(float(out.stdout.split()[-1]))
                o, c, c_loop, t = (statistics.median(v) for v in (ours, call, loop, theirs))
                rows[f"{label} @{block}"] = {
                    "ampnet": o, "kernel_call": c, "c_loop": c_loop, "engine": t,
                }  # fmt: skip
                print(
                    f"{label:12s} {block:5d} {o:16.4f} {c:12.4f} {c_loop:8.4f} {t:8.4f} "
                    f"{o / t:16.2f} {c_loop / t:14.2f}"
                )
    if json_path:
        Path(json_path).write_text(json.dumps({"engine": rows}, indent=2))
    return rows


def family_table(seconds: float, json_path: str | None, names: list[str] = FAMILY_ROWS) -> dict:
    """Streamer real-time factors of every family's presets, native kernel and PyTorch, and
    the kernel in a C loop: 64-sample blocks, one thread, the median of 3 after a warm-up."""
    x = synth_input(seconds)
    print(f"every family at 64-sample blocks, one thread, {seconds:g} s of synthetic DI")
    print("| model | params | Streamer, native | Streamer, PyTorch | C loop | PyTorch / native |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for name in names:
        model = preset(name)
        why = kernels.unsupported(model)
        native = float("nan") if why else stream_rtf(model, x, 64, "native")
        c_loop = float("nan") if why else statistics.median(
            c_loop_rtf_once(model, x, 64) for _ in range(3)
        )  # fmt: skip
        fallback = stream_rtf(model, x, 64, "torch")
        params = sum(p.numel() for p in model.parameters())
        rows[name] = {"parameters": params, "native": native, "torch": fallback, "c_loop": c_loop}
        ratio = f"{fallback / native:.0f}x" if not why else f"no kernel: {why}"
        print(f"| `{name}` | {params} | {native:.4f} | {fallback:.3f} | {c_loop:.4f} | {ratio} |")
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2))
    return rows


def synth_input(seconds: float) -> np.ndarray:
    return synth_di(seconds=seconds, seed=5)


def stream_rtf_once(model, x: np.ndarray, block: int) -> float:
    streamer = Streamer(model, max_block=block)
    out = np.empty(block, np.float32)
    start = time.perf_counter()
    for i in range(0, len(x) - block + 1, block):
        streamer.process(x[i : i + block], out)
    return (time.perf_counter() - start) / (len(x) / RATE)


def kernel_rtf_once(model, x: np.ndarray, block: int) -> float:
    """The native kernel called directly on fixed buffers: no Python streamer around it."""
    if kernels.unsupported(model):
        return float("nan")
    native = kernels.NativeModel(model, max_block=block)
    xb, out = np.zeros((1, block), np.float32), np.empty(block, np.float32)
    run = native.bind(xb, out)
    start = time.perf_counter()
    for i in range(0, len(x) - block + 1, block):
        xb[0] = x[i : i + block]
        run(block)
    return (time.perf_counter() - start) / (len(x) / RATE)


def c_loop_rtf_once(model, x: np.ndarray, block: int) -> float:
    """The kernel streamed in a C loop and timed in C around the calls, as the engine's
    ``bench`` times its ``process()``: what a plugin (a C host) pays, no Python per block."""
    if kernels.unsupported(model):
        return float("nan")
    knobs = [np.full_like(x, KNOBS[k]) for k in getattr(model, "params", None) or ()]
    rows = np.stack([x, *knobs])  # a knob model's knobs held, as the Streamer rows above
    seconds, _ = kernels.NativeModel(model, max_block=block).time_blocks(rows, block)
    return seconds / (len(x) // block * block / RATE)


if __name__ == "__main__":
    main()
