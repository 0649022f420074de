"""Knob conditioning, input mixer against FiLM: the same WaveNet, data, steps and seed.

    python scripts/bench_knob_conditioning.py [--model wavenet_nano] [--steps 120] [--json out.json]

ampnet conditions a WaveNet on its knobs through each layer's input mixer: the knob
values are extra 1x1 input channels, so a knob adds ``W k`` to every layer's
pre-activation (a shift). FiLM (Perez et al. 2018, "FiLM: Visual Reasoning with a
General Conditioning Layer") also scales it: ``z * (1 + gamma(k)) + beta(k)`` with
``gamma, beta`` linear in the knobs, per layer. This script trains both on
``data=shared_ts9_drive`` (drive 0, 0.5, 1) with one plain loop (Adam, warm-up and
cosine, the default ESR + MR-STFT loss, identical batches) and prints validation ESR on
the last 9 s at drive 0 to 1 (targets from ``captures/TS9_DriveKnob.json``; 0.25 and
0.75 unseen). FiLM is an experiment here: ampnet's models, kernels and exports use
the input mixer.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from ampnet.data.audio import read_audio
from ampnet.data.datamodule import AudioDataModule
from ampnet.losses import esr
from ampnet.models import WaveNet
from ampnet.module import warmup_cosine
from ampnet.process import open_model
from ampnet.stream import render

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AMPNET_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETTINGS = (0.0, 0.25, 0.5, 0.75, 1.0)


class FiLMWaveNet(WaveNet):
    """A WaveNet whose knobs scale and shift every layer's pre-activation (FiLM)
    instead of entering its input mixer; the audio still feeds the mixers."""

    def __init__(self, layers, head_scale: float = 0.02, params=("drive",)):
        super().__init__(layers, head_scale)  # audio-only mixers
        self.params = list(params)
        self.films = nn.ModuleList()
        for array in self.layer_arrays:
            for layer in array.layers:
                film = nn.Linear(len(self.params), 2 * layer.conv.out_channels)
                nn.init.zeros_(film.weight)
                nn.init.zeros_(film.bias)
                self.films.append(film)
                layer.forward = self._film_forward(layer, film)
        self._knobs: torch.Tensor | None = None

    def _film_forward(self, layer, film):
        def forward(x, c):
            z = layer.conv(x)
            n = z.shape[-1]
            z = z + layer.input_mixer(c[:, :1, -n:])
            gamma, beta = film(self._knobs).unsqueeze(-1).chunk(2, dim=1)
            z = z * (1 + gamma) + beta
            if layer.gated:
                h = layer.activation(z[:, : layer.channels]) * torch.sigmoid(z[:, layer.channels :])
            else:
                h = layer.activation(z)
            return x[..., -n:] + layer.layer1x1(h), h

        return forward

    @property
    def input_channels(self) -> int:
        return 1 + len(self.params)

    def forward(self, x, pad_start: bool = False, state=None):
        self._knobs = x[:, 1:, -1]  # constant over a window
        return super().forward(x[:, :1], pad_start, state)


def build(kind: str, preset: str) -> WaveNet:
    config = OmegaConf.to_container(
        OmegaConf.load(ROOT / "conf" / "model" / f"{preset}.yaml"), resolve=True
    )
    config.pop("_target_")
    config.pop("params", None)
    torch.manual_seed(0)
    if kind == "film":
        return FiLMWaveNet(**config)
    return WaveNet(**config, params=["drive"])


def train(model: WaveNet, data: AudioDataModule, steps: int, lr: float) -> float:
    loss = instantiate(
        OmegaConf.load(ROOT / "conf" / "loss" / "esr_mrstft.yaml"), sample_rate=48000
    )
    optimizer = torch.optim.Adam(model.parameters(), lr)
    schedule = warmup_cosine(optimizer, steps)
    generator = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(
        data._sets["train"], batch_size=16, shuffle=True, drop_last=True, generator=generator
    )
    started, step = time.perf_counter(), 0
    model.train()
    while step < steps:
        for x, y in loader:
            total, _ = loss(model(x)[..., -y.shape[-1] :], y)
            optimizer.zero_grad()
            total.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            if step == steps:
                break
    return time.perf_counter() - started


@torch.no_grad()
def score(model: WaveNet, di: np.ndarray, targets: dict, tail: int) -> dict:
    model.eval()
    scores = {}
    for setting, target in targets.items():
        x = torch.from_numpy(np.stack([di, np.full_like(di, setting)]))[None]
        y = model(x, pad_start=True)[0, 0, -tail:]
        scores[setting] = float(esr(y, torch.from_numpy(target[-tail:])))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="wavenet_nano")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--lr", type=float, default=0.008)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cfg = OmegaConf.load(ROOT / "conf" / "data" / "shared_ts9_drive.yaml")
    pairs = OmegaConf.to_container(cfg.pairs, resolve=True)
    di, rate = read_audio(SHARED / "di.wav")
    tail = 9 * rate
    capture = open_model(str(SHARED / "captures" / "TS9_DriveKnob.json")).model
    targets = {s: render(capture, di, params={capture.params[0]: s}) for s in SETTINGS}
    results = {}
    for kind in ("input_mixer", "film"):
        model = build(kind, args.model)
        data = AudioDataModule(
            pairs=pairs,
            params=["drive"],
            split=OmegaConf.to_container(cfg.split),
            history=model.history,
        )
        data.setup()
        seconds = train(model, data, args.steps, args.lr)
        results[kind] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds": round(seconds, 1),
            "esr": score(model, di, targets, tail),
        }
        print(kind, json.dumps(results[kind]), flush=True)
    print(f"\n| drive | input mixer ({args.model}, {args.steps} steps) | FiLM |\n|---|---|---|")
    for s in SETTINGS:
        print(
            f"| {s:.2f} | {results['input_mixer']['esr'][s]:.4f} | {results['film']['esr'][s]:.4f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
