"""Reading and writing audio files, and the checks a DI/amp pair must pass."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ampnet.atomic import atomic_output
from ampnet.errors import AmpnetError

CHANNEL_CHOICES = "data.channel=0, data.channel=1 or data.channel=mean"


def read_audio(path: str | os.PathLike, channel: int | str | None = None) -> tuple[np.ndarray, int]:
    """Read any file soundfile reads as float32 mono ``(time,)``, at its own level; returns (audio, rate).

    A multi-channel file is refused unless ``channel`` picks one (an index, or ``"mean"``).
    """
    path = Path(path)
    if not path.is_file():
        raise AmpnetError(f"{path}: no such file")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AmpnetError(
            f"{path}: cannot read it as audio ({err}); export it as WAV or FLAC"
        ) from None
    if audio.shape[0] == 0:
        raise AmpnetError(f"{path}: the file holds no samples; export the recording again")
    channels = audio.shape[1]
    if channels > 1:
        if channel is None:
            raise AmpnetError(
                f"{path}: has {channels} channels but a capture needs mono; pick one with {CHANNEL_CHOICES}"
            )
        if channel == "mean":
            audio = audio.mean(axis=1, keepdims=True)
        elif isinstance(channel, int) and 0 <= channel < channels:
            audio = audio[:, channel : channel + 1]
        else:
            raise AmpnetError(f"{path}: channel {channel!r} does not exist; use {CHANNEL_CHOICES}")
    audio = np.ascontiguousarray(audio[:, 0])
    if not np.isfinite(audio).all():
        raise AmpnetError(f"{path}: contains NaN or infinite samples; export the recording again")
    return audio, int(rate)


def read_pair(
    input_path: str | os.PathLike, output_path: str | os.PathLike, channel: int | str | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Read a DI (input) and amp (output) recording that must share rate and length."""
    x, rate_x = read_audio(input_path, channel)
    y, rate_y = read_audio(output_path, channel)
    if rate_x != rate_y:
        raise AmpnetError(
            f"{output_path}: sample rate {rate_y} Hz differs from the input's {rate_x} Hz "
            f"({input_path}); record or export both at the same rate"
        )
    if len(x) != len(y):
        raise AmpnetError(
            f"{output_path}: {len(y)} samples ({len(y) / rate_y:.3f} s) but the input "
            f"{input_path} has {len(x)} ({len(x) / rate_x:.3f} s); trim both to the same length"
        )
    return x, y, rate_x


def write_audio(
    path: str | os.PathLike, audio: np.ndarray, rate: int, subtype: str = "FLOAT"
) -> Path:
    """Write ``(time,)`` or ``(time, channels)`` audio atomically: a temporary file renamed into place."""
    with atomic_output(path) as tmp:
        sf.write(tmp, audio, rate, subtype=subtype)
    return Path(path)
