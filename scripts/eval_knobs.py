"""Score knob-aware captures at trained and unseen knob settings against a reference capture.

    python scripts/eval_knobs.py --model outputs/wavenet/<run> [--model outputs/lstm/<run>]
        [--single 0.5=outputs/wavenet/<run>] [--settings 0,0.25,0.5,0.75,1] [--json out.json]

The targets are the shared DI (``../shared/data/di.wav``) rendered through the
conditioned TS9 capture (``captures/TS9_DriveKnob.json``, an LSTM whose second input is
the drive knob) at each setting: at 0, 0.5 and 1 they are the ``ts9_drive/`` recordings
the models trained on, 0.25 and 0.75 were never seen. Every model plays the whole DI
from silence (``ampnet.stream.render``) and is scored by ESR on the last ``--val-seconds``
(the validation region of ``data=shared_ts9_drive``). ``--model`` takes knob-aware models
(scored at every setting); ``--single SETTING=MODEL`` a one-setting model, scored at its
setting only (the baseline: one capture per knob position).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from ampnet.data.audio import read_audio
from ampnet.errors import AmpnetError, exit_on_user_error
from ampnet.losses import esr
from ampnet.process import open_model
from ampnet.stream import render

SHARED = Path(
    os.environ.get("AMPNET_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SETTINGS = (0.0, 0.25, 0.5, 0.75, 1.0)
TRAINED = (0.0, 0.5, 1.0)


def targets(di: np.ndarray, capture: str, settings) -> dict[float, np.ndarray]:
    """The DI through the conditioned reference capture at each drive setting."""
    model = open_model(capture).model
    return {s: render(model, di, params={model.params[0]: s}) for s in settings}


def score(spec: str, di: np.ndarray, wanted: dict[float, np.ndarray], tail: int) -> dict:
    """ESR of one model over the last ``tail`` samples at each setting in ``wanted``."""
    loaded = open_model(spec)
    names = loaded.model.params
    if len(names) > 1:
        raise AmpnetError(f"{spec}: has knobs {names}; this script scores one-knob models")
    result = {}
    for setting, target in wanted.items():
        y = render(
            loaded.model,
            di,
            params={names[0]: setting} if names else None,
            input_gain_db=loaded.input_gain_db,
        )
        result[setting] = float(esr(torch.from_numpy(y[-tail:]), torch.from_numpy(target[-tail:])))
    return {"model": loaded.source, "esr": result}


def evaluate(models, singles, settings, di_path, capture, val_seconds) -> dict:
    di, rate = read_audio(di_path)
    tail = int(val_seconds * rate)
    refs = targets(di, capture, sorted(set(settings) | set(singles)))
    rows = {"knob_models": [score(m, di, {s: refs[s] for s in settings}, tail) for m in models]}
    rows["single_setting_models"] = [
        score(path, di, {setting: refs[setting]}, tail) for setting, path in singles.items()
    ]
    rows.update(settings=list(settings), trained=list(TRAINED), val_seconds=val_seconds)
    return rows


def table(rows: dict) -> str:
    """A Markdown table: one row per setting, one column per model."""
    columns = [
        (Path(r["model"]).parent.parent.name or r["model"], r["esr"]) for r in rows["knob_models"]
    ]
    singles = {s: r["esr"][s] for r in rows["single_setting_models"] for s in r["esr"]}
    head = ["drive", *(f"knob model {name}" for name, _ in columns)]
    if singles:
        head.append("one model per setting")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in sorted(set(rows["settings"]) | set(singles)):
        seen = "trained" if s in rows["trained"] else "unseen"
        cells = [f"{s:.2f} ({seen})"] + [f"{e[s]:.4f}" if s in e else "" for _, e in columns]
        if singles:
            cells.append(f"{singles[s]:.4f}" if s in singles else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="a knob-aware model")
    parser.add_argument(
        "--single",
        action="append",
        default=[],
        metavar="SETTING=MODEL",
        help="a one-setting model and the drive setting it captured",
    )
    parser.add_argument("--settings", default=",".join(str(s) for s in SETTINGS))
    parser.add_argument("--di", default=str(SHARED / "di.wav"))
    parser.add_argument("--capture", default=str(SHARED / "captures" / "TS9_DriveKnob.json"))
    parser.add_argument("--val-seconds", type=float, default=9.0)
    parser.add_argument("--json", default=None, help="also write the scores here")
    args = parser.parse_args(argv)
    singles = {}
    for item in args.single:
        setting, sep, path = item.partition("=")
        if not sep:
            raise AmpnetError(f"--single {item}: write it as SETTING=MODEL, e.g. 0.5=outputs/...")
        singles[float(setting)] = path
    if not args.model and not singles:
        raise AmpnetError("nothing to score: pass --model and/or --single")
    settings = [float(s) for s in args.settings.split(",")]
    rows = evaluate(args.model, singles, settings, args.di, args.capture, args.val_seconds)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
