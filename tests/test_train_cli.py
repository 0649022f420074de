"""``python -m ampnet.train`` end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from ampnet.checkpoints import load_model
from ampnet.stream import render

from .conftest import FAST, REPO, run_module, user_env

pytestmark = pytest.mark.slow  # every test here starts python -m ampnet.train


def pair_args(inp, out) -> list[str]:
    return ["data=pair", "data.name=synthetic", f"data.input={inp}", f"data.output={out}"]


def test_train_writes_checkpoints_metrics_and_config(tmp_path, make_pair):
    inp, out = make_pair(seconds=3.0, sr=16000)
    other_in, other_out = make_pair(seconds=1.5, sr=16000, seed=5, folder="other")
    run_dir = tmp_path / "run"
    result = run_module(
        "ampnet.train", *FAST, *pair_args(inp, out), f"hydra.run.dir={run_dir}",
        f"data.unseen.input={other_in}", f"data.unseen.output={other_out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["model_name"] == "wavenet_nano" and metrics["data_name"] == "pair"
    assert metrics["parameters"] == 841 and metrics["receptive_field"] == 4093
    assert (
        metrics["sample_rate"] == 16000 and metrics["epochs"] == 2 and metrics["global_steps"] == 6
    )
    for key in ("val_esr", "test_esr", "val_mrstft", "test_mrstft", "train_seconds"):
        assert isinstance(metrics[key], float) and np.isfinite(metrics[key]) and metrics[key] > 0, (
            key
        )
    assert str(run_dir / "metrics.json") in result.stdout  # it says where the metrics are

    for name in ("best.ckpt", "last.ckpt"):
        path = run_dir / "checkpoints" / name
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # no code in our checkpoints
        assert ckpt["hyper_parameters"]["sample_rate"] == 16000
    model, hparams = load_model(run_dir / "checkpoints" / "best.ckpt")
    assert (
        sum(p.numel() for p in model.parameters()) == 841
        and hparams["model_name"] == "wavenet_nano"
    )
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "config.yaml").is_file()
    # the other performance is scored as a player hears it: the best model from silence
    x, y = (sf.read(p, dtype="float32")[0] for p in (other_in, other_out))
    played = render(model, x)
    esr = float(np.sum((played - y) ** 2.0, dtype=np.float64) / np.sum(y**2.0, dtype=np.float64))
    assert (
        metrics["unseen_esr"] == pytest.approx(esr, rel=1e-4) and "unseen playing" in result.stdout
    )
    assert "val/esr" in (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert not list(run_dir.rglob("*.tmp*"))  # nothing half-written left behind


def test_best_checkpoint_is_checked_against_the_unvalidated_final_weights(tmp_path, make_pair):
    # validation only after epoch 2 of 3: the weights training ends with are never
    # validated during training, so training validates them at the end and keeps the better
    inp, out = make_pair(seconds=3.0, sr=16000)
    run_dir = tmp_path / "run"
    result = run_module(
        "ampnet.train", *FAST, *pair_args(inp, out), f"hydra.run.dir={run_dir}",
        "optim=adam_exponential", "optim.lr=0.01",
        "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (run_dir / "csv" / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("val/esr")
    validated = [float(r.split(",")[column]) for r in rows[1:] if r.split(",")[column]]
    epoch_two = validated[0]  # the one validation during training
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["val_esr"] <= epoch_two * (1 + 1e-6)
    ckpts = run_dir / "checkpoints"
    best = load_model(ckpts / "best.ckpt")[0].state_dict()
    final = load_model(ckpts / "last.ckpt")[0].state_dict()
    best_is_final = all(torch.equal(best[k], final[k]) for k in final)
    # the final weights won exactly when they beat epoch 2; best.ckpt then holds them
    assert best_is_final == (metrics["val_esr"] < epoch_two * (1 - 1e-6))
    assert not list(run_dir.rglob("*.tmp*"))


def test_pre_emphasised_nmse_trains_with_its_power_taken_from_the_data(tmp_path, make_pair):
    inp, out = make_pair(seconds=3.0, sr=16000)
    run_dir = tmp_path / "run"
    result = run_module(
        "ampnet.train", *FAST, *pair_args(inp, out), f"hydra.run.dir={run_dir}", "loss=nmse_pre"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/nmse", "train/nmse_pre"} <= set(header)
    assert np.isfinite(json.loads((run_dir / "metrics.json").read_text())["val_esr"])


def test_the_step_budget_trains_whole_epochs_with_the_schedule_planned_over_them(
    tmp_path, make_pair
):
    # step_budget (conf/train.yaml) caps a run by optimiser steps, in
    # whole epochs: 3 steps an epoch here, a budget of 7 trains 2 epochs (6 steps), and the
    # cosine schedule is planned over those, so it ends annealed; null trains every epoch
    inp, out = make_pair(seconds=3.0, sr=16000)
    optim = OmegaConf.load(REPO / "conf" / "optim" / "adam_cosine.yaml")
    peak, final = optim.lr, optim.scheduler.final_fraction
    runs = {}
    for budget in ("7", "null"):
        run_dir = tmp_path / f"run_{budget}"
        result = run_module(
            "ampnet.train", *FAST, *pair_args(inp, out), f"hydra.run.dir={run_dir}",
            "optim=adam_cosine", "trainer.max_epochs=4", f"step_budget={budget}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        runs[budget] = (result.stdout, json.loads((run_dir / "metrics.json").read_text()))
        last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        assert last["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(peak * final, rel=0.05)
    stdout, metrics = runs["7"]
    assert (metrics["epochs"], metrics["global_steps"]) == (2, 6)
    assert "step budget: 2 epochs of 3 steps" in stdout
    stdout, metrics = runs["null"]
    assert (metrics["epochs"], metrics["global_steps"]) == (4, 12)
    assert "step budget" not in stdout


def test_resume_from_last_continues_the_epochs(tmp_path, make_pair):
    inp, out = make_pair(seconds=3.0, sr=16000)
    run_dir = tmp_path / "run"
    args = [*FAST, *pair_args(inp, out), f"hydra.run.dir={run_dir}"]
    first = run_module("ampnet.train", *args, "trainer.max_epochs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["global_steps"] == 3
    second = run_module("ampnet.train", *args, "trainer.max_epochs=2", "ckpt_path=last")
    assert second.returncode == 0, second.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["global_steps"] == 6  # one more epoch, not two
    # the weight average (callbacks.ema, on by default) went on from where it was, over
    # every step of both runs, and the live weights were kept beside it to train on
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(last["averaging_state"]["n_averaged"]) == 6
    live, averaged = last["current_model_state"], last["state_dict"]
    assert not all(torch.equal(live[k], averaged[k]) for k in averaged)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "ctrl-c"])
def test_a_stopped_training_fails_and_says_how_to_resume(tmp_path, make_pair, sig):
    """A scheduler's SIGTERM or a Ctrl+C part-way: not a finished run (Lightning alone exits
    0 on SIGTERM, with no word of what is left), one line naming last.ckpt and the resume
    command, the shell's status for the signal, no metrics.json."""
    inp, out = make_pair(seconds=3.0, sr=16000)
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "ampnet.train", *FAST, *pair_args(inp, out),
           f"hydra.run.dir={run_dir}", "trainer.max_epochs=100000"]  # fmt: skip
    last = run_dir / "checkpoints" / "last.ckpt"
    # PYTHONFAULTHANDLER: a run still going 120 s after the signal is sent SIGABRT, which
    # prints every thread's stack to its stderr, the failure's message
    env = dict(user_env(), PYTHONFAULTHANDLER="1")
    with open(tmp_path / "stderr.txt", "w") as err:
        # as from a terminal: a shell's background job (CI, nohup) starts with SIGINT ignored
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        try:
            deadline = time.monotonic() + 300
            while not last.is_file():  # an epoch has finished: the run is in its loop
                assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
                assert time.monotonic() < deadline, "no epoch finished in 300 s"
                time.sleep(0.2)
            proc.send_signal(sig)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                proc.wait(timeout=30)
                pytest.fail("still running 120 s after the signal; its stacks:\n"
                            + (tmp_path / "stderr.txt").read_text()[-6000:])  # fmt: skip
        finally:
            proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 128 + sig, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        f"ampnet: training stopped by {sig.name} before its last epoch; the last finished "
        f"epoch is in {last}; resume with: python -m ampnet.train resume={run_dir}"
    )
    assert "Traceback" not in stderr
    assert not (run_dir / "metrics.json").exists()
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] >= 0


def test_multirun_sweep_gets_one_run_directory_each(tmp_path, make_pair):
    inp, out = make_pair(seconds=3.0, sr=16000)
    sweep = tmp_path / "sweep"
    args = [a for a in FAST if not a.startswith("model=")]
    result = run_module(
        "ampnet.train",
        "-m",
        "model=wavenet_nano,lstm",
        *args,
        *pair_args(inp, out),
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert [p.name for p in runs] == ["0_pair_wavenet_nano", "1_pair_lstm"]
    names = [json.loads((p / "metrics.json").read_text())["model_name"] for p in runs]
    assert names == ["wavenet_nano", "lstm"]
    assert all((p / "checkpoints" / "best.ckpt").is_file() for p in runs)
    # the sweep ends with its summary: a table on stdout and files beside the runs
    assert f"sweep {sweep}: 2 runs, best first" in result.stdout
    assert "model=lstm" in (sweep / "summary.md").read_text()
    assert (sweep / "summary.csv").is_file() and (sweep / "summary.png").is_file()


def write(path, audio, sr=16000):
    sf.write(path, audio, sr, subtype="FLOAT")
    return path


def bad_pairs(tmp_path, make_pair):
    inp, out = make_pair(seconds=3.0, sr=16000)
    x, _ = sf.read(inp, dtype="float32")
    return {
        "rate": (
            inp,
            write(tmp_path / "rate.wav", x, sr=22050),
            "rate.wav: 22050 Hz but the input is 16000 Hz",
        ),
        "length": (inp, write(tmp_path / "short.wav", x[:-100]), "short.wav: 47900 samples"),
        "stereo": (
            inp,
            write(tmp_path / "stereo.wav", np.stack([x, x], 1)),
            "stereo.wav: has 2 channels",
        ),
        "too_short": (
            write(tmp_path / "tiny_in.wav", x[:4000]),
            write(tmp_path / "tiny_out.wav", x[:4000]),
            "tiny_in.wav: the training region is 0.20 s",
        ),
        "missing": (tmp_path / "nope_in.wav", tmp_path / "nope_out.wav", "nope_in.wav"),
        "unreadable": (inp, tmp_path / "junk.wav", "junk.wav: cannot read it as audio"),
    }


@pytest.mark.parametrize("case", ["rate", "length", "stereo", "too_short", "missing", "unreadable"])
def test_bad_input_is_one_clear_line_and_exit_status_2(case, tmp_path, make_pair):
    (tmp_path / "junk.wav").write_bytes(b"RIFF but not really")
    inp, out, expected = bad_pairs(tmp_path, make_pair)[case]
    run_dir = tmp_path / "run"
    result = run_module("ampnet.train", *FAST, *pair_args(inp, out), f"hydra.run.dir={run_dir}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ampnet: error: "), result.stderr
    assert expected in lines[0]
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints").exists()


def test_a_meaningless_schedule_setting_is_one_clear_line(tmp_path, make_pair):
    inp, out = make_pair(seconds=3.0)
    run_dir = tmp_path / "run"
    result = run_module(
        "ampnet.train", *FAST, *pair_args(inp, out), f"hydra.run.dir={run_dir}",
        "optim.scheduler.peak_by_length=[[2000,1.0],[1000,0.5]]",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("ampnet: error: optim.scheduler.peak_by_length must be"), line
    assert not (run_dir / "checkpoints").exists()


def test_missing_user_recordings_say_where_and_point_at_the_demo(tmp_path):
    result = run_module(
        "ampnet.train", "data=ts9_pushed", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert str(tmp_path / "data" / "raw" / "ts9_pushed" / "input.wav") in line
    assert "data=demo" in line and "data.input=" in line


def test_show_prints_the_model_and_exits(tmp_path):
    result = run_module(
        "ampnet.train", "model=wavenet", "show=true", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == 0
    assert "parameters: 18761  receptive field: 6347 samples" in result.stdout


def test_training_prints_no_third_party_noise(tmp_path, make_pair):
    inp, out = make_pair(seconds=3.0, sr=16000)
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"
    }  # warnings as a user sees them
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ampnet.train",
            *FAST,
            *pair_args(inp, out),
            f"hydra.run.dir={tmp_path / 'r'}",
        ],
        cwd=REPO,
        env={**env, "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "ampnet: trained wavenet_nano" in said
    for noise in ("💡 Tip", "litlogger", "LeafSpec", "to estimate number of stepping batches"):
        assert noise not in said, noise
