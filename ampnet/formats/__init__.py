"""Model file formats: NAM (.nam), AIDA-X JSON, Proteus / NeuralPi JSON, ONNX, TorchScript.

:func:`load_model_file` opens any file a model can come in and returns the plain
model with what is needed to play it (sample rate, input gain).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ampnet.checkpoints import load_model
from ampnet.data.audio import DEFAULT_SAMPLE_RATE
from ampnet.errors import AmpnetError
from ampnet.formats.aidax import from_aidax, is_aidax
from ampnet.formats.nam import container_sizes, model_from_nam
from ampnet.formats.proteus import lstm_from_proteus


@dataclass
class LoadedModel:
    """A playable model and what came with it."""

    model: nn.Module
    sample_rate: int | None
    input_gain_db: float = 0.0
    source: str = ""
    metadata: dict = field(default_factory=dict)
    sizes: list[float] = field(default_factory=list)  # a container's max_values, else empty


def read_json(path: Path) -> dict:
    """A JSON object from ``path``, or one clear error."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AmpnetError(f"{path}: not valid JSON ({err}); is the file complete?") from None
    if not isinstance(data, dict):
        raise AmpnetError(f"{path}: expected a JSON object at the top level")
    return data


def load_model_file(path: str | os.PathLike, size: float | None = None) -> LoadedModel:
    """Open a training checkpoint (.ckpt), a NAM file (.nam) or an AIDA-X or Proteus JSON (.json),
    each to play as its own players play it (how an LSTM starts differs between them).

    ``size`` (0 to 1) picks what a slimmable ``.nam`` (a SlimmableContainer or a slimmable
    WaveNet) plays at that size, as NAM's engine does; None plays the full model.
    """
    path = Path(path)
    if not path.is_file():
        raise AmpnetError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if size is not None and suffix not in (".nam", ".ckpt"):
        raise AmpnetError(f"{path}: size={size} is for slimmable models; drop it")
    if size is not None and not 0.0 <= size <= 1.0:
        raise AmpnetError(f"size={size}: use a number from 0 (smallest) to 1 (full size)")
    if suffix == ".ckpt":
        model, hparams = load_model(path)
        sizes = list(getattr(model, "max_values", []))
        if sizes:  # several sizes trained together: play one, the full one by default
            model = model.at_size(size)
        elif size is not None:
            raise AmpnetError(f"{path}: holds one size of model; drop size={size}")
        return LoadedModel(
            model,
            hparams.get("sample_rate"),
            hparams.get("input_gain_db", 0.0),
            str(path),
            {"hparams": hparams},
            sizes,
        )
    if suffix == ".nam":
        data = read_json(path)
        model = model_from_nam(data, str(path), size)
        return LoadedModel(
            model.eval(),
            data.get("sample_rate", DEFAULT_SAMPLE_RATE),
            0.0,
            str(path),
            data.get("metadata") or {},
            container_sizes(data),
        )
    if suffix == ".json":  # AIDA-X's layout, or Proteus / NeuralPi's: told apart by their keys
        data = read_json(path)
        if is_aidax(data):
            model, rate, gain_db = from_aidax(data, str(path))
            return LoadedModel(model, rate, gain_db, str(path), data.get("metadata") or {})
        model, rate = lstm_from_proteus(data, str(path))
        return LoadedModel(model, rate, 0.0, str(path), {})
    raise AmpnetError(
        f"{path}: unknown model file type {suffix!r}; ampnet reads .ckpt, .nam and .json"
    )
