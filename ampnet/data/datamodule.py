"""The LightningDataModule over one or more DI/amp recording pairs."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler

from ampnet.data.checks import PairCheck, check_pair
from ampnet.data.reamp import is_reamp_signal, reamp_regions
from ampnet.data.windows import RegionWindow, TrainWindows, split_regions
from ampnet.errors import AmpnetError
from ampnet.models.knobs import SettingError, check_names, check_setting

# auto: a recording of ampnet's reamp signal is split by its layout (train on everything
# before its validation part), anything else by these fractions
DEFAULT_SPLIT = {"unit": "auto", "train": [0.0, 0.8], "val": [0.8, 0.9], "test": [0.9, 1.0]}


class AudioDataModule(L.LightningDataModule):
    """Paired recordings split by time into train / val / test regions.

    Give ``input`` and ``output`` for one pair, or ``pairs=[{input, output}, ...]``.
    For a knob-aware capture, ``params`` names the knobs and every pair gives its
    setting, ``pairs=[{input, output, params: {drive: 0.5}}, ...]`` (values 0 to 1):
    the model then reads the audio plus one constant channel per knob. Every pair is
    split by time on its own, so each setting is in training and in validation.
    ``history`` (input samples before each target) comes from the model: its
    ``history`` property (``receptive_field - 1`` plus any burn-in); training sets it.
    Levels stay as recorded; ``input_gain_db`` (stored with the model) scales the DI.
    """

    def __init__(
        self,
        input: str | None = None,
        output: str | None = None,
        pairs: Sequence[Mapping] | None = None,
        params: Sequence[str] | None = None,
        name: str = "data",
        split: Mapping | None = None,
        segment_length: int = 16384,
        batch_size: int = 2,
        jitter: bool = True,
        num_workers: int = 0,
        channel: int | str | None = None,
        input_gain_db: float = 0.0,
        latency: int | str | None = "auto",
        fix_polarity: bool = False,
        resample: bool = False,
        unseen: Mapping | None = None,
        history: int = 0,
    ):
        super().__init__()
        if pairs is None:
            pairs = [{"input": input, "output": output}]
        elif input is not None or output is not None:
            raise AmpnetError("data: give either data.input/data.output or data.pairs, not both")
        self.name = name
        self.params = _knob_names(params)
        self.pairs = [
            {"input": p["input"], "output": p["output"], "params": self._setting(i, p)}
            for i, p in enumerate(pairs)
        ]
        self.split = dict(split or DEFAULT_SPLIT)
        self.segment_length = int(segment_length)
        self.batch_size = int(batch_size)
        self.jitter = bool(jitter)
        self.num_workers = int(num_workers)
        self.channel = channel
        self.input_gain_db = float(input_gain_db)
        self.latency = latency
        self.fix_polarity = bool(fix_polarity)
        self.resample = bool(resample)
        self.history = int(history)
        self.unseen_paths = dict(unseen) if unseen and unseen.get("input") else None
        self.unseen: tuple[np.ndarray, np.ndarray] | None = None
        self.checks: list[PairCheck] = []
        self.sample_rate: int | None = None
        self.regions: list[dict[str, tuple[int, int]]] = []
        self._sets: dict[str, ConcatDataset] = {}

    def _setting(self, index: int, pair: Mapping) -> dict[str, float]:
        """The pair's knob values, one for each name in ``params``, each in [0, 1]."""
        given = dict(pair.get("params") or {})
        where = f"data.pairs[{index}] ({pair.get('output')})"
        try:
            return check_setting(self.params, given)
        except SettingError as err:
            if err.bad is not None:
                knob, value = err.bad
                raise AmpnetError(
                    f"{where}: {knob}={value} is not a number in [0, 1] "
                    "(0 = knob at minimum, 1 = at maximum)"
                ) from None
            if not self.params:
                raise AmpnetError(
                    f"{where} sets knobs {sorted(given)} but data.params names none; "
                    f"list the knob names, e.g. data.params=[{','.join(sorted(given))}]"
                ) from None
            detail = "; ".join(
                f"{what} {sorted(names)}"
                for what, names in (("missing", err.missing), ("unknown", err.unknown))
                if names
            )
            raise AmpnetError(
                f"{where}: give a value for each knob in data.params {self.params} ({detail})"
            ) from None

    def _check_present(self) -> None:
        for pair in self.pairs:
            missing = [
                p for p in (pair["input"], pair["output"]) if p is None or not Path(p).is_file()
            ]
            if missing:
                looked = " and ".join(
                    str(Path(p).resolve()) for p in (pair["input"], pair["output"]) if p
                )
                raise AmpnetError(
                    f"recordings for data={self.name} not found (looked for {looked or 'no paths given'}); "
                    "put the DI at the input path and the amp recording at the output path, or pass "
                    "data.input=... data.output=...; to try ampnet without recordings use data=demo"
                )

    def setup(self, stage: str | None = None) -> None:
        """Read and check every pair once, then cut the regions into datasets."""
        if self._sets:
            return
        self._check_present()
        gain = np.float32(10.0 ** (self.input_gain_db / 20.0))
        sets: dict[str, list] = {"train": [], "val": [], "test": []}
        for pair in self.pairs:
            x, y, rate, check = check_pair(
                pair["input"],
                pair["output"],
                channel=self.channel,
                latency=self.latency,
                fix_polarity=self.fix_polarity,
                resample=self.resample,
            )
            self.checks.append(check)
            if self.sample_rate is None:
                self.sample_rate = rate
            elif rate != self.sample_rate:
                raise AmpnetError(
                    f"{pair['input']}: {rate} Hz but the first pair is {self.sample_rate} Hz; "
                    "use one sample rate for every pair"
                )
            regions = self._split(x, rate, check)
            # the DI, then one constant channel per knob: what the model reads
            x = np.vstack([x * gain, *(np.full_like(x, v) for v in pair["params"].values())])
            y = y[None, :]
            self._check_lengths(pair["input"], regions, rate)
            self.regions.append(regions)
            train = TrainWindows(
                x, y, *regions["train"], self.history, self.segment_length, jitter=self.jitter,
                seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),
            )  # fmt: skip
            sets["train"].append(train)
            for name in ("val", "test"):
                if name in regions:
                    sets[name].append(RegionWindow(x, y, *regions[name], self.history))
        self._sets = {name: ConcatDataset(items) for name, items in sets.items() if items}
        if self.unseen_paths is not None:
            self.unseen = self._read_unseen(gain)
        self._report_checks()

    def _read_unseen(self, gain: np.float32) -> tuple[np.ndarray, np.ndarray]:
        """The other performance to score on (``data.unseen``): checked and aligned like the
        training pairs; ``(channels, n)`` input (knobs at the first pair's setting) and ``(n,)``."""
        paths = self.unseen_paths
        missing = [
            p for p in (paths.get("input"), paths.get("output")) if not Path(str(p)).is_file()
        ]
        if missing:
            raise AmpnetError(
                f"data.unseen: {missing[0]} not found; give data.unseen.input and "
                "data.unseen.output (another performance through the same gear), or drop data.unseen"
            )
        x, y, rate, check = check_pair(
            paths["input"], paths["output"], channel=self.channel, latency=self.latency,
            fix_polarity=self.fix_polarity, resample=self.resample,
        )  # fmt: skip
        self.checks.append(check)
        if rate != self.sample_rate:
            raise AmpnetError(
                f"{paths['input']}: {rate} Hz but the training pairs are {self.sample_rate} Hz; "
                "use one sample rate"
            )
        knobs = self.pairs[0]["params"].values()
        return np.vstack([x * gain, *(np.full_like(x, v) for v in knobs)]), y

    def _split(self, x: np.ndarray, rate: int, check: PairCheck) -> dict[str, tuple[int, int]]:
        """The regions of one pair: ``data.split``, where ``unit: auto`` means the reamp
        signal's own layout when ``x`` is ampnet's reamp file, else the fractions given."""
        if self.split.get("unit") != "auto":
            return split_regions(len(x), rate, self.split)
        if is_reamp_signal(x, rate):
            regions = reamp_regions(len(x), rate)
            (t0, t1), (v0, v1) = regions["train"], regions["val"]
            check.notes.append(
                f"ampnet's reamp signal: training on {t0 / rate:.2f}-{t1 / rate:.2f} s, "
                f"validation on its validation part, {v0 / rate:.2f}-{v1 / rate:.2f} s"
            )
            return regions
        return split_regions(len(x), rate, {**self.split, "unit": "fraction"})

    def _report_checks(self) -> None:
        """What alignment did (stdout) and what looks suspicious (stderr), once per run."""
        if os.environ.get("LOCAL_RANK", "0") != "0":
            return
        for check in self.checks:
            for note in check.notes:
                print(f"ampnet: data: {Path(check.output).name}: {note}", flush=True)
            for warning in check.warnings:
                print(f"ampnet: warning: {warning}", file=sys.stderr, flush=True)

    def _check_lengths(self, path: str, regions: dict[str, tuple[int, int]], rate: int) -> None:
        start, end = regions["train"]
        need = self.history + self.segment_length
        if end - start < need:
            raise AmpnetError(
                f"{path}: the training region is {(end - start) / rate:.2f} s ({end - start} samples) "
                f"but one training window needs the model's history ({self.history}) plus "
                f"data.segment_length ({self.segment_length}) = {need} samples; use a longer "
                "recording, a larger data.split.train, or a smaller data.segment_length"
            )

    def require_segment_length(self, minimum: int, why: str) -> None:
        """Refuse a ``segment_length`` shorter than ``minimum`` samples, which ``why`` needs."""
        if self.segment_length < minimum:
            raise AmpnetError(
                f"data.segment_length={self.segment_length} is shorter than {why} needs "
                f"({minimum} samples); raise data.segment_length"
            )

    def target_power(self, transform=None) -> float:
        """Mean power of the training target (every pair's training region) after
        ``transform``: the scale of the ``nmse`` loss (``nmse_pre``: after the pre-emphasis)."""
        parts = [w.target_energy(transform) for w in self._sets["train"].datasets]
        energy, count = zip(*parts, strict=True)
        return sum(energy) / max(1, sum(count))

    def set_epoch(self, epoch: int) -> None:
        """Move the training tiling for ``epoch`` (``data.jitter``); called as each epoch starts."""
        for windows in self._sets["train"].datasets:
            windows.set_epoch(epoch)

    @property
    def has_test(self) -> bool:
        return "test" in self._sets

    def train_dataloader(self) -> DataLoader:
        data = self._sets["train"]
        return DataLoader(
            data,
            batch_size=min(self.batch_size, len(data)),
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _region_loader(self, name: str) -> DataLoader:
        # Under DDP every rank evaluates every region (a one-replica sampler stops Lightning
        # from splitting them): metrics are exact and equal on all ranks, with no region
        # padded in twice when the count does not divide by the number of ranks.
        data = self._sets[name]
        sampler = DistributedSampler(data, num_replicas=1, rank=0, shuffle=False)
        return DataLoader(data, batch_size=1, sampler=sampler, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return self._region_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._region_loader("test")


def _knob_names(params: Sequence[str] | None) -> list[str]:
    """``data.params`` as a list of distinct knob names, or one clear error."""
    try:
        return check_names(params)
    except ValueError as err:
        raise AmpnetError(f"data.params={[str(p) for p in params or []]}: {err}") from None
