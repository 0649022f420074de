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
from datetime import datetime
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from torch import nn

from ampnet import __version__
from ampnet.atomic import atomic_output
from ampnet.checkpoints import load_model
from ampnet.data.audio import DEFAULT_SAMPLE_RATE
from ampnet.errors import AmpnetError
from ampnet.export.formats import (
    FORMATS,
    START_SECONDS,
    check_played,
    check_signal,
    fitting_formats,
    play,
    unfit_reason,
    write_json,
)
from ampnet.export.loudness import loudness_and_gain, loudness_input
from ampnet.export.peak import output_peaks
from ampnet.formats import load_model_file
from ampnet.report.aliasing import aliasing_report
from ampnet.report.figures import blocks_figure
from ampnet.runs import resolve_checkpoint

GEAR_TYPES = ("amp", "pedal", "pedal_amp", "amp_cab", "amp_pedal_cab", "preamp", "studio")
TONE_TYPES = ("clean", "overdrive", "crunch", "hi_gain", "fuzz")
__all__ = [
    "FORMATS",
    "START_SECONDS",
    "export",
    "fitting_formats",
    "loudness_and_gain",
    "loudness_input",
    "raw_input_model",
    "unfit_reason",
]


def best_per_size(model, folder: Path):
    """A model trained at several sizes with each member taken from the checkpoint where
    that size validated best (``best_size<i>.ckpt``, kept by training), when there are any."""
    members = getattr(model, "members", None)
    if members is None:
        return model
    for i in range(len(members)):
        path = folder / f"best_size{i}.ckpt"
        if path.is_file():
            members[i] = load_model(path)[0].members[i]
    return model


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
        trained = best_per_size(trained, ckpt.parent)
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

    # before anything is written: a model that blows up on its own recordings is refused
    peaks = output_peaks(model, (hparams.get("config") or {}).get("data"), cfg.peak_limit_db)

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
    reference = play(model, x)
    files = {}
    for fmt in formats:
        spec = FORMATS[fmt]
        path = out / f"{name}{spec.suffix}"
        extra = spec.write(model, path, rate, metadata) or {}
        files[fmt] = {
            "path": path.name,
            "players": spec.players,
            "bytes": path.stat().st_size,
            **check_played(path, spec, model, x, reference, rate),
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
        "aliasing": _aliasing(model, rate),
        "output_peaks": peaks,
        **_blocks(model, rate, out, name),
    }
    write_json(out / "model_card.json", card)
    for fmt, info in files.items():
        print(
            f"ampnet: {fmt:12s} {out / info['path']}  ({info['bytes'] / 1024:.0f} KiB, "
            f"max |diff| {info['max_abs_diff']:.1e})"
        )
        if "start" in info:
            print(f"ampnet: {'':12s} note: {info['start']['note']}")
    worst = max(card["aliasing"]["tones"], key=lambda t: t["aliasing_db"])
    print(
        f"ampnet: aliasing     {worst['aliasing_db']:.0f} dB below the output at worst "
        f"({worst['hz']} Hz tone, peak {worst['level']}; analogue gear adds none)"
    )
    for entry in peaks["checked"]:
        print(
            f"ampnet: output peak  {entry['peak']:.3f} at {entry['at_seconds']} s of "
            f"{entry['input']} (the gear's: {entry['gear_peak']:.3f})"
        )
    print(f"ampnet: card         {out / 'model_card.json'}")
    return card


def _aliasing(model: nn.Module, rate: int) -> dict:
    """``ampnet.report.aliasing`` of the model (knobs, if any, at their middle)."""
    knobs = model.input_channels - 1

    def process(audio):
        x = np.stack([audio] + [np.full_like(audio, 0.5)] * knobs)
        return play(model, x)

    return aliasing_report(process, rate)


def _blocks(model, rate: int, out: Path, name: str) -> dict:
    """The card's entries for a model that reads out its blocks (a gray box): ``blocks``
    (``model.describe(rate)``) and ``blocks_figure``, a PNG of ``model.curves(rate)``."""
    entries = {}
    if hasattr(model, "describe"):
        entries["blocks"] = model.describe(rate)
    if hasattr(model, "curves"):
        path = out / f"{name}.blocks.png"
        with atomic_output(path) as tmp:
            blocks_figure(model.curves(rate), title=name).savefig(tmp, format="png", dpi=90)
        entries["blocks_figure"] = path.name
        print(f"ampnet: blocks       {path}")
    return entries


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
