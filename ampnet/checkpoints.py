"""Reading training checkpoints back safely: weights only, no Lightning, no code."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ampnet.errors import AmpnetError
from ampnet.models import build_model


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``: tensors and plain data only, never code."""
    path = Path(path)
    if not path.is_file():
        raise AmpnetError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AmpnetError(
            f"{path}: not a readable ampnet checkpoint ({first}); pass a .ckpt written by ampnet.train"
        ) from None


def load_model(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """The plain model in a training checkpoint, in eval mode, and the checkpoint's hparams."""
    ckpt = read_checkpoint(path)
    hparams = ckpt.get("hyper_parameters") or {}
    if "model" not in hparams or "state_dict" not in ckpt:
        raise AmpnetError(f"{path}: holds no ampnet model; pass a .ckpt written by ampnet.train")
    try:
        model = build_model(hparams["model"])
    except (TypeError, ValueError) as err:
        raise AmpnetError(f"{path}: its model config cannot be built ({err})") from None
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise AmpnetError(
            f"{path}: weights do not fit its model config ({str(err).splitlines()[0]})"
        ) from None
    return model.eval(), hparams
