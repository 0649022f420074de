"""The players' engines as judges, as tables: what ampnet plays against what they play.

    .venv/bin/python scripts/check_players.py              # all three tables
    .venv/bin/python scripts/check_players.py golden       # one of: golden, nam, lstm

* ``golden``: every example model of NAM's engine (``../shared/nam-core/examples``, sizes
  included) played by ampnet (offline, and streamed in blocks of 1, 63, 64, 4096) against
  the engine's golden render: ESR and max abs difference.
* ``nam``: every ``.nam`` ampnet writes (each preset, a container at each size, each engine
  example written back) rendered by NAM's engine against ampnet's own output.
* ``lstm``: the LSTM files for AIDA-X, Proteus/NeuralPi and NAM, rendered by the players'
  own loaders (``../shared/rtneural``, ``../shared/nam-core``) against ampnet, from the
  first sample.

The tests assert the same bounds (tests/test_nam_files.py, tests/test_players.py); this
prints the numbers. Engines are built with their own ``build.sh`` (cached).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from ampnet.formats import aidax, load_model_file, nam, proteus
from ampnet.models import LSTM
from ampnet.stream import Streamer, render

REPO = Path(__file__).resolve().parents[1]
ENGINES = REPO.parent / "shared"
CORE = ENGINES / "nam-core"
RATE = 48000
WORK = Path(tempfile.mkdtemp(prefix="ampnet-players-"))


def build(name: str) -> str:
    out = subprocess.run(["bash", str(ENGINES / name / "build.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"check_players: {name}/build.sh failed:\n{out.stderr[-1000:]}")
    return out.stdout.strip().splitlines()[-1]


def play(command: list[str], x: np.ndarray) -> np.ndarray:
    sf.write(WORK / "in.wav", x, RATE, subtype="FLOAT")
    out = subprocess.run([*command, str(WORK / "in.wav"), str(WORK / "out.wav")],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0 or "Wrong" in out.stdout:
        return np.full_like(x, np.nan)
    return sf.read(WORK / "out.wav", dtype="float32")[0]


def diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(ESR of a against b, max abs difference)."""
    d = a.astype(np.float64) - b
    return float(np.sum(d**2) / np.sum(b.astype(np.float64) ** 2)), float(np.abs(d).max())


def streamed(model, x: np.ndarray, block: int) -> np.ndarray:
    s = Streamer(model, max_block=4096)
    return np.concatenate([s.process(x[i : i + block]) for i in range(0, len(x), block)])


def di(seconds: float) -> np.ndarray:
    return sf.read(ENGINES / "data" / "di.wav", dtype="float32")[0][: int(seconds * RATE)]


def golden_table() -> None:
    x = sf.read(CORE / "golden" / "input.wav", dtype="float32")[0]
    print(
        "\n| file | size | offline ESR | offline max abs | streamed (1, 63, 64, 4096) worst ESR | worst max abs |"
    )
    print("|---|---|---|---|---|---|")
    for path in sorted((CORE / "golden").glob("*.wav")):
        if path.stem == "input":
            continue
        name, _, size = path.stem.partition("_slim")
        size = float(size) if size else None
        golden = sf.read(path, dtype="float32")[0]
        model = load_model_file(CORE / "examples" / f"{name}.nam", size).model
        esr, mx = diff(render(model, x), golden)
        worst = (0.0, 0.0)
        for block, seconds in ((1, 0.05), (63, 0.5), (64, 3.0), (4096, 3.0)):
            n = int(seconds * RATE)
            e, m = diff(streamed(model, x[:n], block), golden[:n])
            worst = (max(worst[0], e), max(worst[1], m))
        print(f"| {name}.nam | {'full' if size is None else f'{size:g}'} | {esr:.1e} | {mx:.1e} | "
              f"{worst[0]:.1e} | {worst[1]:.1e} |", flush=True)  # fmt: skip


def preset(name: str, seed: int = 0):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", "data=demo"])
    torch.manual_seed(seed)
    model = instantiate(cfg.model).eval()
    with torch.no_grad():  # away from the initialisation, so every weight shows in the output
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def nam_table(engine: str) -> None:
    x = di(1.0)
    print("\n| .nam written by ampnet | size | ESR (engine vs ampnet) | max abs |")
    print("|---|---|---|---|")
    for name in ["wavenet", "wavenet_lite", "wavenet_feather", "wavenet_nano", "pedalnet",
                 "lstm_nam", "a2", "a2_lite", "gcn", "tcn"]:  # fmt: skip
        model = preset(name)
        path = write(WORK / "m.nam", nam.to_nam(model, RATE))
        esr, mx = diff(play([engine, "render", str(path)], x), render(model, x))
        print(f"| preset `{name}` | full | {esr:.1e} | {mx:.1e} |", flush=True)
    lite, full = preset("a2_lite", 1), preset("a2", 2)
    path = write(WORK / "c.nam", nam.container_to_nam([(0.5, lite), (1.0, full)], RATE))
    for size, model in [(0.0, lite), (0.3, lite), (0.5, full), (1.0, full)]:
        played = play([engine, "render", str(path), "--slim", str(size)], x)
        esr, mx = diff(played, render(model, x))
        print(f"| A2 container (`a2_slim`) | {size:g} | {esr:.1e} | {mx:.1e} |", flush=True)
    x = di(0.5)
    for source in sorted((CORE / "examples").glob("*.nam")):
        loaded = load_model_file(source)
        if loaded.sizes:
            lowest = [0.0, *loaded.sizes[:-1]]
            members = [(v, load_model_file(source, lo).model) for v, lo in zip(loaded.sizes, lowest, strict=True)]  # fmt: skip
            data, sizes = nam.container_to_nam(members, RATE), lowest
        else:
            data, sizes = nam.to_nam(loaded.model, RATE), [None]
        path = write(WORK / "back.nam", data)
        for size in sizes:
            flags = [] if size is None else ["--slim", str(size)]
            before = play([engine, "render", str(source), *flags], x)
            after = play([engine, "render", str(path), *flags], x)
            esr, mx = diff(after, before)
            label = "full" if size is None else f"{size:g}"
            print(f"| `{source.name}` read and written back | {label} | {esr:.1e} | {mx:.1e} |",
                  flush=True)  # fmt: skip


def lstm_table(engine: str, rtneural: str) -> None:
    x = di(1.5)
    print("\n| file | loader | max abs diff from the first sample | ESR |")
    print("|---|---|---|---|")
    torch.manual_seed(0)
    for hidden, skip in [(8, True), (24, True), (24, False), (40, True)]:
        model = LSTM(hidden_size=hidden, input_skip=skip).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(2.0)
        ours = render(model, x)
        path = write(WORK / "m.aidax.json", aidax.to_aidax(model, RATE))
        esr, mx = diff(play([rtneural, "aidax", str(path)], x), ours)
        print(
            f"| ampnet `.aidax.json`, LSTM {hidden}{', input skip' if skip else ''} | AIDA-X | {mx:.1e} | {esr:.1e} |"
        )
        path = write(WORK / "m.proteus.json", proteus.lstm_to_proteus(model, RATE))
        played = play([rtneural, "proteus", str(path)], x)
        esr, mx = diff(played, render(load_model_file(path).model, x))
        print(
            f"| ampnet `.proteus.json`, LSTM {hidden}{', input skip' if skip else ''} | Proteus/NeuralPi (zero start, as ampnet reads the file) | {mx:.1e} | {esr:.1e} |"
        )
        if not skip:
            path = write(WORK / "m.nam", nam.to_nam(model, RATE))
            esr, mx = diff(play([engine, "render", str(path)], x), ours)
            print(
                f"| ampnet `.nam`, LSTM {hidden} | NAM's engine (exact tanh, prewarm on) | {mx:.1e} | {esr:.1e} |"
            )
    for capture in sorted((ENGINES / "data" / "captures").glob("*.json")):
        model = load_model_file(capture).model
        if model.input_channels != 1:
            continue  # the tool plays audio-only models
        esr, mx = diff(play([rtneural, "proteus", str(capture)], x), render(model, x))
        print(f"| shared `{capture.name}` | Proteus/NeuralPi | {mx:.1e} | {esr:.1e} |")
        path = write(WORK / "c.aidax.json", aidax.to_aidax(model, RATE))
        played = play([rtneural, "aidax", str(path)], x)
        esr, mx = diff(played, render(load_model_file(path).model, x))
        print(f"| shared `{capture.name}` converted by `ampnet.export formats=[aidax]` | AIDA-X | {mx:.1e} | {esr:.1e} |",
              flush=True)  # fmt: skip


def main() -> None:
    which = sys.argv[1:] or ["golden", "nam", "lstm"]
    torch.set_num_threads(1)
    if "golden" in which:
        golden_table()
    engine = build("nam-core") if {"nam", "lstm"} & set(which) else ""
    if "nam" in which:
        nam_table(engine)
    if "lstm" in which:
        lstm_table(engine, build("rtneural"))


if __name__ == "__main__":
    main()
