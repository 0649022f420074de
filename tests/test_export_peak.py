"""The export's guard: a model that blows up on its own run's recordings is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from ampnet.data.demo import ensure_demo
from ampnet.data.synth import synth_di
from ampnet.errors import AmpnetError
from ampnet.export.peak import output_peaks, recordings
from ampnet.models import LSTM
from ampnet.stream import render

from .conftest import REPO, run_module, write_checkpoint

RATE = 16000


def lstm(out_scale: float = 1.0) -> LSTM:
    """A small LSTM whose head is ``out_scale`` times its random start (1e4: blows up)."""
    torch.manual_seed(3)
    model = LSTM(hidden_size=4, input_skip=False).eval()
    with torch.no_grad():
        model.head.weight.mul_(out_scale)
        model.head.bias.zero_()
    return model


def recorded(folder, model, gear_over_model: float) -> dict:
    """A DI and the gear's output on disk: ``model``'s own output times ``gear_over_model``."""
    di = synth_di(seconds=3.0, seed=4, sr=RATE)
    sf.write(folder / "input.wav", di, RATE, subtype="FLOAT")
    sf.write(folder / "output.wav", gear_over_model * render(model, di), RATE, subtype="FLOAT")
    return {"input": str(folder / "input.wav"), "output": str(folder / "output.wav")}


def test_peaks_are_measured_against_the_gear_and_the_limit_is_applied(tmp_path):
    model = lstm()
    data = recorded(tmp_path, model, gear_over_model=0.5)  # the model plays 6.02 dB louder
    y = render(model, sf.read(tmp_path / "input.wav", dtype="float32")[0])
    (entry,) = output_peaks(model, data, limit_db=12.0)["checked"]
    assert entry["peak"] == pytest.approx(float(np.abs(y).max()), rel=1e-6)
    assert entry["at_seconds"] == pytest.approx(np.argmax(np.abs(y)) / RATE, abs=1e-3)
    assert entry["over_gear_db"] == pytest.approx(20 * np.log10(2), abs=1e-3)
    with pytest.raises(AmpnetError, match=r"input\.wav: the model's output reaches .* 6 dB above"):
        output_peaks(model, data, limit_db=3.0)


def test_a_blown_up_model_is_refused_unless_the_check_is_off(tmp_path):
    data = recorded(tmp_path, lstm(), gear_over_model=1.0)
    with pytest.raises(AmpnetError, match="diverged"):
        output_peaks(lstm(1e4), data, limit_db=12.0)
    (entry,) = output_peaks(lstm(1e4), data, limit_db=None)["checked"]
    assert entry["over_gear_db"] > 60


def test_missing_recordings_are_skipped_and_named(tmp_path):
    data = {"input": str(tmp_path / "gone.wav"), "output": str(tmp_path / "also.wav")}
    result = output_peaks(lstm(1e4), data, limit_db=12.0)
    assert result["checked"] == [] and "gone.wav" in result["skipped"][0]["reason"]
    assert output_peaks(lstm(), None, limit_db=12.0) == {
        "limit_db": 12.0,
        "checked": [],
        "skipped": [],
    }


def test_every_pair_and_the_unseen_performance_are_checked_once():
    data = {
        "input": None,
        "output": None,
        "pairs": [
            {"input": "di.wav", "output": "d0.wav", "params": {"drive": 0.0}},
            {"input": "di.wav", "output": "d1.wav", "params": {"drive": 1.0}},
            {"input": "di.wav", "output": "d1.wav", "params": {"drive": 1.0}},
        ],
        "unseen": {"input": "new.wav", "output": "new_out.wav"},
    }
    assert [(r["output"], r["params"]) for r in recordings(data)] == [
        ("d0.wav", {"drive": 0.0}),
        ("d1.wav", {"drive": 1.0}),
        ("new_out.wav", None),
    ]


def test_the_demo_runs_recordings_are_found_in_its_cache(tmp_path):
    data = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "data" / "demo.yaml"))
    data.update(cache_dir=str(tmp_path), seconds=6)
    inp, out = ensure_demo(tmp_path, seconds=6, seed=data["seed"], rig=data["rig"])
    assert [(r["input"], r["output"]) for r in recordings(data)] == [
        (str(inp), str(out)),
        (str(inp.parent / "unseen_input.wav"), str(inp.parent / "unseen_output.wav")),
    ]


@pytest.mark.slow
def test_export_refuses_a_blown_up_checkpoint_and_writes_nothing(tmp_path):
    data = recorded(tmp_path, lstm(), gear_over_model=1.0)
    run = tmp_path / "outputs" / "lstm" / "r"
    # 40 dB too loud (far louder and the read-back check of the file fails on float32 rounding)
    write_checkpoint(lstm(100.0), run / "checkpoints" / "best.ckpt", config={"data": data})
    result = run_module("ampnet.export", "ckpt=best", "formats=[torchscript]", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "input.wav: the model's output reaches" in line and "peak_limit_db=null" in line
    assert not (run / "export").exists()
    forced = run_module(
        "ampnet.export", "ckpt=best", "formats=[torchscript]", "peak_limit_db=null", cwd=tmp_path
    )
    assert forced.returncode == 0, forced.stderr[-2000:]
    card = json.loads((run / "export" / "model_card.json").read_text())
    (entry,) = card["output_peaks"]["checked"]
    assert entry["over_gear_db"] == pytest.approx(40.0, abs=0.01)
    assert "ampnet: output peak" in forced.stdout
