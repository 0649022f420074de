"""Plain PyTorch amp models (no Lightning, no I/O) and a safe way to rebuild them."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from .gru import GRU
from .lstm import LSTM
from .slimmable import Slimmable
from .wavenet import WaveNet

# Only these classes may be built from a config found in a file: a checkpoint from a
# stranger names a class here or is refused, so it cannot make us call arbitrary code.
MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "ampnet.models.WaveNet": WaveNet,
    "ampnet.models.wavenet.WaveNet": WaveNet,
    "ampnet.models.LSTM": LSTM,
    "ampnet.models.lstm.LSTM": LSTM,
    "ampnet.models.GRU": GRU,
    "ampnet.models.gru.GRU": GRU,
    "ampnet.models.Slimmable": Slimmable,
    "ampnet.models.slimmable.Slimmable": Slimmable,
}


def build_model(config: Mapping) -> nn.Module:
    """Build a model from ``{"_target_": "ampnet.models.WaveNet", **kwargs}`` (a model config);
    a nested model (a WaveNet's ``condition_dsp``) is built the same way."""
    config = dict(config)
    target = config.pop("_target_", None)
    if target not in MODEL_CLASSES:
        raise ValueError(
            f"unknown model class {target!r}; expected one of {sorted(set(MODEL_CLASSES))}"
        )
    if isinstance(config.get("condition_dsp"), Mapping):
        config["condition_dsp"] = build_model(config["condition_dsp"])
    return MODEL_CLASSES[target](**config)


__all__ = ["GRU", "LSTM", "Slimmable", "WaveNet", "MODEL_CLASSES", "build_model"]
