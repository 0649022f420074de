"""Export a trained capture: ``python -m ampnet.export ckpt=best``.

Writes, into ``<run dir>/export/`` by default, every format that fits the model:
``.nam`` (NAM plugin), ``.aidax.json`` (AIDA-X, LSTMs), ``.proteus.json`` (Proteus and
NeuralPi, LSTMs), ``.onnx`` and ``.ts.pt`` (a streaming step for hosts that embed a
runtime), and a ``model_card.json``. Each file is read back and played the way its
players play it; the card records the largest difference from ampnet's own output, and
where a player starts an LSTM elsewhere than ampnet does (Proteus from the zero state,
AIDA-X after 2048 samples of silence) how long and how much its start differs. Which models a format can
hold is the format module's business (``unfit_reason`` in ``ampnet/formats``): a format
that does not fit is skipped with its reason, and asking for it is an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files as package_files
from pathlib import Path

import hydra
import numpy as np
import soundfile as sf
import torch
from omegaconf import DictConfig
from torch import nn

from ampnet import __version__
from ampnet.atomic import atomic_output
from ampnet.checkpoints import load_model
from ampnet.data.audio import DEFAULT_SAMPLE_RATE
from ampnet.data.synth import phrase_chords, synth_di
from ampnet.errors import AmpnetError, exit_on_user_error
from ampnet.formats import aidax, load_model_file, nam, proteus, runtime
from ampnet.runs import resolve_checkpoint
from ampnet.stream import render

GEAR_TYPES = ("amp", "pedal", "pedal_amp", "amp_cab", "amp_pedal_cab", "preamp", "studio")
TONE_TYPES = ("clean", "overdrive", "crunch", "hi_gain", "fuzz")


def _write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1 if path.suffix != ".nam" else None))


def _play(model: nn.Module, x: np.ndarray) -> np.ndarray:
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
    return _play(loaded.model, np.concatenate([x[:1] * gain, x[1:]]))


def _file_format(suffix: str, unfit, to_dict, players: str) -> Format:
    """A JSON model file that ampnet's own reader plays back: ``to_dict(model, rate, meta)``."""
    return Format(
        suffix,
        unfit,
        lambda model, path, rate, meta: _write_json(path, to_dict(model, rate, meta)),
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


def loudness_input() -> tuple[np.ndarray, str]:
    """NAM's standard 1 s loudness input (from its package, when installed) or ampnet's own.

    NAM players normalise levels with the ``loudness`` it yields, so the same input
    gives values comparable with NAM-trained captures; ampnet's stand-in is a strummed
    chord at the same RMS (-15 dBFS), used only when NAM is not installed.
    """
    try:  # NAM is optional (the test and bench extras)
        with package_files("nam").joinpath("models/_resources/loudness_input.wav").open("rb") as f:
            audio, _ = sf.read(f, dtype="float32")
        return audio, "nam"
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        rate = DEFAULT_SAMPLE_RATE
        chord = phrase_chords(np.random.default_rng(7), rate)[:rate]
        chord = chord * (10 ** (-14.97 / 20) / np.sqrt(np.mean(chord**2)))
        return chord.astype(np.float32), "ampnet"


def loudness_and_gain(model) -> dict:
    """NAM's ``loudness`` (dB RMS of the output for the loudness input) and ``gain``
    (0..1: how much the output's level curve over input gains 0..1 bends like a compressor)."""
    x, source = loudness_input()

    def rms(gain: float) -> float:
        y = render(model, np.float32(gain) * x, threads=1)
        return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))

    levels = np.array([rms(g) for g in np.linspace(0.0, 1.0, 11)])
    square = levels[-1] * len(levels)  # full compression: every gain as loud as the loudest
    gain = (levels.sum() - 0.5 * square) / (0.5 * square) if square > 0 else 0.0
    return {
        "loudness": float(20 * np.log10(max(levels[-1], 1e-12))),
        "gain": float(np.clip(gain, 0.0, 1.0)),
        "loudness_input": source,
    }


def raw_input_model(model: nn.Module, input_gain_db: float) -> nn.Module:
    """``model`` as it plays the raw DI: the training input gain folded into its weights."""
    if not input_gain_db:
        return model
    try:
        return model.fold_input_gain(10.0 ** (input_gain_db / 20.0))
    except ValueError as err:
        raise AmpnetError(
            f"input_gain_db={input_gain_db} cannot be folded into this {type(model).__name__} "
            f"({err}); retrain with data.input_gain_db=0"
        ) from None


def export(cfg: DictConfig) -> dict:
    """Write the requested formats and the model card; returns the card."""
    if Path(str(cfg.ckpt)).suffix.lower() in (".nam", ".json"):  # a model file: convert it
        ckpt = Path(str(cfg.ckpt))
        loaded = load_model_file(ckpt)
        trained, run_dir = loaded.model, ckpt.parent
        hparams = {"sample_rate": loaded.sample_rate, "input_gain_db": loaded.input_gain_db}
        hparams["model_name"] = ckpt.stem
        out = Path(cfg.out) if cfg.out else Path("export") / ckpt.stem
    else:
        ckpt = resolve_checkpoint(cfg.ckpt, cfg.outputs)
        trained, hparams = load_model(ckpt)
        run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        out = Path(cfg.out) if cfg.out else run_dir / "export"
    rate = int(hparams.get("sample_rate") or DEFAULT_SAMPLE_RATE)
    model = raw_input_model(trained, hparams.get("input_gain_db", 0.0)).eval()
    fits = fitting_formats(model)
    formats = list(cfg.formats) if cfg.formats else fits
    for fmt in formats:
        if fmt not in FORMATS:
            raise AmpnetError(f"formats: unknown format {fmt!r}; choose from {list(FORMATS)}")
        if fmt not in fits:
            raise AmpnetError(
                f"formats: {fmt} cannot hold this {type(model).__name__}: "
                f"{unfit_reason(fmt, model)}; it fits {fits}"
            )
    if not cfg.formats:
        for fmt in FORMATS:
            if fmt not in fits:
                print(f"ampnet: {fmt:12s} skipped: {unfit_reason(fmt, model)}")
    for key, allowed in (("gear_type", GEAR_TYPES), ("tone_type", TONE_TYPES)):
        if cfg.get(key) is not None and cfg[key] not in allowed:
            raise AmpnetError(f"{key}={cfg[key]}: choose one of {', '.join(allowed)}")

    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    name = cfg.name or "_".join(
        str(v) for v in (hparams.get("model_name"), hparams.get("data_name")) if v
    )
    name = name or run_dir.name
    user = {
        k: cfg.get(k) for k in ("modeled_by", "gear_make", "gear_model", "gear_type", "tone_type")
    }
    user.update({k: cfg.get(k) for k in ("input_level_dbu", "output_level_dbu")})
    metadata = {"name": name, **{k: v for k, v in user.items() if v is not None}}
    if "nam" in formats:
        level = loudness_and_gain(model)
        metadata.update(loudness=level["loudness"], gain=level["gain"])
    metadata["training"] = {
        "validation_esr": metrics.get("val_esr"),
        "ampnet": {
            "version": __version__,
            "test_esr": metrics.get("test_esr"),
            "checkpoint": str(ckpt),
        },
    }

    x = check_signal(model.input_channels, rate)
    reference = _play(model, x)
    files = {}
    for fmt in formats:
        spec = FORMATS[fmt]
        path = out / f"{name}{spec.suffix}"
        extra = spec.write(model, path, rate, metadata) or {}
        files[fmt] = {
            "path": path.name,
            "players": spec.players,
            "bytes": path.stat().st_size,
            **_check_played(path, spec, model, x, reference, rate),
            **extra,
        }
    card = {
        "name": name,
        "architecture": type(model).__name__,
        "knobs": _knobs(model, hparams),
        "model": model.config(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "receptive_field": model.receptive_field,
        "sample_rate": rate,
        "latency_samples": 0,
        "input_gain_db_folded": hparams.get("input_gain_db", 0.0),
        "metadata": metadata,
        "metrics": metrics,
        "data": (hparams.get("config") or {}).get("data"),
        "config": hparams.get("config"),
        "checkpoint": str(ckpt),
        "exported": datetime.now().isoformat(timespec="seconds"),
        "files": files,
    }
    _write_json(out / "model_card.json", card)
    for fmt, info in files.items():
        print(
            f"ampnet: {fmt:12s} {out / info['path']}  ({info['bytes'] / 1024:.0f} KiB, "
            f"max |diff| {info['max_abs_diff']:.1e})"
        )
        if "start" in info:
            print(f"ampnet: {'':12s} note: {info['start']['note']}")
    print(f"ampnet: card         {out / 'model_card.json'}")
    return card


def _check_played(
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
        f"its players start this LSTM from another state than ampnet's state after silence: "
        f"what they play differs by up to {early:.1e} over the first 10 ms and at most "
        f"{late:.1e} after {1000 * START_SECONDS:.0f} ms (from the same state: {network:.1e})"
    )
    start = {"first_10ms_max_abs_diff": early, "after_start_max_abs_diff": late, "note": note}
    return {"max_abs_diff": network, "start": start}


def _knobs(model, hparams: dict) -> dict | None:
    """The card's knob entry: names, range, input layout and the settings trained on."""
    if not model.params:
        return None
    pairs = ((hparams.get("config") or {}).get("data") or {}).get("pairs") or []
    return {
        "names": list(model.params),
        "range": [0.0, 1.0],
        "inputs": ["audio", *model.params],
        "trained_settings": [p.get("params") for p in pairs if p.get("params")],
    }


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(export)(cfg)


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    main()
