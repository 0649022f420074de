"""A self-contained HTML report: players, the metrics table and the figure in one file."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import soundfile as sf

from ampnet.report.metrics import ESR_BAND_KEYS, ESR_BANDS

MAX_AUDIO_SECONDS = 30.0  # per player: keeps a report a few MB

LABELS = {
    "esr": ("ESR", "error energy / target energy; < 0.01 very close"),
    "esr_pre_emphasis": (
        "ESR, pre-emphasised",
        "ESR after a 0.85 first-order high-pass: weighs the highs",
    ),
    "esr_audible": (
        "ESR above 20 Hz",
        "ESR of both high-passed at 20 Hz: leaves out DC and drift no one hears",
    ),
    **{
        key: (
            f"  of it, {lo:g}-{hi:g} Hz" if hi else f"  of it, {lo:g} Hz and up",
            "this band's error over the whole target's energy (the bands add up to the ESR)"
            if lo == 0
            else "",
        )
        for key, (lo, hi) in zip(ESR_BAND_KEYS, ESR_BANDS, strict=True)
    },
    "mrstft": ("MR-STFT distance", "multi-resolution spectral distance (lower is closer)"),
    "null_db": ("Null depth (dB)", "residual level relative to the target"),
    "residual_dbfs": ("Residual level (dBFS)", "RMS level of target - prediction"),
    "lufs_target": ("Loudness, target (LUFS)", "BS.1770 integrated loudness"),
    "lufs_prediction": ("Loudness, prediction (LUFS)", ""),
    "lufs_difference": ("Loudness difference (LU)", "prediction - target"),
    "peak_target_dbfs": ("Peak, target (dBFS)", ""),
    "peak_prediction_dbfs": ("Peak, prediction (dBFS)", ""),
    "dc_target": ("DC, target", "mean sample value"),
    "dc_prediction": ("DC, prediction", ""),
    "lag_samples": ("Lag (samples)", "positive: the prediction is late"),
    "polarity_inverted": ("Polarity inverted", ""),
    "correlation": ("Peak correlation", "1 = identical up to gain"),
    "sample_rate": ("Sample rate (Hz)", ""),
    "seconds": ("Duration (s)", ""),
}


def audio_data_uri(audio: np.ndarray, sample_rate: int) -> str:
    """A 16-bit FLAC data URI of at most MAX_AUDIO_SECONDS of ``audio``, clipped to full scale."""
    clip = np.clip(audio[: int(MAX_AUDIO_SECONDS * sample_rate)], -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, clip, sample_rate, format="FLAC", subtype="PCM_16")
    return "data:audio/flac;base64," + base64.b64encode(buffer.getvalue()).decode()


def png_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.5g}"
    return html.escape(str(value))


def report_html(
    title: str,
    metrics: dict,
    warnings: list[str],
    figure,
    sample_rate: int,
    tracks: dict[str, np.ndarray],
) -> str:
    """The page: ``tracks`` (name -> audio) as players, then the metrics, then the figure."""
    players = "\n".join(
        f"<figure><figcaption>{html.escape(name)}</figcaption>"
        f'<audio controls preload="auto" data-track="{html.escape(name)}" src="{audio_data_uri(audio, sample_rate)}">'
        "</audio></figure>"
        for name, audio in tracks.items()
    )
    rows = "\n".join(
        f"<tr><th>{html.escape(LABELS.get(k, (k, ''))[0])}</th><td>{_value(v)}</td>"
        f"<td class=note>{html.escape(LABELS.get(k, ('', ''))[1])}</td></tr>"
        for k, v in metrics.items()
    )
    notes = "".join(f"<p class=warning>{html.escape(w)}</p>" for w in warnings)
    longest = max((len(a) for a in tracks.values()), default=0) / sample_rate
    excerpt = (
        f"<p class=note>Players hold the first {MAX_AUDIO_SECONDS:.0f} s of {longest:.0f} s.</p>"
        if longest > MAX_AUDIO_SECONDS
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }}
h1 {{ font-size: 1.5em; }} figure {{ display: inline-block; margin: 0 1.5em 1em 0; }}
figcaption {{ font-weight: 600; margin-bottom: .3em; }} audio {{ width: 340px; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: .25em .8em; border-bottom: 1px solid #ddd; }}
.note {{ color: #666; font-size: .9em; }} .warning {{ background: #fff3cd; padding: .5em; border-left: 4px solid #e0a800; }}
img {{ max-width: 100%; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<section><h2>Listen</h2>{players}{excerpt}</section>
<section><h2>Metrics</h2>{notes}<table>{rows}</table></section>
<section><h2>Figures</h2><img alt="comparison figure" src="{png_data_uri(figure)}"></section>
<div id="audio-status" data-loaded="0" data-failed="0" data-total="{len(tracks)}"></div>
<script>
(function () {{
  var status = document.getElementById("audio-status");
  document.querySelectorAll("audio").forEach(function (a) {{
    function mark(attr) {{
      status.setAttribute(attr, String(Number(status.getAttribute(attr)) + 1));
      a.setAttribute("data-duration", String(a.duration));
    }}
    if (a.readyState >= 1) mark("data-loaded");
    else {{
      a.addEventListener("loadedmetadata", function () {{ mark("data-loaded"); }}, {{ once: true }});
      a.addEventListener("error", function () {{ mark("data-failed"); }}, {{ once: true }});
    }}
  }});
}})();
</script>
</body></html>
"""
