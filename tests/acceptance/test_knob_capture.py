"""Acceptance: a knob-aware capture of the shared TS9 drive capture, at seen and unseen
settings (skipped, with a reason, when ../shared/data is absent)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf

from ampnet.data.audio import read_audio
from ampnet.formats import load_model_file
from ampnet.stream import render

from ..conftest import REPO, SHARED, run_module

CAPTURE = SHARED / "captures" / "TS9_DriveKnob.json"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not ((SHARED / "di.wav").is_file() and CAPTURE.is_file()),
        reason=f"reference recordings (di.wav, captures/TS9_DriveKnob.json) not found at {SHARED}; "
        "set AMPNET_SHARED_DATA to run the acceptance tests",
    ),
]

TRAINED, UNSEEN = (0.0, 0.5, 1.0), (0.25, 0.75)
# 130 optimiser steps (5 epochs of 26 batches of 16 x 8192, from the three settings) of
# the conditioned wavenet_nano, 90 s of one CPU thread here, reach validation ESR 0.034,
# 0.039 and 0.061 at drive 0, 0.5 and 1, and 0.033 and 0.049 at the unseen 0.25 and
# 0.75. A model that ignores the knob cannot get below 0.118 at every trained setting
# at once (the best blend of the three targets), an untrained one sits near 1: the
# bounds fail both and leave 1.5x room for other CPUs' arithmetic.
EPOCHS = 5
SEEN_BOUND = 0.09
UNSEEN_BOUND = 0.09


def test_a_knob_aware_wavenet_learns_the_drive_knob_and_plays_settings_it_never_heard(
    tmp_path, monkeypatch
):
    # one thread: on a shared 2-core machine two busy-waiting threads make training 8x slower
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # the targets: the real DI through the conditioned capture, read by our AIDA-X reader
    capture = load_model_file(CAPTURE).model
    di, rate = read_audio(SHARED / "di.wav")
    pairs = []
    for drive in TRAINED:
        out = tmp_path / f"drive_{drive:.2f}.wav"
        sf.write(out, render(capture, di, params={capture.params[0]: drive}), rate, "FLOAT")
        pairs.append(f"{{input:'{SHARED / 'di.wav'}',output:'{out}',params:{{drive:{drive}}}}}")
    run_dir = tmp_path / "run"
    result = run_module(
        "ampnet.train",
        "model=wavenet_nano",
        "data=shared_ts9_drive",
        f"data.pairs=[{','.join(pairs)}]",
        "optim=adam_cosine",
        "optim.lr=0.008",
        "data.segment_length=8192",
        "data.batch_size=16",
        f"trainer.max_epochs={EPOCHS}",
        "callbacks.early_stopping=null",
        "callbacks.progress_bar=null",
        "logger=none",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["global_steps"] == 26 * EPOCHS

    scores = tmp_path / "scores.json"
    command = [
        sys.executable,
        str(REPO / "scripts" / "eval_knobs.py"),
        "--model",
        str(run_dir),
        "--settings",
        ",".join(str(s) for s in TRAINED + UNSEEN),
        "--capture",
        str(CAPTURE),
        "--di",
        str(SHARED / "di.wav"),
        "--json",
        str(scores),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    esr = {float(k): v for k, v in json.loads(scores.read_text())["knob_models"][0]["esr"].items()}
    print(result.stdout, file=sys.stderr)
    assert max(esr[s] for s in TRAINED) < SEEN_BOUND, esr
    assert max(esr[s] for s in UNSEEN) < UNSEEN_BOUND, esr
    # the knob is learned as a continuum: between the settings it is as good as at them
    assert max(esr[s] for s in UNSEEN) < 1.5 * max(esr[s] for s in TRAINED), esr
