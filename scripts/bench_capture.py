"""The capture workflow as a benchmark: accuracy on playing the model never heard.

    .venv/bin/python scripts/bench_capture.py                          # both captures, every tool
    .venv/bin/python scripts/bench_capture.py --minutes 1 --jobs 2     # shorter signal, 2 at a time
    .venv/bin/python scripts/bench_capture.py --tools ampnet --reuse-nam --ampnet long trainer.max_epochs=100
    .venv/bin/python scripts/bench_capture.py --tools nam_a1 --jobs 2 --resume  # after a stop
    .venv/bin/python scripts/bench_capture.py --merge A/bench_capture.json B/bench_capture.json --out C

What a player does, for each tool, on this machine, in one run:

1. ``python -m ampnet.capture -o reamp.wav --minutes M``: the reamp signal (default length:
   the command's own default).
2. "Record" it through the gear: render it through each capture in
   ``../shared/data/captures/`` (LSTM captures of a real TS9 and a real Blackstar HT40,
   stand-ins for the gear, read with ampnet's own reader).
3. Train on that pair:
   * ampnet: ``python -m ampnet.train model=wavenet data=pair data.input=reamp.wav
     data.output=<recording>``: the defaults, no recipe flags (the split comes from the
     reamp signal's own layout). ``--ampnet LABEL OVERRIDES...`` adds variants.
   * NAM 0.13, A2 (its current default): ``nam-full`` (through ``scripts/nam_full_timed.py``,
     which only adds timed snapshots) with NAM's own ``config_model_packed.json`` (A2-Lite and
     A2-Full trained together; MSE + MR-STFT 5e-4, Adam 0.004, weight decay 3.17e-7,
     ExponentialLR 0.994, the ESR validation loss), its joint hook that scales the target to
     -18 dBFS RMS as its simplified trainer does, batches of 16 x 8192, 100 epochs.
   * NAM 0.13, A1 standard: the same trainer with the standard WaveNet and the recipe
     ``scripts/bench_training.py`` uses (MSE, Adam 0.004, ExponentialLR 0.993, 16 x 8192,
     100 epochs).
   Every tool trains on the reamp signal up to its validation part and validates on that part.
4. Score every model on real playing it never heard: the whole of ``../shared/data/di.wav``
   rendered through the same capture is the target; each model plays the DI from silence
   (NAM's models through their exported ``.nam``, each size of a container, read by ampnet's
   reader; one of them is checked against NAM's own engine, ``../shared/nam-core``).
   Reported: ESR, ESR above 20 Hz (both high-passed: DC and sub-sonic drift left out; rows
   of runs made before it show "-"), pre-emphasised ESR and MR-STFT on the DI, the validation ESR each tool
   reports itself and the same region scored here, the time of the whole training command
   (less the seconds its snapshots took) and parameters, and ratios against the better NAM
   model on each capture.

With ``--jobs 2`` two trainings run at once, each pinned to its own core with one thread
(the same conditions for every tool), and a training's time is the CPU seconds of its
whole command (what it would take alone on that core); ``--jobs 1`` runs one at a time
with every core, timed by the wall clock.
A NAM training on the default 3-minute signal takes hours on a small CPU; ``--resume``
continues the NAM trainings a stopped run left in ``--out`` from their last finished epoch
(``scripts/nam_full_timed.py --resume``), their clock carried over, and scores the ones
that finished without training them again.
Snapshots every ``--every`` epochs give ESR against training time, plotted per capture
(``esr_vs_time_<capture>.png``). Results go to ``--out/bench_capture.json``.
``--merge`` trains nothing: it puts the rows of runs made into separate folders on the
same signal (say ``--tools ampnet`` and ``--tools nam_a1`` started at the same time) into
one table, with the ratios and plots, as if they were one run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.resources
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ampnet.atomic import atomic_output
from ampnet.errors import AmpnetError, exit_on_user_error
from ampnet.formats import load_model_file
from ampnet.report.metrics import ESR_BAND_KEYS, compare_signals
from ampnet.stream import render

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AMPNET_SHARED_DATA", REPO.parent / "shared" / "data"))
CORE = SHARED.parent / "nam-core"
CAPTURES = {"ts9": "TS9_HighDrive.json", "ht40": "BlackstarHT40_AmpHighGain.json"}
A2_SIZES = {"A2-Lite": 0.25, "A2-Full": 1.0}  # a container plays its first max_value above the size


# ---------------------------------------------------------------- the signal and the "recording"


def make_signal(out: Path, minutes: float | None, seed: int, extra: list[str]) -> Path:
    """Write the reamp signal with ``python -m ampnet.capture`` (as a user would)."""
    name = f"reamp_{minutes or 'default'}min_seed{seed}{'_' + '_'.join(extra) if extra else ''}"
    path = out / f"{name.replace('-', '').replace('=', '')}.wav"
    if not path.is_file():
        cmd = [sys.executable, "-m", "ampnet.capture", "-o", str(path), "--seed", str(seed)]
        cmd += ["--minutes", str(minutes)] if minutes else []
        done = subprocess.run([*cmd, *extra], cwd=REPO)
        if done.returncode:  # ampnet.capture has said why (bad input: one line, status 2)
            sys.exit(done.returncode)
    return path


def record(capture: str, reamp: Path, out: Path) -> dict:
    """The capture's answer to the reamp signal and to the DI (the target nobody trains on).

    Like a recording engineer setting the interface's input level, the recording is scaled
    to peak at -1 dBFS when it would go above (NAM refuses a clipped output); the DI's
    target gets the same gain, since it stands for the same gear recorded the same way.
    """
    folder = out / capture
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"output": folder / f"{reamp.stem}_output.wav",
             "di_target": folder / f"{reamp.stem}_di_target.wav"}  # fmt: skip
    if all(p.is_file() for p in paths.values()):
        return paths
    gear = load_model_file(SHARED / "captures" / CAPTURES[capture]).model
    rendered = {}
    for key, source in (("output", reamp), ("di_target", SHARED / "di.wav")):
        x, rate = sf.read(source, dtype="float32")
        with torch.no_grad():
            rendered[key] = render(gear, x)
    gain = min(1.0, 10 ** (-1 / 20) / float(np.abs(rendered["output"]).max()))
    for key, y in rendered.items():
        sf.write(paths[key], (y * gain).astype(np.float32), rate, subtype="FLOAT")
    return paths


def reamp_split(reamp: Path) -> tuple[tuple[int, int], tuple[int, int], int]:
    """(train, validation, rate): the regions ampnet's data module picks for this signal."""
    from ampnet.data.reamp import reamp_regions

    info = sf.info(reamp)
    regions = reamp_regions(info.frames, info.samplerate)
    return regions["train"], regions["val"], info.samplerate


# ---------------------------------------------------------------------------------- the tools


def nam_a1_model() -> dict:
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_training import NAM_MODEL

    return NAM_MODEL


def nam_a2_model() -> dict:
    """NAM 0.13's own default model and recipe file (config_model_packed.json)."""
    resource = importlib.resources.files("nam.train._resources") / "config_model_packed.json"
    return json.loads(resource.read_text())


def nam_configs(tool: str, reamp: Path, target: Path, epochs: int) -> dict:
    (t0, t1), (v0, v1), rate = reamp_split(reamp)
    data = {
        "train": {"start_seconds": t0 / rate, "stop_seconds": t1 / rate, "ny": 8192},
        "validation": {"start_seconds": v0 / rate, "stop_seconds": v1 / rate, "ny": None},
        "common": {"x_path": str(reamp), "y_path": str(target), "delay": 0},
    }
    if tool == "nam_a2":  # what NAM's simplified trainer adds for A2: the target at -18 dBFS RMS
        data["joint"] = [
            {"name": "nam.data.normalize_joint_dataset_output", "kwargs": {"level_rms_dbfs": -18.0}}
        ]
    learning = {
        "train_dataloader": {
            "batch_size": 16,
            "shuffle": True,
            "pin_memory": False,
            "drop_last": True,
            "num_workers": 0,
        },  # fmt: skip
        "val_dataloader": {},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": epochs},
        "trainer_fit_kwargs": {},
    }
    model = nam_a2_model() if tool == "nam_a2" else nam_a1_model()
    return {"data.json": data, "model.json": model, "learning.json": learning}


def job_command(job: dict, args) -> list[str]:
    folder = Path(job["folder"])
    if job["tool"] == "ampnet":
        return [
            sys.executable, "-m", "ampnet.train", "model=wavenet", "data=pair",
            f"data.name={job['capture']}", f"data.input={job['reamp']}",
            f"data.output={job['output']}", f"hydra.run.dir={folder}",
            "callbacks.progress_bar=null",
            "+callbacks.snapshots._target_=ampnet.callbacks.TimedSnapshots",
            f"+callbacks.snapshots.dirpath={folder / 'snapshots'}",
            f"+callbacks.snapshots.every_n_epochs={args.every}",
            *job["overrides"],
        ]  # fmt: skip
    configs = nam_configs(job["tool"], Path(job["reamp"]), Path(job["output"]), args.nam_epochs)
    for name, config in configs.items():
        (folder / name).write_text(json.dumps(config, indent=2))
    return [
        sys.executable, str(REPO / "scripts" / "nam_full_timed.py"),
        *(str(folder / name) for name in configs), str(folder / "runs"),
        "--every", str(max(1, args.every * 2)), *(["--resume"] if job.get("resume") else []),
    ]  # fmt: skip


def nam_clock(folder: Path) -> list[dict]:
    """The per-epoch clock ``nam_full_timed.py`` keeps (empty before its first epoch)."""
    path = folder / "runs" / "snapshots" / "clock.json"
    return json.loads(path.read_text()) if path.is_file() else []


def run_job(job: dict, args, core: int | None) -> dict:
    """Train; returns the job with its wall time, snapshots and final model file(s)."""
    folder = Path(job["folder"])
    earlier = nam_clock(folder) if args.resume and job["tool"] != "ampnet" else []
    job["resume"] = bool(earlier)
    if (
        earlier
        and earlier[-1]["epoch"] >= args.nam_epochs
        and (folder / "runs" / "model.nam").is_file()
    ):
        print(f"  kept  {job['name']} ({job['capture']}): finished in an earlier run", flush=True)
        return finish_job(job, core, earlier[-1]["wall_s"], earlier[-1]["cpu_s"])
    if not earlier:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    cmd = job_command(job, args)
    env = dict(os.environ, PYTHONWARNINGS="ignore", WANDB_MODE="offline")
    if core is not None:  # one core, one thread: the same conditions for every tool
        cmd = ["taskset", "-c", str(core), *cmd]
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    print(f"  {'resume' if earlier else 'start'} {job['name']} ({job['capture']})", flush=True)
    started = time.time()
    with open(folder / "log.txt", "a" if earlier else "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own CPU time
    wall = time.time() - started
    cpu = usage.ru_utime + usage.ru_stime
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(
            f"bench_capture: {job['name']} on {job['capture']} failed; see {folder / 'log.txt'}"
        )
    prior = earlier[-1] if earlier else {"wall_s": 0.0, "cpu_s": 0.0}
    job["started"] = started
    print(f"  done  {job['name']} ({job['capture']}) in {wall:.0f} s ({cpu:.0f} CPU s)", flush=True)
    return finish_job(job, core, prior["wall_s"] + wall, prior["cpu_s"] + cpu)


def finish_job(job: dict, core: int | None, wall: float, cpu: float) -> dict:
    """The job's times, snapshots and model file(s), once its training command has ended.

    ``wall`` and ``cpu`` are the whole command's (every part of a resumed NAM run).
    """
    folder = Path(job["folder"])
    snaps_file = next(folder.rglob("snapshots.json"), None)
    snaps = json.loads(snaps_file.read_text()) if snaps_file else []
    overhead = snaps[-1]["overhead_s"] if snaps else 0.0
    # One thread pinned to one core: its CPU seconds are the time it would take alone on that
    # core, whatever else runs on the other (--jobs 2); several threads: the wall clock.
    pinned = core is not None
    scale = cpu / wall if pinned and wall > 0 else 1.0
    for s in snaps:
        if "cpu_s" in s:  # nam_full_timed.py's own clock (it carries over a resumed run)
            s["seconds"] = (s["cpu_s"] if pinned else s["wall_s"]) - s["overhead_s"]
        else:
            s["seconds"] = (s["time"] - job["started"] - s["overhead_s"]) * scale
    job.update(time_s=(wall - overhead) * scale, clock="cpu" if pinned else "wall",
               wall_s=wall - overhead, wall_measured_s=wall, cpu_s=cpu, snapshots=snaps)  # fmt: skip
    job.update(own_val=own_validation(job))
    if job["tool"] == "ampnet":
        job["model"] = str(folder / "checkpoints" / "best.ckpt")
    else:
        found = sorted((folder / "runs").glob("model.nam"))
        if not found:
            sys.exit(f"bench_capture: NAM wrote no model.nam; see {folder / 'log.txt'}")
        job["model"] = str(found[-1])
    return job


def own_validation(job: dict) -> dict:
    """The validation ESR each tool reports on its own (best checkpoint)."""
    folder = Path(job["folder"])
    if job["tool"] == "ampnet":
        metrics = json.loads((folder / "metrics.json").read_text())
        return {"model": metrics["val_esr"], "epochs": metrics["epochs"],
                "steps": metrics["global_steps"], "parameters": metrics["parameters"]}  # fmt: skip
    packed = next((folder / "runs").rglob("packed_best.json"), None)
    if packed is not None:  # ESR of each size at its best epoch
        best = json.loads(packed.read_text())["submodels"]
        names = {"channels_3": "A2-Lite", "channels_8": "A2-Full"}
        return {names.get(b["submodel_name"], b["submodel_name"]): b["best_metric"] for b in best}
    # its top-3 checkpoints are named epoch=..._step=..._ESR=<validation ESR>_MSE=...
    esrs = [
        float(m.group(1))
        for ckpt in (folder / "runs").rglob("*.ckpt")
        if (m := re.search(r"_ESR=([0-9.e+-]+)_MSE", ckpt.stem))
    ]
    return {"model": min(esrs)} if esrs else {}


# ---------------------------------------------------------------------------------- scoring


def models_of(path: str, tool: str) -> dict:
    """Every model a trained file holds: one, or each size of a NAM container."""
    if tool == "nam_a2":
        return {name: load_model_file(path, size).model for name, size in A2_SIZES.items()}
    return {"model": load_model_file(path).model}


def score(model, di: np.ndarray, target: np.ndarray, reamp: np.ndarray, recorded: np.ndarray,
          val: tuple[int, int], rate: int) -> dict:  # fmt: skip
    with torch.no_grad():
        y = render(model, di)
        y_reamp = render(model, reamp)
    m = compare_signals(target, y, rate)
    a, b = val
    val_esr = float(
        np.sum((recorded[a:b] - y_reamp[a:b]).astype(np.float64) ** 2)
        / np.sum(recorded[a:b].astype(np.float64) ** 2)
    )
    return {"di_esr": m["esr"], "di_esr_pre": m["esr_pre_emphasis"], "di_mrstft": m["mrstft"],
            "di_esr_audible": m["esr_audible"], "val_esr": val_esr,
            "di_esr_bands": {k: m[k] for k in ESR_BAND_KEYS},
            "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip


def score_job(job: dict, every_snapshot: bool) -> list[dict]:
    """One row per model the job trained (two for a container), with its ESR-vs-time curve."""
    di, rate = sf.read(SHARED / "di.wav", dtype="float32")
    target = sf.read(job["di_target"], dtype="float32")[0]
    reamp = sf.read(job["reamp"], dtype="float32")[0]
    recorded = sf.read(job["output"], dtype="float32")[0]
    _, val, _ = reamp_split(Path(job["reamp"]))
    rows = []
    finals = models_of(job["model"], job["tool"])
    curves: dict[str, list] = {name: [] for name in finals}
    if every_snapshot:
        for snap in job["snapshots"]:
            if not Path(snap["path"]).is_file():
                continue
            for name, model in models_of(snap["path"], job["tool"]).items():
                s = score(model, di, target, reamp, recorded, val, rate)
                curves[name].append([snap["seconds"], s["di_esr"], s["val_esr"]])
    for name, model in finals.items():
        label = job["name"] if name == "model" else f"{job['name']} {name}"
        keep = (
            "tool",
            "capture",
            "time_s",
            "clock",
            "wall_s",
            "wall_measured_s",
            "cpu_s",
            "own_val",
        )
        row = {k: job[k] for k in keep}
        row.update(label=label, model_file=job["model"], overrides=job.get("overrides", []))
        row.update(score(model, di, target, reamp, recorded, val, rate))
        row["curve"] = curves[name]
        rows.append(row)
    return rows


def engine_check(nam_file: str, seconds: float = 5.0) -> dict:
    """One NAM export played by NAM's own engine (exact tanh) against ampnet's reader."""
    if not (CORE / "build.sh").is_file():
        return {"skipped": f"{CORE} not found"}
    built = subprocess.run(["bash", str(CORE / "build.sh")], capture_output=True, text=True)
    if built.returncode != 0:
        return {"skipped": "NAM's engine did not build"}
    tool = built.stdout.strip().splitlines()[-1]
    di, rate = sf.read(SHARED / "di.wav", dtype="float32")
    x = di[: int(seconds * rate)]
    work = Path(nam_file).parent
    sf.write(work / "engine_in.wav", x, rate, subtype="FLOAT")
    subprocess.run([tool, "render", nam_file, str(work / "engine_in.wav"),
                    str(work / "engine_out.wav")], check=True, capture_output=True)  # fmt: skip
    engine = sf.read(work / "engine_out.wav", dtype="float32")[0]
    with torch.no_grad():
        ours = render(load_model_file(nam_file).model, x)
    diff = ours.astype(np.float64) - engine
    return {"file": nam_file, "seconds": seconds, "max_abs": float(np.abs(diff).max()),
            "esr": float(np.sum(diff**2) / np.sum(engine.astype(np.float64) ** 2))}  # fmt: skip


# ---------------------------------------------------------------------------------- reporting


def fmt(x, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def print_table(capture: str, rows: list[dict]) -> dict:
    nam = [r for r in rows if r["tool"].startswith("nam")]
    best = min(nam, key=lambda r: r["di_esr"]) if nam else None
    print(f"\n{capture}: trained on the reamp signal; scored on the DI (unseen playing)")
    print(f"{'model':<24} {'time s':>7} {'params':>7} {'own val':>9} {'val ESR':>9} "
          f"{'DI ESR':>9} {'DI >20Hz':>9} {'DI pre':>9} {'MR-STFT':>8} {'DI/val':>7} {'time/NAM':>9} "
          f"{'ESR/NAM':>8}")  # fmt: skip
    for r in rows:
        own = r["own_val"]
        own_v = own.get("model", own.get(r["label"].split()[-1]))
        print(
            f"{r['label']:<24} {r['time_s']:>7.0f} {r['parameters']:>7} {fmt(own_v, '>9.5f')} "
            f"{r['val_esr']:>9.5f} {r['di_esr']:>9.5f} {fmt(r.get('di_esr_audible'), '>9.5f')} "
            f"{r['di_esr_pre']:>9.5f} "
            f"{r['di_mrstft']:>8.3f} {r['di_esr'] / r['val_esr']:>7.1f} "
            f"{fmt(best and r['time_s'] / best['time_s'], '>9.2f')} "
            f"{fmt(best and r['di_esr'] / best['di_esr'], '>8.2f')}",
            flush=True,
        )
    goals = {}
    if best is not None:
        print(f"best NAM model here: {best['label']} (DI ESR {best['di_esr']:.5f}, "
              f"{best['time_s']:.0f} s)")  # fmt: skip
        for r in rows:
            if r["tool"] != "ampnet":
                continue
            within = [p for p in r["curve"] if p[0] <= best["time_s"]]
            at_nam_time = min((p[1] for p in within), default=r["di_esr"])
            third = [p for p in r["curve"] if p[0] <= best["time_s"] / 3]
            at_third = min((p[1] for p in third), default=math.nan)
            goals[r["label"]] = {
                "di_esr_over_best_nam": r["di_esr"] / best["di_esr"],
                "time_over_best_nam": r["time_s"] / best["time_s"],
                "best_snapshot_within_nam_time_over_nam": at_nam_time / best["di_esr"],
                "best_snapshot_within_third_of_nam_time_over_nam": at_third / best["di_esr"],
                "di_over_val": r["di_esr"] / r["val_esr"],
            }
            g = goals[r["label"]]
            print(
                f"{r['label']}: DI ESR {g['di_esr_over_best_nam']:.2f}x best NAM in "
                f"{g['time_over_best_nam']:.2f}x its time (goal <= 0.5x in <= 1x); within a third "
                f"of its time {fmt(g['best_snapshot_within_third_of_nam_time_over_nam'], '.2f')}x "
                f"(goal <= 1x); DI/val {g['di_over_val']:.1f} (goal <= 2)"
            )
    return goals


def plot(capture: str, rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        curve = np.array(r["curve"]) if r["curve"] else np.zeros((0, 3))
        style = "-" if r["tool"] == "ampnet" else "--"
        if len(curve):
            ax.plot(curve[:, 0] / 60, curve[:, 1], style, marker=".", label=r["label"])
            ax.plot([r["time_s"] / 60], [r["di_esr"]], "k*", markersize=8)
        else:  # --no-curves: the final model alone, in the row's own colour and name
            ax.plot([r["time_s"] / 60], [r["di_esr"]], "*", markersize=10, label=r["label"])
    ax.set_yscale("log")
    ax.set_xlabel(
        "training time, minutes (snapshots; * = the final model at the end of the command)"
    )
    ax.set_ylabel("ESR on the unseen DI")
    ax.set_title(f"{capture}: accuracy on playing never heard, against training time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge(files: list[Path], out: Path) -> None:
    """One table from earlier runs' ``bench_capture.json`` on the same signal (same bytes)."""
    runs = []
    for f in files:
        if not f.is_file():
            raise AmpnetError(
                f"bench_capture: {f} not found; give the bench_capture.json of each run to merge"
            )
        try:
            run = json.loads(f.read_text())
        except json.JSONDecodeError:
            run = None
        if not isinstance(run, dict) or not {"reamp", "rows"} <= set(run):
            raise AmpnetError(
                f"bench_capture: {f} is not a bench_capture.json (no 'reamp' and 'rows')"
            )
        runs.append(run)
    digests = set()
    for f, run in zip(files, runs, strict=True):
        reamp = Path(run["reamp"])
        if not reamp.is_file():
            raise AmpnetError(
                f"bench_capture: {f} names {reamp}, which is gone; merge runs whose folders are kept"
            )
        digests.add(hashlib.sha256(reamp.read_bytes()).hexdigest())
    if len(digests) > 1:
        raise AmpnetError(
            f"bench_capture: {' and '.join(map(str, files))} were run on different reamp "
            "signals; merge runs of the same --minutes, --seed and --capture-args only"
        )
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for run in runs for r in run["rows"]]
    results = {"reamp": runs[0]["reamp"], "seconds": runs[0]["seconds"],
               "merged_from": [str(f) for f in files], "rows": [], "goals": {}}  # fmt: skip
    for capture in sorted({r["capture"] for r in rows}):
        mine = sorted((r for r in rows if r["capture"] == capture),
                      key=lambda r: (r["tool"] == "ampnet", r["label"]))  # fmt: skip
        results["rows"] += mine
        results["goals"][capture] = print_table(capture, mine)
        plot(capture, mine, out / f"esr_vs_time_{capture}.png")
    checks = [run["engine_check"] for run in runs if run.get("engine_check")]
    if checks:
        results["engine_check"] = checks[0]
    with atomic_output(out / "bench_capture.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out / 'bench_capture.json'} and esr_vs_time_*.png in {out}")


# ---------------------------------------------------------------------------------- main


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", nargs="+", default=list(CAPTURES), choices=list(CAPTURES))
    parser.add_argument("--minutes", type=float, default=None,
                        help="reamp signal length (default: ampnet.capture's default)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="the reamp signal's seed")
    parser.add_argument("--capture-args", default="",
                        help="more arguments for ampnet.capture, as one string ('--version 2')")  # fmt: skip
    parser.add_argument("--tools", nargs="+", default=["ampnet", "nam_a1", "nam_a2"],
                        choices=["ampnet", "nam_a1", "nam_a2"])  # fmt: skip
    parser.add_argument("--ampnet", nargs="+", action="append", default=[],
                        metavar="LABEL [OVERRIDE ...]",
                        help="an ampnet variant beside its defaults (repeatable)")  # fmt: skip
    parser.add_argument("--no-defaults", action="store_true", help="skip ampnet's defaults row")
    parser.add_argument("--a2-captures", nargs="*", default=None, choices=list(CAPTURES),
                        help="train NAM's A2 on these captures only (default: --captures)")  # fmt: skip
    parser.add_argument("--nam-epochs", type=int, default=100)
    parser.add_argument("--every", type=int, default=5, help="ampnet epochs between snapshots")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once (one core each)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_capture")
    parser.add_argument("--reuse-nam", action="store_true",
                        help="train no NAM model: use the NAM rows of an earlier run on the same "
                        "signal (bench_capture.json in --out); rows of earlier runs are kept anyway")  # fmt: skip
    parser.add_argument("--resume", action="store_true",
                        help="NAM trainings an earlier run in --out left unfinished continue from "
                        "their last epoch (finished ones are scored again, not retrained)")  # fmt: skip
    parser.add_argument("--no-curves", action="store_true", help="score final models only")
    parser.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                        help="train nothing: one table from these runs' bench_capture.json "
                        "(the same signal), written to --out")  # fmt: skip
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.out)
        return
    if not (SHARED / "di.wav").is_file():
        raise AmpnetError(
            f"bench_capture: {SHARED / 'di.wav'} not found; "
            "set AMPNET_SHARED_DATA to the shared data folder"
        )
    if (
        any(t.startswith("nam") for t in args.tools)
        and shutil.which("taskset") is None
        and args.jobs > 1
    ):
        raise AmpnetError(
            "bench_capture: --jobs > 1 needs taskset (util-linux); install it or use --jobs 1"
        )
    created = not args.out.exists()
    args.out.mkdir(parents=True, exist_ok=True)
    earlier_file = args.out / "bench_capture.json"
    earlier = json.loads(earlier_file.read_text()) if earlier_file.is_file() else {}

    try:
        reamp = make_signal(args.out, args.minutes, args.seed, shlex.split(args.capture_args))
    except SystemExit:
        if created:  # leave no empty folder behind; rmdir refuses one that holds anything
            with contextlib.suppress(OSError):
                args.out.rmdir()
        raise
    print(f"reamp signal: {reamp} ({sf.info(reamp).duration:.1f} s)", flush=True)
    variants = ([] if args.no_defaults else [("defaults", [])]) + [
        (v[0], v[1:]) for v in args.ampnet
    ]
    jobs = []
    for capture in args.captures:
        paths = record(capture, reamp, args.out)
        common = {"capture": capture, "reamp": str(reamp), "output": str(paths["output"]),
                  "di_target": str(paths["di_target"])}  # fmt: skip
        for tool in ("nam_a2", "nam_a1"):  # the longest first, so parallel slots balance
            skip_a2 = (
                tool == "nam_a2"
                and args.a2_captures is not None
                and capture not in args.a2_captures
            )
            if tool in args.tools and not args.reuse_nam and not skip_a2:
                name = {"nam_a2": "NAM 0.13 A2", "nam_a1": "NAM 0.13 A1 standard"}[tool]
                folder = args.out / capture / f"{tool}_{reamp.stem}"
                jobs.append({**common, "tool": tool, "name": name, "folder": str(folder)})
        if "ampnet" in args.tools:
            for label, overrides in variants:
                folder = args.out / capture / f"ampnet_{label}_{reamp.stem}"
                jobs.append({**common, "tool": "ampnet", "name": f"ampnet {label}",
                             "folder": str(folder), "overrides": overrides})  # fmt: skip

    print(f"{len(jobs)} trainings, {args.jobs} at a time", flush=True)
    if args.jobs > 1:
        cores = list(range(args.jobs))
        free = list(cores)

        def slot(job):
            core = free.pop()
            try:
                return run_job(job, args, core)
            finally:
                free.append(core)

        with ThreadPoolExecutor(args.jobs) as pool:
            done = list(pool.map(slot, jobs))
    else:
        done = [run_job(job, args, None) for job in jobs]

    torch.set_num_threads(os.cpu_count() or 1)
    # Rows of earlier runs on the same signal stay (marked), unless this run trains them again:
    # NAM's rows are the long ones, and a rerun of ampnet's need not repeat them.
    same_signal = earlier.get("reamp") == str(reamp)
    kept = [r for r in earlier.get("rows", []) if same_signal]
    if args.reuse_nam and not any(r["tool"].startswith("nam") for r in kept):
        raise AmpnetError(
            f"bench_capture: no NAM rows for {reamp.name} in {earlier_file}; "
            "run without --reuse-nam"
        )
    results = {"reamp": str(reamp), "seconds": sf.info(reamp).duration, "jobs": args.jobs,
               "rows": [], "goals": {}}  # fmt: skip
    for capture in sorted({*args.captures, *(r["capture"] for r in kept)}):
        new_rows = [row for job in done if job["capture"] == capture
                    for row in score_job(job, not args.no_curves)]  # fmt: skip
        fresh = {r["label"] for r in new_rows}
        old_rows = [
            {**r, "label": r["label"].removesuffix(" (earlier run)") + " (earlier run)"}
            for r in kept
            if r["capture"] == capture and r["label"].removesuffix(" (earlier run)") not in fresh
        ]
        rows = sorted(old_rows + new_rows, key=lambda r: (r["tool"] == "ampnet", r["label"]))
        results["rows"] += rows
        results["goals"][capture] = print_table(capture, rows)
        plot(capture, rows, args.out / f"esr_vs_time_{capture}.png")
    nam_files = [r["model_file"] for r in results["rows"] if r["tool"] == "nam_a1"]
    if nam_files:
        results["engine_check"] = engine_check(nam_files[0])
        print(f"\nscoring checked in NAM's engine: {results['engine_check']}")
    with atomic_output(earlier_file) as tmp:
        tmp.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {earlier_file} and esr_vs_time_*.png in {args.out}")


if __name__ == "__main__":
    main()
