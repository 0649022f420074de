"""Comparing a prediction with its target: metrics, the figure, the HTML page.

``ampnet.compare`` and every training run (``report.png``, ``report.html``) use
:func:`write_report`, so a capture is judged the same way everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ampnet.atomic import atomic_output
from ampnet.report.figures import comparison_figure
from ampnet.report.html import report_html
from ampnet.report.metrics import alignment_warnings, compare_signals


def write_report(
    target: np.ndarray,
    prediction: np.ndarray,
    sample_rate: int,
    *,
    png: str | Path | None = None,
    html: str | Path | None = None,
    json_path: str | Path | None = None,
    di: np.ndarray | None = None,
    title: str = "ampnet comparison",
) -> dict:
    """Compute the metrics and write whichever of the figure, page and JSON are asked for."""
    metrics = compare_signals(target, prediction, sample_rate)
    warnings = alignment_warnings(metrics)
    if png or html:
        figure = comparison_figure(target, prediction, sample_rate, metrics, title)
        if png:
            with atomic_output(png) as tmp:
                figure.savefig(tmp, format="png", dpi=90)
        if html:
            tracks = {"target": target, "prediction": prediction, "difference": target - prediction}
            if di is not None:
                tracks = {"DI (input)": di, **tracks}
            page = report_html(title, metrics, warnings, figure, sample_rate, tracks)
            with atomic_output(html) as tmp:
                tmp.write_text(page)
    if json_path:
        with atomic_output(json_path) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    return {**metrics, "warnings": warnings}


def write_run_report(run_dir: Path, examples: dict, sample_rate: int, title: str) -> dict:
    """``report.png`` and ``report.html`` of a training run, on its test region (the
    validation region if there is none); ``examples`` maps stage -> (di, target, prediction)."""
    stage = "test" if "test" in examples else "val"
    di, target, prediction = (t.numpy() for t in examples[stage])
    return write_report(
        target,
        prediction,
        sample_rate,
        png=run_dir / "report.png",
        html=run_dir / "report.html",
        di=di,
        title=f"{title}: {stage} region",
    )


def score_performance(model, x: np.ndarray, y: np.ndarray, sample_rate: int) -> dict:
    """How ``model`` plays a whole performance it never trained on: ``x`` ``(channels, n)``
    played from silence (as a player hears it) against the recording ``y`` ``(n,)``; ESR,
    pre-emphasised ESR and MR-STFT, as every report measures them."""
    import torch

    from ampnet.stream import render

    knobs = {name: float(x[1 + i, 0]) for i, name in enumerate(model.params)}
    with torch.no_grad():
        played = render(model, x[0], params=knobs or None)
    m = compare_signals(y, played, sample_rate)
    return {"esr": m["esr"], "esr_pre_emphasis": m["esr_pre_emphasis"], "mrstft": m["mrstft"],
            "seconds": m["seconds"]}  # fmt: skip
