"""Compare a prediction with its target: ``python -m ampnet.compare target.wav prediction.wav``.

Prints ESR (plain and pre-emphasised), MR-STFT, null depth, loudness, peaks, DC and
the lag and polarity between the two (which, when off, ruin every other number).
``-o`` saves the comparison figure, ``-p`` shows it, ``--html`` writes a page with
players, ``--json`` prints one flat JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

import matplotlib
import numpy as np
from rich.console import Console
from rich.table import Table

from ampnet.data.align import apply_alignment, estimate_lag
from ampnet.data.audio import read_audio, resample
from ampnet.errors import AmpnetError, exit_on_user_error
from ampnet.report import write_report
from ampnet.report.figures import comparison_figure
from ampnet.report.html import LABELS


def load_pair(
    target_path: str, prediction_path: str, align: bool, say
) -> tuple[np.ndarray, np.ndarray, int]:
    """Both files at the target's rate and length; mismatches are errors unless ``align``."""
    target, rate = read_audio(target_path)
    prediction, p_rate = read_audio(prediction_path)
    if p_rate != rate:
        if not align:
            raise AmpnetError(
                f"{prediction_path}: {p_rate} Hz but the target is {rate} Hz; resample it or pass --align"
            )
        say(f"ampnet: resampling {prediction_path} from {p_rate} Hz to {rate} Hz")
        prediction = resample(prediction, p_rate, rate)
    if align:
        alignment = estimate_lag(target, prediction, max_lag=rate)
        if alignment.lag or alignment.inverted:
            say(
                f"ampnet: aligned: prediction shifted by {alignment.lag} samples"
                f"{', polarity flipped' if alignment.inverted else ''}"
            )
        target, prediction = apply_alignment(target, prediction, alignment)
    elif len(target) != len(prediction):
        raise AmpnetError(
            f"{prediction_path}: {len(prediction)} samples but the target has {len(target)}; "
            "trim them to the same length or pass --align"
        )
    return target, prediction, rate


def print_table(metrics: dict) -> None:
    table = Table(title="prediction vs target", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("meaning", style="dim")
    for key, value in metrics.items():
        if key == "warnings":
            continue
        label, note = LABELS.get(key, (key, ""))
        shown = f"{value:.5g}" if isinstance(value, float) else str(value)
        table.add_row(label, shown, note)
    Console().print(table)


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ampnet.compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("target", help="what the gear recorded")
    parser.add_argument("prediction", help="what the model produced from the same DI")
    parser.add_argument("-p", "--plot", action="store_true", help="show the comparison figure")
    parser.add_argument("-o", "--output", help="save the comparison figure (PNG)")
    parser.add_argument(
        "--html", help="write a self-contained page with players, metrics and figures"
    )
    parser.add_argument("--di", help="the DI, for a player in the HTML page")
    parser.add_argument(
        "--json", action="store_true", help="print one flat JSON object instead of a table"
    )
    parser.add_argument(
        "--align", action="store_true", help="resample, shift, flip and trim to line them up"
    )
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    target, prediction, rate = load_pair(args.target, args.prediction, args.align, say)
    di = None
    if args.di:
        di, di_rate = read_audio(args.di)
        di = di[: len(target)] if di_rate == rate else None
    title = args.title or f"{args.prediction} vs {args.target}"
    result = write_report(
        target, prediction, rate, png=args.output, html=args.html, di=di, title=title
    )
    for warning in result["warnings"]:
        say(f"ampnet: warning: {warning}")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "warnings"}))
    else:
        print_table(result)
    if args.plot:
        import matplotlib.pyplot as plt  # here alone: pyplot picks a display backend

        if matplotlib.get_backend().lower() == "agg":
            say("ampnet: warning: no display to show the figure on; use -o comparison.png")
        else:
            comparison_figure(target, prediction, rate, result, title, fig=plt.figure())
            plt.show()


if __name__ == "__main__":
    main()
