"""Convergence per optimiser step of training-recipe levers, in a bare PyTorch loop.

    OMP_NUM_THREADS=1 python scripts/train_levers.py NAME [key=value ...]

Trains ``model=wavenet`` (or ``model=...``) on ``../shared/data/di.wav`` to a capture
(``cap=ts9_pushed``) with the bench split of ``scripts/bench_training.py``: training on
all but the last 13 s, a 4 s test region, validation on the last 9 s. Validation and
test ESR are printed every ``every`` steps and the history goes to
``outputs/train_levers/NAME.json``. It skips Lightning so that two settings can
run side by side with one thread each: compare them by steps, not by wall time
(wall-time comparisons belong to ``bench_training.py``, one run at a time).

Keys (defaults): ``steps=350 B=16 T=8192 lr=0.004 sched=exp|cos|const warm=0.05
final=0.01 jitter=0 loss=esr|nmse mrstft=0 b2=0.999 clip=1.0 every=25 seed=0
model=wavenet cap=ts9_pushed``. ``sched=exp`` is NAM's (x0.993 per epoch); ``cos`` warms up over
``warm`` of the steps, then decays to ``final`` of the peak. ``jitter=1`` moves the
segment tiling every epoch; ``loss=nmse`` divides the squared error by the training
target's power instead of each batch's (``loss=esr``); ``mrstft=W`` adds a
pre-emphasised multi-resolution STFT term with weight W, ``pre=W`` the squared error of
the pre-emphasised signals over their training power; ``init=xavier`` re-initialises
every convolution (Xavier-uniform weights, zero biases).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ampnet.losses import AmpLoss, PreEmphasis, esr

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AMPNET_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    if len(sys.argv) < 2 or "=" in sys.argv[1]:
        sys.exit("usage: train_levers.py NAME [key=value ...]")
    name, opts = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
    steps, batch = int(opts.get("steps", 350)), int(opts.get("B", 16))
    seg, lr = int(opts.get("T", 8192)), float(opts.get("lr", 0.004))
    sched, every = opts.get("sched", "exp"), int(opts.get("every", 25))
    warm, final = float(opts.get("warm", 0.05)), float(opts.get("final", 0.01))
    jitter, loss_kind = bool(int(opts.get("jitter", 0))), opts.get("loss", "esr")
    seed = int(opts.get("seed", 0))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose("train", overrides=[f"model={opts.get('model', 'wavenet')}"])
    model = instantiate(cfg.model)
    if opts.get("init") == "xavier":  # instead of PyTorch's default (Kaiming uniform, a=sqrt(5))
        for module in model.modules():
            if isinstance(module, torch.nn.Conv1d):
                torch.nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
    rf = model.receptive_field

    di, sr = sf.read(SHARED / "di.wav", dtype="float32")
    y, _ = sf.read(SHARED / f"{opts.get('cap', 'ts9_pushed')}.wav", dtype="float32")
    n = min(len(di), len(y))
    x, y = torch.from_numpy(di[:n]), torch.from_numpy(y[:n])
    val_start, test_start = n - 9 * sr, n - 13 * sr
    regions = {
        "val": (x[val_start - rf + 1 :].view(1, 1, -1), y[val_start:].view(1, 1, -1)),
        "test": (x[test_start - rf + 1 : val_start].view(1, 1, -1), y[test_start:val_start].view(1, 1, -1)),
    }  # fmt: skip
    first = rf - 1
    power = float(y[first:test_start].pow(2).mean())

    def batches():
        while True:
            offset = int(rng.integers(0, seg)) if jitter else 0
            count = (test_start - first - offset) // seg
            order = rng.permutation(count)
            for b in range(count // batch):
                starts = first + offset + order[b * batch : (b + 1) * batch] * seg
                yield (
                    torch.stack([x[t - rf + 1 : t + seg] for t in starts]).unsqueeze(1),
                    torch.stack([y[t : t + seg] for t in starts]).unsqueeze(1),
                )

    per_epoch = (test_start - first) // seg // batch
    b2 = float(opts.get("b2", 0.999))
    opt = torch.optim.Adam(model.parameters(), lr, betas=(0.9, b2))
    warmup = max(1, int(warm * steps))

    def factor(s: int) -> float:
        if sched == "exp":
            return 0.993 ** (s // per_epoch)
        if sched == "const":
            return 1.0
        if s < warmup:
            return (s + 1) / warmup
        progress = min(1.0, (s - warmup) / max(1, steps - warmup))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)

    # the training loss as ampnet.losses.AmpLoss terms: esr or nmse, plus the extra levers
    emphasis = {"kind": "hp", "coef": 0.85}
    pre_power = float(
        PreEmphasis(sample_rate=sr, **emphasis)(y[first:test_start].view(1, 1, -1)).pow(2).mean()
    )
    weights = {
        loss_kind: 1.0,
        "nmse_pre": float(opts.get("pre", 0)),
        "mrstft_pre": float(opts.get("mrstft", 0)),
    }
    amp_loss = AmpLoss(weights, emphasis, sr, signal_power=power, pre_signal_power=pre_power)

    def loss_fn(y_hat, target):
        return amp_loss(y_hat, target)[0]

    clip = float(opts.get("clip", 1.0))
    data, train_time, history, best = batches(), 0.0, [], (math.inf, math.inf, 0)
    for step in range(1, steps + 1):
        started = time.perf_counter()
        xb, yb = next(data)
        loss = loss_fn(model(xb)[..., -seg:], yb)
        opt.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        scheduler.step()
        train_time += time.perf_counter() - started
        if step % every == 0 or step == steps:
            with torch.no_grad():
                val, test = (esr(model(a), b).item() for a, b in regions.values())
            history.append((step, round(train_time, 1), val, test))
            best = min(best, (val, test, step))
            print(
                f"{name} step {step} t {train_time:.0f}s val {val:.5f} test {test:.5f}", flush=True
            )
    out = REPO / "outputs" / "train_levers"
    out.mkdir(parents=True, exist_ok=True)
    record = {"name": name, "options": opts, "history": history, "best": best}
    (out / f"{name}.json").write_text(json.dumps(record, indent=2))
    print(f"{name} BEST val {best[0]:.5f} test {best[1]:.5f} at step {best[2]}")


if __name__ == "__main__":
    main()
