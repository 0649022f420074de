"""Export a trained capture: ``python -m ampnet.export ckpt=best``.

Writes, into ``<run dir>/export/`` by default, every format that fits the model:
``.nam`` (NAM plugin), ``.aidax.json`` (AIDA-X / Proteus / NeuralPi SimpleRNN, LSTMs),
``.onnx`` and ``.ts.pt`` (a streaming step for hosts that embed a runtime), and a
``model_card.json``. Each file is read back and run after it is written; the card
records the largest difference from ampnet's own output. A knob-aware model has no
``.nam`` form (NAM plays no knob models): it is skipped, and asking for it is an error.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from ampnet import __version__
from ampnet.atomic import atomic_output
from ampnet.checkpoints import load_model
from ampnet.errors import AmpnetError, exit_on_user_error
from ampnet.formats import fold_input_gain, load_model_file
from ampnet.models import LSTM
from ampnet.runs import resolve_checkpoint
from ampnet.stream import render

FORMATS = ("nam", "aidax", "onnx", "torchscript")
SUFFIX = {"nam": ".nam", "aidax": ".aidax.json", "onnx": ".onnx", "torchscript": ".ts.pt"}
GEAR_TYPES = ("amp", "pedal", "pedal_amp", "amp_cab", "amp_pedal_cab", "preamp", "studio")
TONE_TYPES = ("clean", "overdrive", "crunch", "hi_gain", "fuzz")
TOLERANCE = {"nam": 1e-5, "aidax": 1e-5, "onnx": 1e-4, "torchscript": 1e-5}


def fitting_formats(model) -> list[str]:
    """The formats that can hold ``model`` exactly."""
    return [fmt for fmt in FORMATS if unfit_reason(fmt, model) is None]


def unfit_reason(fmt: str, model) -> str | None:
    """Why ``fmt`` cannot hold ``model`` (None when it can)."""
    if fmt == "nam" and model.input_channels > 1:
        return f"NAM plays no knob models and this one has knobs ({', '.join(model.params)})"
    if fmt == "nam" and isinstance(model, LSTM) and model.input_skip:
        return "NAM's LSTM has no input skip (train model=lstm_nam for a .nam)"
    if fmt == "aidax" and not isinstance(model, LSTM):
        return "AIDA-X / Proteus JSON holds LSTMs only"
    return None


def _write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1 if path.suffix != ".nam" else None))


def _check_signal(channels: int, seconds: float, rate: int) -> np.ndarray:
    from ampnet.data.synth import synth_di

    audio = synth_di(seconds=max(seconds, 3.0), seed=11, sr=rate)[-int(seconds * rate) :]
    knobs = np.linspace(0.0, 1.0, len(audio), dtype=np.float32)
    return np.stack([audio] + [knobs] * (channels - 1))


def _write(fmt: str, model, path: Path, rate: int, metadata: dict) -> dict:
    from ampnet.formats import aidax, nam, runtime

    if fmt == "nam":
        _write_json(path, nam.to_nam(model, rate, metadata))
        return {}
    if fmt == "aidax":
        _write_json(path, aidax.lstm_to_aidax(model, rate))
        return {}
    if fmt == "onnx":
        return runtime.export_onnx(model, path)
    return runtime.export_torchscript(model, path)


def _verify(fmt: str, path: Path, model, rate: int) -> float:
    """Largest |difference| between the written file, run by its reader, and ampnet's model."""
    from ampnet.formats import runtime

    x = _check_signal(model.input_channels, 1.0, rate)
    if model.input_channels == 1:
        reference = render(model, x[0])
    else:  # the knobs sweep 0 to 1 across the signal: run it offline
        reference = _offline(model, x)
    if fmt in ("nam", "aidax"):
        loaded = load_model_file(path).model
        y = render(loaded, x[0]) if model.input_channels == 1 else _offline(loaded, x)
    elif fmt == "onnx":
        y = runtime.run_onnx(path, x, [4096, 64, x.shape[1] - 4160])
    else:
        y = runtime.run_torchscript(path, x, [4096, 64, x.shape[1] - 4160])
    return float(np.max(np.abs(y - reference)))


def _offline(model, x: np.ndarray) -> np.ndarray:
    """``model`` over ``x`` (channels, n) in one pass, from silence."""
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)[None], pad_start=True)[0, 0].numpy()


def export(cfg: DictConfig) -> dict:
    """Write the requested formats and the model card; returns the card."""
    ckpt = resolve_checkpoint(cfg.ckpt, cfg.outputs)
    trained, hparams = load_model(ckpt)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    out = Path(cfg.out) if cfg.out else run_dir / "export"
    rate = int(hparams.get("sample_rate") or 48000)
    model = fold_input_gain(trained, hparams.get("input_gain_db", 0.0)).eval()
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
    if not cfg.formats and model.params:
        print(f"ampnet: nam          skipped: {unfit_reason('nam', model)}")
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
        from ampnet.formats.nam import loudness_and_gain

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

    files = {}
    for fmt in formats:
        path = out / f"{name}{SUFFIX[fmt]}"
        extra = _write(fmt, model, path, rate, metadata)
        diff = _verify(fmt, path, model, rate)
        if not diff <= TOLERANCE[fmt]:
            path.unlink(missing_ok=True)
            raise AmpnetError(
                f"{path}: read back, it differs from the model by {diff:.2e}; not exported"
            )
        files[fmt] = {
            "path": path.name,
            "bytes": path.stat().st_size,
            "max_abs_diff": diff,
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
    print(f"ampnet: card         {out / 'model_card.json'}")
    return card


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
