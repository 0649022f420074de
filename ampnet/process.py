"""Process a recording through a model: ``python -m ampnet.process in.wav -o out.wav``.

The output has the input's length and rate, treats everything before the file's
start as silence, and is written atomically; the input is never touched. A
knob-aware model needs every knob set: ``--param drive=0.3`` (repeat per knob).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ampnet.data.audio import read_audio, resample, write_audio
from ampnet.errors import AmpnetError, exit_on_user_error
from ampnet.formats import LoadedModel, load_model_file
from ampnet.runs import resolve_checkpoint
from ampnet.stream import knob_values, render

MODEL_SUFFIXES = (".nam", ".json")


def open_model(
    spec: str, outputs: str | os.PathLike = "outputs", size: float | None = None
) -> LoadedModel:
    """``best`` / ``last`` (newest run), a run directory, a checkpoint or an exported model
    file; ``size`` (0 to 1) for a slimmable .nam (a container plays one of its models)."""
    if Path(spec).suffix.lower() in MODEL_SUFFIXES:
        return load_model_file(spec, size)
    return load_model_file(resolve_checkpoint(spec, outputs), size)


def process_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    model: str = "best",
    device: str = "cpu",
    chunk: int = 65536,
    channel: int | str | None = None,
    threads: int | None = None,
    outputs: str | os.PathLike = "outputs",
    quiet: bool = False,
    params: Mapping[str, float] | None = None,
    size: float | None = None,
) -> dict:
    """Render ``input_path`` through the model into ``output_path``; returns what was done.

    ``params`` sets a knob-aware model's knobs (every one, 0 to 1); ``size`` (0 to 1) what
    a slimmable .nam plays (a container: the model for that size)."""
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.resolve() == input_path.resolve():
        raise AmpnetError(f"{output_path}: is the input; choose another output path (-o)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AmpnetError("-d cuda: no CUDA device is available here; use -d cpu")
    if chunk < 1:
        raise AmpnetError(f"-c {chunk}: the chunk size must be a positive number of samples")
    loaded = open_model(model, outputs, size)
    params = knob_values(getattr(loaded.model, "params", []), params)
    audio, rate = read_audio(input_path, channel)
    model_rate = int(loaded.sample_rate or rate)
    say = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    x = audio
    if rate != model_rate:
        say(
            f"ampnet: {input_path.name} is {rate} Hz, the model {model_rate} Hz: resampling with soxr"
        )
        x = resample(audio, rate, model_rate)
    y = _render_with_progress(
        loaded, x, params, device, chunk, threads, quiet or len(x) < 5 * model_rate
    )
    if rate != model_rate:
        y = resample(y, model_rate, rate)
        y = np.pad(y, (0, max(0, len(audio) - len(y))))[: len(audio)]
    subtype = (
        "FLOAT" if output_path.suffix.lower() in (".wav", ".aiff", ".aif", ".caf", "") else None
    )
    write_audio(output_path, y, rate, subtype=subtype)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    knobs = f" at {', '.join(f'{k}={v:g}' for k, v in params.items())}" if params else ""
    say(
        f"ampnet: wrote {output_path} ({len(y) / rate:.2f} s at {rate} Hz, peak "
        f"{20 * np.log10(max(peak, 1e-12)):.1f} dBFS) through {loaded.source}{knobs}"
    )
    if peak > 1.0 and subtype != "FLOAT":
        say(
            f"ampnet: warning: the output peaks above full scale ({peak:.2f}) and clips in {output_path.suffix}"
        )
    return {
        "output": str(output_path),
        "samples": len(y),
        "sample_rate": rate,
        "model": loaded.source,
        "params": params,
    }


def _render_with_progress(loaded, x, params, device, chunk, threads, quiet) -> np.ndarray:
    kwargs = dict(
        params=params,
        input_gain_db=loaded.input_gain_db,
        chunk=chunk,
        threads=threads,
        device=device,
    )
    if quiet:
        return render(loaded.model, x, **kwargs)
    columns = (
        TextColumn("processing"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("process", total=len(x))
        return render(loaded.model, x, progress=lambda done: bar.advance(task, done), **kwargs)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ampnet.process", description=__doc__.splitlines()[0]
    )
    parser.add_argument("input", help="the recording to process (any format soundfile reads)")
    parser.add_argument(
        "-o", "--output", required=True, help="where to write the result (written atomically)"
    )
    parser.add_argument(
        "--model",
        default="best",
        help="best | last (newest run under outputs/), a run dir, a multirun folder (its run "
        "with the lowest validation ESR), a .ckpt or a .nam",
    )
    parser.add_argument("-d", "--device", default="cpu", help="cpu (native kernels) or cuda")
    parser.add_argument(
        "-c", "--chunk", type=int, default=65536, help="samples per chunk (default 65536)"
    )
    parser.add_argument(
        "--channel", default=None, help="for multi-channel input: 0, 1, ... or mean"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="a knob-aware model's knob setting, 0 to 1 (repeat for each knob)",
    )
    parser.add_argument(
        "--size",
        type=float,
        default=None,
        help="for a slimmable .nam or a SlimmableContainer: the size to play, 0 to 1 (default full)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--outputs", default="outputs", help="where runs live, for best/last")
    parser.add_argument("-q", "--quiet", action="store_true")
    return parser.parse_args(argv)


def parse_params(items: list[str]) -> dict[str, str]:
    """``["drive=0.3", ...]`` -> ``{"drive": "0.3"}``; values are checked against the model."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise AmpnetError(f"--param {item}: write it as KNOB=VALUE, e.g. --param drive=0.5")
        params[name.strip()] = value.strip()
    return params


@exit_on_user_error
def main(argv=None) -> None:
    args = parse_args(argv)
    channel = args.channel
    if channel is not None and channel != "mean":
        channel = int(channel) if channel.isdigit() else channel
    process_file(
        args.input,
        args.output,
        args.model,
        args.device,
        args.chunk,
        channel,
        args.threads,
        args.outputs,
        args.quiet,
        parse_params(args.param),
        args.size,
    )


if __name__ == "__main__":
    main()
