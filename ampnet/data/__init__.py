"""Reading, checking and windowing paired recordings; the DataModule; the demo capture."""

from ampnet.data.audio import read_audio, read_pair, write_audio
from ampnet.data.datamodule import AudioDataModule
from ampnet.data.windows import RegionWindow, TrainWindows, split_regions

__all__ = [
    "AudioDataModule",
    "RegionWindow",
    "TrainWindows",
    "read_audio",
    "read_pair",
    "split_regions",
    "write_audio",
]
