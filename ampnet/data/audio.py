"""Reading and writing audio files, and the checks a DI/amp pair must pass."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ampnet.atomic import atomic_output
from ampnet.errors import AmpnetError

# The rate assumed where a model file or a run does not say (NAM's rule), and the default
# rate of ampnet's own signals (the reamp file, the demo).
DEFAULT_SAMPLE_RATE = 48000
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


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """soxr's very-high-quality resampler (linear phase, delay compensated): ``(time,)`` float32."""
    return soxr.resample(audio, rate, target, quality="VHQ").astype(np.float32)


def write_audio(
    path: str | os.PathLike, audio: np.ndarray, rate: int, subtype: str = "FLOAT"
) -> Path:
    """Write ``(time,)`` or ``(time, channels)`` audio atomically: a temporary file renamed into place."""
    with atomic_output(path) as tmp:
        sf.write(tmp, audio, rate, subtype=subtype)
    return Path(path)
