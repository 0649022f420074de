"""The training step, side by side with NAM 0.13: milliseconds per step of the same network.

    .venv/bin/python scripts/bench_step.py                      # wavenet, a2, wavenet_a1
    .venv/bin/python scripts/bench_step.py --models a2 --threads 1 2

One step is what a training loop does per batch: forward over ``--batch`` windows of
``--samples`` targets (plus the receptive field), a squared-error loss, backward and one
Adam update. Each row times, in the same process and interleaved, ampnet's model with its
tap-wise CPU backward of the dilated convolutions (``ampnet.models.conv``, the default),
the same model with PyTorch's own convolution backward, and (WaveNets) NAM 0.13's model
built from the same weights (``nam.models._from_nam.init_from_nam`` on the model's
``.nam`` config), on the same batch; ``--batch 16 --samples 8192`` is NAM's batch.
Prints the medians and the ratios NAM / ampnet and PyTorch's / ampnet's. The whole
training command (data, validation, checkpoints) is ``bench_training.py``'s and
``bench_capture.py``'s business; this is the loop's core, where the two tools differ.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_inference  # noqa: E402

from ampnet.models import WaveNet  # noqa: E402
from ampnet.models import conv as conv_module  # noqa: E402


def step_fn(model, x, forward):
    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def step():
        y = forward(model, x)
        y.square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def time_steps(fns: dict, repeats: int) -> dict:
    """Median seconds per call of each function, interleaved round by round."""
    times = {k: [] for k in fns}
    for fn, tap_wise in fns.values():  # one warm-up each
        conv_module.TAP_WISE = tap_wise
        fn()
    for _ in range(repeats):
        for name, (fn, tap_wise) in fns.items():
            conv_module.TAP_WISE = tap_wise
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    conv_module.TAP_WISE = True
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["wavenet", "a2", "wavenet_a1"])
    parser.add_argument("--batch", type=int, default=2, help="windows per batch (data/pair: 2)")
    parser.add_argument("--samples", type=int, default=16384, help="targets per window")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, torch.get_num_threads()])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"training step, ms (forward + backward + Adam), batch {args.batch} x {args.samples}")
    print("model | threads | ampnet | ampnet, PyTorch's conv backward | NAM 0.13 | NAM / ampnet | PyTorch's / ampnet")  # fmt: skip
    for name in args.models:
        model = bench_inference.row_model(name).train()
        x = torch.randn(args.batch, 1, model.receptive_field - 1 + args.samples) * 0.3
        fns = {"ampnet": (step_fn(model, x, lambda m, x: m(x)), True)}
        fns["pytorch"] = (fns["ampnet"][0], False)
        if isinstance(model, WaveNet):  # NAM's own network with the same weights
            nam = bench_inference.nam_model(model).train()
            fns["nam"] = (step_fn(nam, x[:, 0], lambda m, x: m(x, pad_start=False)), True)
        for threads in dict.fromkeys(args.threads):
            torch.set_num_threads(threads)
            t = {k: v * 1e3 for k, v in time_steps(fns, args.repeats).items()}
            nam_ms = f"{t['nam']:.0f} | {t['nam'] / t['ampnet']:.2f}" if "nam" in t else "- | -"
            print(f"{name} | {threads} | {t['ampnet']:.0f} | {t['pytorch']:.0f} | {nam_ms} | "
                  f"{t['pytorch'] / t['ampnet']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
