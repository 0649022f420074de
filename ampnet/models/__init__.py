"""Plain PyTorch amp models (no Lightning, no I/O) and a safe way to rebuild them."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from .graybox import GrayBox
from .gru import GRU
from .lstm import LSTM
from .s4d import S4D
from .slimmable import Slimmable
from .tcn import TCN
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
    "ampnet.models.GrayBox": GrayBox,
    "ampnet.models.graybox.GrayBox": GrayBox,
    "ampnet.models.TCN": TCN,
    "ampnet.models.tcn.TCN": TCN,
    "ampnet.models.S4D": S4D,
    "ampnet.models.s4d.S4D": S4D,
}


def wavenet_form(model: nn.Module) -> nn.Module:
    """``model`` itself, or the :class:`WaveNet` it can be written as (a GCN's
    ``as_wavenet``): what the WaveNet kernel runs and a ``.nam`` holds for it."""
    twin = getattr(model, "as_wavenet", None)
    return (twin() or model) if twin is not None else model


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


__all__ = [
    "GRU",
    "GrayBox",
    "LSTM",
    "S4D",
    "Slimmable",
    "TCN",
    "WaveNet",
    "MODEL_CLASSES",
    "build_model",
    "wavenet_form",
]
