"""Reading, checking and windowing paired recordings; the DataModule; the demo capture.

``AudioDataModule`` is imported on first use, so tools that only read audio do not
pay for importing Lightning.
"""

from ampnet.data.audio import read_audio, resample, write_audio
from ampnet.data.checks import PairCheck, check_pair
from ampnet.data.windows import RegionWindow, TrainWindows, split_regions


def __getattr__(name: str):
    if name == "AudioDataModule":
        from ampnet.data.datamodule import AudioDataModule

        return AudioDataModule
    raise AttributeError(f"module 'ampnet.data' has no attribute {name!r}")


__all__ = [
    "AudioDataModule",
    "RegionWindow",
    "TrainWindows",
    "PairCheck",
    "check_pair",
    "read_audio",
    "resample",
    "split_regions",
    "write_audio",
]
