"""The formats ``ampnet.export`` writes: what each can hold, how it is written, and how
its file is played back (the way its players play it) to check it.

Which models a format can hold is the format module's business (``unfit_reason`` in
``ampnet/formats``). A player may start a recurrent model elsewhere than ampnet's state
after silence (Proteus: the zero state; AIDA-X: after 2048 samples of silence): then
the file is also checked from ampnet's own start, and what the player's start changes
is measured and noted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ampnet.atomic import atomic_output
from ampnet.data.synth import synth_di
from ampnet.errors import AmpnetError
from ampnet.formats import aidax, load_model_file, nam, proteus, runtime
from ampnet.stream import render


def write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1 if path.suffix != ".nam" else None))


def play(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """``model`` over ``x`` (channels, n) from silence: streamed for audio-only models,
    offline for knob models (the check signal sweeps the knobs)."""
    if x.shape[0] == 1:
        return render(model, x[0])
    with torch.no_grad():
        return model(torch.from_numpy(x)[None], pad_start=True)[0, 0].numpy()


@dataclass(frozen=True)
class Format:
    """How to write one format, play the file back, and how close that must be."""

    suffix: str
    unfit: Callable[[nn.Module], str | None]
    write: Callable[[nn.Module, Path, int, dict], dict | None]  # -> extra card entries
    play: Callable[[Path, np.ndarray], np.ndarray]
    tolerance: float
    players: str  # who loads the file, for the card


def _play_file(path: Path, x: np.ndarray) -> np.ndarray:
    """A written model file played by ampnet's reader, which plays it as its players do."""
    loaded = load_model_file(path)
    gain = np.float32(10.0 ** (loaded.input_gain_db / 20.0))
    return play(loaded.model, np.concatenate([x[:1] * gain, x[1:]]))


def _file_format(suffix: str, unfit, to_dict, players: str) -> Format:
    """A JSON model file that ampnet's own reader plays back: ``to_dict(model, rate, meta)``."""
    return Format(
        suffix,
        unfit,
        lambda model, path, rate, meta: write_json(path, to_dict(model, rate, meta)),
        _play_file,
        1e-5,
        players,
    )


def _runtime_format(suffix: str, write, run, tolerance: float, players: str) -> Format:
    """A streaming step for a runtime (any model): ``write(model, path)``, ``run(path, x, blocks)``."""
    return Format(
        suffix,
        lambda model: None,
        lambda model, path, rate, meta: write(model, path),
        lambda path, x: run(path, x, [4096, 64, x.shape[1] - 4160]),
        tolerance,
        players,
    )


FORMATS = {
    "nam": _file_format(
        ".nam", nam.unfit_reason, nam.to_nam, "the NAM plugin (NeuralAmpModelerCore) and NAM"
    ),
    "aidax": _file_format(".aidax.json", aidax.unfit_reason, aidax.to_aidax, "AIDA-X"),
    "proteus": _file_format(
        ".proteus.json",
        proteus.unfit_reason,
        lambda model, rate, meta: proteus.lstm_to_proteus(model, rate),
        "Proteus and NeuralPi (not AIDA-X: it reads the aidax file)",
    ),
    "onnx": _runtime_format(
        ".onnx", runtime.export_onnx, runtime.run_onnx, 1e-4, "hosts that embed ONNX Runtime"
    ),
    "torchscript": _runtime_format(
        ".ts.pt",
        runtime.export_torchscript,
        runtime.run_torchscript,
        1e-5,
        "hosts that embed LibTorch",
    ),
}
START_SECONDS = 0.1  # how long a player's own start state may differ from ampnet's


def fitting_formats(model) -> list[str]:
    """The formats that can hold ``model`` exactly."""
    return [fmt for fmt in FORMATS if unfit_reason(fmt, model) is None]


def unfit_reason(fmt: str, model) -> str | None:
    """Why ``fmt`` cannot hold ``model`` (None when it can)."""
    return FORMATS[fmt].unfit(model)


def check_signal(channels: int, rate: int, seconds: float = 1.0) -> np.ndarray:
    """(channels, n): a second of synthetic DI, then knobs sweeping 0 to 1 across it."""
    audio = synth_di(seconds=max(seconds, 3.0), seed=11, sr=rate)[-int(seconds * rate) :]
    knobs = np.linspace(0.0, 1.0, len(audio), dtype=np.float32)
    return np.stack([audio] + [knobs] * (channels - 1))


def check_played(
    path: Path, spec: Format, model, x: np.ndarray, reference: np.ndarray, rate: int
) -> dict:
    """How closely the written file, played as its players play it, follows ampnet's model.

    A player may start a recurrent model elsewhere than ampnet's state after silence
    (Proteus: the zero state; AIDA-X: after 2048 samples of silence). Then the file is
    also played from ampnet's own start state: that must match within the format's
    tolerance (the file holds the same network), and how much the player's start
    changes what it plays is measured and noted. Any other difference removes the file.
    """
    error = np.abs(spec.play(path, x) - reference)
    diff = float(error.max())
    if diff <= spec.tolerance:
        return {"max_abs_diff": diff}
    network = np.inf
    loaded = load_model_file(path).model if spec.play is _play_file else None
    if hasattr(loaded, "forward_with_state"):  # recurrent: compare from the same state
        xt = torch.from_numpy(x)[None]
        with torch.no_grad():
            state = model.initial_state(1, xt[:, 1:, 0])
            ours = model.forward_with_state(xt, state)[0]
            network = float((loaded.forward_with_state(xt, state)[0] - ours).abs().max())
    if not network <= spec.tolerance:
        path.unlink(missing_ok=True)
        raise AmpnetError(
            f"{path}: read back, it differs from the model by {diff:.2e}; not exported"
        )
    early, late = float(error[: rate // 100].max()), float(error[int(START_SECONDS * rate) :].max())
    note = (
        "its players start this recurrent model from another state than ampnet's state after "
        f"silence: what they play differs by up to {early:.1e} over the first 10 ms and at most "
        f"{late:.1e} after {1000 * START_SECONDS:.0f} ms (from the same state: {network:.1e})"
    )
    start = {"first_10ms_max_abs_diff": early, "after_start_max_abs_diff": late, "note": note}
    return {"max_abs_diff": network, "start": start}
