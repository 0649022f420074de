"""Reading, checking, aligning and windowing paired recordings; the demo capture.

The LightningDataModule is ``ampnet.data.datamodule.AudioDataModule``: it is not
imported here, so tools that only read audio (process, compare) start without
Lightning (about 5 s of imports).
"""

from ampnet.data.audio import read_audio, resample, write_audio
from ampnet.data.checks import PairCheck, check_pair
from ampnet.data.windows import RegionWindow, TrainWindows, split_regions

__all__ = [
    "RegionWindow",
    "TrainWindows",
    "PairCheck",
    "check_pair",
    "read_audio",
    "resample",
    "split_regions",
    "write_audio",
]
