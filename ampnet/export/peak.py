"""How loud a model plays its own recordings: the export's guard against a model that blows up.

A training that diverged part-way can leave weights that play most of the DI well and
answer one hard pick attack with an output thousands of times full scale (seen in a
120-epoch run at peak learning rate 0.016: 5,230x on one attack; README, "Captures that
hold up"). Validation catches it only when the attack sits in the validation part. Before
a model reaches a player's speakers, the export plays it over every recording of its run
that is still on disk (the training DI of each pair, the unseen performance) and compares
its loudest sample with the loudest sample of the gear's own recording of the same DI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from ampnet.data.audio import read_audio
from ampnet.data.demo import demo_folder
from ampnet.errors import AmpnetError
from ampnet.report.metrics import db
from ampnet.stream import render

DEFAULT_LIMIT_DB = 12.0


def recordings(data: dict | None) -> list[dict]:
    """The (input, output, params) pairs a run's data config names: its pairs (or its one
    pair) and its unseen performance, each once (for the demo: its cached recordings)."""
    data = data or {}
    if str(data.get("_target_", "")).endswith("demo_datamodule"):  # the built-in demo's cache
        folder = demo_folder(data["cache_dir"], data["seconds"], data["seed"], data["rig"])
        data = {
            "input": str(folder / "input.wav"),
            "output": str(folder / "output.wav"),
            "unseen": {
                "input": str(folder / "unseen_input.wav"),
                "output": str(folder / "unseen_output.wav"),
            },
        }
    found = []
    for pair in data.get("pairs") or [data]:
        if pair.get("input") and pair.get("output"):
            found.append(
                {"input": pair["input"], "output": pair["output"], "params": pair.get("params")}
            )
    unseen = data.get("unseen") or {}
    if unseen.get("input") and unseen.get("output"):
        found.append({"input": unseen["input"], "output": unseen["output"], "params": None})
    seen, unique = set(), []
    for rec in found:
        key = (str(rec["input"]), str(rec["output"]), repr(rec["params"]))
        if key not in seen:
            seen.add(key)
            unique.append(rec)
    return unique


def output_peaks(model: nn.Module, data: dict | None, limit_db: float | None) -> dict:
    """Play ``model`` (taking the raw DI) over each recording of ``data`` found on disk.

    Returns the card entry: per recording the model's peak, where it is, and the gear's
    peak; recordings not found are listed as skipped. Raises :class:`AmpnetError` when the
    model's peak on any of them exceeds the gear's by more than ``limit_db`` (None: no limit).
    """
    channel = (data or {}).get("channel")
    checked, skipped = [], []
    knobs = list(getattr(model, "params", None) or [])
    for rec in recordings(data):
        paths = [Path(str(rec["input"])), Path(str(rec["output"]))]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            skipped.append({"input": str(paths[0]), "reason": f"not found: {', '.join(missing)}"})
            continue
        params = rec["params"] if knobs else None
        if knobs and not params:
            skipped.append({"input": str(paths[0]), "reason": "no knob settings recorded for it"})
            continue
        di, rate = read_audio(paths[0], channel)
        gear, _ = read_audio(paths[1], channel)
        y = render(model, di, params=params)
        at = int(np.argmax(np.abs(y)))
        peak, gear_peak = float(abs(y[at])), float(np.max(np.abs(gear)))
        entry = {
            "input": str(paths[0]),
            "params": params,
            "peak": peak,
            "at_seconds": round(at / rate, 3),
            "gear_peak": gear_peak,
            "over_gear_db": db((peak / gear_peak) ** 2)
            if np.isfinite(peak) and gear_peak > 0
            else float("inf"),
        }
        checked.append(entry)
    result = {"limit_db": limit_db, "checked": checked, "skipped": skipped}
    if limit_db is None:
        return result
    worst = max(checked, key=lambda e: e["over_gear_db"], default=None)
    if worst is not None and not worst["over_gear_db"] <= limit_db:
        knob = f" with {worst['params']}" if worst["params"] else ""
        raise AmpnetError(
            f"{worst['input']}: the model's output reaches {worst['peak']:.3g} at "
            f"{worst['at_seconds']} s{knob}, {worst['over_gear_db']:.0f} dB above the gear's "
            f"loudest sample ({worst['gear_peak']:.3g}); its training diverged: export an "
            f"earlier checkpoint (ckpt=best, or a snapshot) or retrain with a lower optim.lr "
            f"(peak_limit_db=null exports it anyway)"
        )
    return result
