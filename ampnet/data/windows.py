"""Splitting a recording into regions by time, and cutting model-sized windows from them.

The data contract is NAM's: a model with receptive field R gives ``n`` output samples
for ``R - 1 + n`` input samples, so every window carries ``history`` input samples
before its first target sample (``R - 1``, plus a recurrent model's burn-in).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from ampnet.errors import AmpnetError
from ampnet.models.knobs import pad_silence

REGIONS = ("train", "val", "test")


def split_regions(num_samples: int, sample_rate: int, split: Mapping) -> dict[str, tuple[int, int]]:
    """Resolve ``split`` to ``{region: (start, end)}`` sample ranges that do not overlap.

    ``split`` holds ``unit`` (``fraction`` or ``seconds``) and ``[start, end]`` for
    ``train``, ``val`` and optionally ``test`` (null to leave it out). In seconds a
    negative value counts from the end of the file and a null end means the end.
    """
    unit = split.get("unit", "fraction")
    if unit not in ("fraction", "seconds"):
        raise AmpnetError(f"data.split.unit={unit!r}: use 'fraction' or 'seconds'")

    def to_sample(value, default: int) -> int:
        if value is None:
            return default
        if unit == "fraction":
            if not 0.0 <= value <= 1.0:
                raise AmpnetError(f"data.split: fraction {value} is outside [0, 1]")
            return int(round(value * num_samples))
        sample = int(round(value * sample_rate))
        return sample + num_samples if sample < 0 else sample

    regions = {}
    for name in REGIONS:
        bounds = split.get(name)
        if bounds is None:
            if name != "test":
                raise AmpnetError(f"data.split.{name} is missing; give it as [start, end]")
            continue
        start, end = to_sample(bounds[0], 0), to_sample(bounds[1], num_samples)
        if not 0 <= start < end <= num_samples:
            raise AmpnetError(
                f"data.split.{name}={list(bounds)} ({unit}) is empty or outside the "
                f"{num_samples / sample_rate:.2f} s recording"
            )
        regions[name] = (start, end)
    ordered = sorted(regions.items(), key=lambda item: item[1])
    for (a, (_, end_a)), (b, (start_b, _)) in zip(ordered, ordered[1:], strict=False):
        if start_b < end_a:
            raise AmpnetError(f"data.split: regions {a} and {b} overlap; make them disjoint")
    return regions


class TrainWindows(Dataset):
    """Target segments tiling one region, each with real input history.

    Item ``i``: input ``(channels, history + segment_length)`` and target
    ``(1, segment_length)``; target sample ``j`` lines up with input sample
    ``history + j``. Input and target both stay inside ``[start, end)``.

    With ``jitter`` the tiling moves each epoch (:meth:`set_epoch`): segment ``i``
    starts ``offset + i * segment_length`` samples in, wrapped around the range of
    valid starts, with ``offset`` drawn from the epoch number. Every epoch still
    covers the region, but the segment edges (where the loss sees the least context
    inside the target) fall elsewhere each time, so the model never fits one fixed
    cut of the recording. The offset lives in shared memory, so data-loader worker
    processes see it too.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        start: int,
        end: int,
        history: int,
        segment_length: int,
        jitter: bool = False,
        seed: int = 0,
    ):
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.first = start + history
        self.history = history
        self.segment_length = segment_length
        self.count = max(0, (end - self.first) // segment_length)
        self.starts = max(1, end - self.first - segment_length + 1)  # valid first samples
        self.jitter = bool(jitter)
        self.seed = int(seed)
        self.offset = torch.zeros((), dtype=torch.int64).share_memory_()

    def target_energy(self, transform=None) -> tuple[float, int]:
        """Sum of squared target samples over every sample a segment can cover, and their count.

        ``transform`` (e.g. a loss's pre-emphasis) filters the target first.
        """
        y = self.y[:, self.first : self.first + self.starts + self.segment_length - 1]
        if transform is not None:
            with torch.no_grad():
                y = transform(y.unsqueeze(0))
        y = y.double()
        return float(y.pow(2).sum()), y.numel()

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's tiling offset (the same on every rank for one seed)."""
        if self.jitter:
            rng = np.random.default_rng([self.seed, epoch])
            self.offset.fill_(int(rng.integers(0, self.segment_length)))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < self.count:
            raise IndexError(i)
        t0 = self.first + (int(self.offset) + i * self.segment_length) % self.starts
        t1 = t0 + self.segment_length
        return self.x[:, t0 - self.history : t1], self.y[:, t0:t1]


class RegionWindow(Dataset):
    """A whole region as one item: every sample in ``[start, end)`` is a target.

    The input carries the ``history`` samples that precede the region (silence before
    the file's start, with any knob channels already at their value), as a model
    running through the recording would have seen them.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, start: int, end: int, history: int):
        lo = start - history
        xs = torch.from_numpy(np.ascontiguousarray(x[:, max(0, lo) : end]))
        xs = pad_silence(xs[None], -lo)[0].contiguous()  # before the file: silence, knobs set
        self.item = (xs, torch.from_numpy(y[:, start:end]))

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i != 0:
            raise IndexError(i)
        return self.item
