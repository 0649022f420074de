"""The leaderboard: every model family, two sizes each, on each capture; accuracy on playing
the model never heard against what it costs to play.

    .venv/bin/python scripts/bench_architectures.py                        # everything
    .venv/bin/python scripts/bench_architectures.py --data ht40 demo --epochs 20 --jobs 2

For each data set it runs a Hydra multirun, ``python -m ampnet.train -m model=<every
preset>``, with the default recipe, and one more with ``experiment=recurrent`` for the LSTMs
and GRUs (``RECIPES``; ``--epochs`` sets ``trainer.max_epochs`` for all, without the default's
step budget, ``step_budget=null``: every data set trains the epochs asked for), then scores every
run's best checkpoint. ``--variant LABEL OVERRIDE ...`` trains every model once more with
those overrides (a recipe to compare, e.g. ``--variant pre loss=nmse_pre``), listed as
``model [LABEL]``:

* ``ts9``, ``ht40``: the capture workflow of ``scripts/bench_capture.py``: ampnet's reamp
  signal rendered through the shared capture is the training pair; the unseen playing is
  the real DI (``../shared/data/di.wav``) through the same capture.
* ``real_pair``: the real recorded pair; trained on its start, validated on its last 9 s,
  scored on the 4 s between them, which no run sees (a held-out region of the same
  performance: a weaker test than new playing).
* ``demo``: the built-in demo rig; scored on the other performance the demo renders (a
  differently synthesised DI through the same rig).

Per model: ESR, pre-emphasised ESR and MR-STFT on the unseen playing, parameters,
multiply-adds per sample, the streaming real-time factor at 64-sample blocks on one
thread (``Streamer``: the native kernel where the model has one, else PyTorch), the
aliasing it adds to a pure tone (``ampnet.report.aliasing``: the worst of four tones, in dB
below its output; the fizz a nonlinearity folds back at 48 kHz), and the training wall time. Writes ``leaderboard.md``, ``leaderboard.csv``, ``leaderboard.json``
and ``pareto_<data>.png`` (unseen ESR against real-time factor, NAM's models marked when
``--peers`` names a ``bench_capture.json``) to ``--out``. Each multirun also writes its own
sweep summary (``summary.md``, ``summary.csv``) in its folder. Where NAM's training time is
known, each table also names the best model at RTF <= 0.05 within NAM's time and within a
third of it. ``--every N`` snapshots every run each N epochs and scores the snapshots too
(they join that search): ``curves_<data>.png``, unseen ESR against training time, NAM's
final model marked (a snapshot is mid-schedule: the learning rate has not decayed yet).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench_capture import SHARED, make_signal, reamp_split, record  # noqa: E402
from bench_training import NAM_MODEL, nam_data, nam_learning  # noqa: E402

from ampnet.formats import load_model_file  # noqa: E402
from ampnet.report.aliasing import aliasing_report  # noqa: E402
from ampnet.report.metrics import compare_signals  # noqa: E402
from ampnet.stream import Streamer, render  # noqa: E402

# family -> (small: live use, large); the extra TFiLM TCN is its own row
MODELS = {
    "WaveNet (NAM A1)": ["wavenet_nano", "wavenet_a1"],
    "WaveNet (NAM A2 layout)": ["a2_lite", "a2", "wavenet", "wavenet_silu"],
    "LSTM": ["lstm", "lstm_large"],
    "GRU": ["gru", "gru_large"],
    "GCN": ["gcn", "gcn_long"],
    "TCN": ["tcn", "tcn_long", "tcn_tfilm"],
    "S4D": ["s4d", "s4d_large"],
    "gray box": ["graybox", "graybox_rational"],
}
# what a family trains with beyond the defaults (the WaveNet recipe leaves a recurrent model
# on a high-gain amp at ESR 1; conf/experiment/recurrent.yaml)
RECIPES = {"LSTM": ["experiment=recurrent"], "GRU": ["experiment=recurrent"]}
DATA = ["ts9", "ht40", "real_pair", "demo"]
TEST_SECONDS, VAL_SECONDS = 4.0, 9.0


def family_of(preset: str) -> str:
    return next(f for f, presets in MODELS.items() if preset in presets)


def data_setup(name: str, out: Path, minutes: float) -> tuple[list[str], callable, dict]:
    """The training overrides for data set ``name``, a function scoring a model on its
    unseen playing (``score(model) -> metrics``), and NAM's data config for the same
    training and validation regions."""
    if name in ("ts9", "ht40"):
        reamp = make_signal(out, minutes, 0, ["--version", "2"])
        paths = record(name, reamp, out)
        overrides = ["data=pair", f"data.name={name}", f"data.input={reamp}",
                     f"data.output={paths['output']}"]  # fmt: skip
        x = sf.read(SHARED / "di.wav", dtype="float32")[0]
        y, rate = sf.read(paths["di_target"], dtype="float32")
        (t0, t1), (v0, v1), sr = reamp_split(reamp)
        nam = nam_data(reamp, paths["output"], (t0 / sr, t1 / sr), (v0 / sr, v1 / sr))
        return overrides, lambda model: compare(y, render(model, x), rate), nam
    if name == "real_pair":
        test = -(VAL_SECONDS + TEST_SECONDS)
        overrides = ["data=shared_real_pair", f"data.split.train=[0.0,{test}]",
                     f"data.split.test=[{test},{-VAL_SECONDS}]"]  # fmt: skip

        def score(model):
            from ampnet.data.checks import check_pair

            folder = SHARED / "real_pair"
            x, y, rate, _ = check_pair(folder / "input.wav", folder / "output.wav")
            n = len(x)
            a, b = n + int(test * rate), n - int(VAL_SECONDS * rate)
            return compare(y[a:b], render(model, x)[a:b], rate)

        nam = nam_data(SHARED / "real_pair" / "input.wav", SHARED / "real_pair" / "output.wav",
                       (None, test), (-VAL_SECONDS, None))  # fmt: skip
        return overrides, score, nam
    if name == "demo":
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf

        from ampnet.data.demo import ensure_demo

        with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=["data=demo"])
        d = cfg.data
        inp, _ = ensure_demo(REPO / d.cache_dir, d.seconds, d.seed, OmegaConf.to_container(d.rig))
        x = sf.read(inp.parent / "unseen_input.wav", dtype="float32")[0]
        y, rate = sf.read(inp.parent / "unseen_output.wav", dtype="float32")
        seconds = sf.info(inp).duration  # the pair's own split: fractions of the file
        split = {k: [f * seconds for f in d.split[k]] for k in ("train", "val")}
        nam = nam_data(inp, inp.parent / "output.wav", split["train"], split["val"])
        return ["data=demo"], lambda model: compare(y, render(model, x), rate), nam
    raise SystemExit(f"bench_architectures: unknown data set {name!r}; choose from {DATA}")


def compare(target: np.ndarray, played: np.ndarray, rate: int) -> dict:
    m = compare_signals(target, played, rate)
    return {"esr": m["esr"], "esr_pre": m["esr_pre_emphasis"], "mrstft": m["mrstft"]}


def macs_per_sample(model, n: int = 64) -> float:
    """The model's own count when it has one, else the matrix products of one streamed block."""
    if hasattr(model, "macs_per_sample"):
        return float(model.macs_per_sample)
    x = 0.1 * torch.randn(1, model.input_channels, n)
    state = model.initial_state(1)  # outside the count: settling runs the network on silence
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.forward_with_state(x, state)
    return counter.get_total_flops() / 2 / n


def aliasing_db(model, rate: int) -> float:
    """The worst inharmonic (folded-back) tone power of ``ampnet.report.aliasing``, in dB."""
    with torch.no_grad():
        return aliasing_report(lambda x: render(model, x), rate)["worst_db"]


def realtime_factor(model, rate: int, block: int = 64, seconds: float = 5.0) -> tuple[float, str]:
    """Seconds to stream ``seconds`` of audio in ``block``-sample blocks on one thread, per
    second of audio (best of three), and the engine that ran it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = (0.1 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype(np.float32)
        streamer = Streamer(model, max_block=block)
        out = np.empty(block, np.float32)
        best = float("inf")
        for _ in range(3):
            streamer.reset()
            started = time.perf_counter()
            for i in range(0, len(x) - block + 1, block):
                streamer.process(x[i : i + block], out)
            best = min(best, time.perf_counter() - started)
        return best / seconds, streamer.backend
    finally:
        torch.set_num_threads(threads)


def variants(args) -> dict[str, list[str]]:
    """``--variant LABEL OVERRIDE ...``: label -> overrides; the plain runs are ``""``."""
    found = {"": []}
    for label, *overrides in args.variant or []:
        if not overrides or not label.isidentifier() or label in found:
            print(f"bench_architectures: --variant {label}: give a new label (a word) and at "
                  "least one override, e.g. --variant pre loss=nmse_pre", file=sys.stderr)  # fmt: skip
            sys.exit(2)
        found[label] = overrides
    return found


def train(name: str, overrides: list[str], presets: list[str], args, core: int | None) -> Path:
    """One multirun per recipe (``RECIPES``) and variant (``--variant``) on data set
    ``name``: ``runs/<name>/<recipe>/``, ``runs/<name>/<variant>+<recipe>/``."""
    sweep = args.out / "runs" / name
    shutil.rmtree(sweep, ignore_errors=True)
    groups: dict[tuple[str, ...], list[str]] = {}
    for preset in presets:
        groups.setdefault(tuple(RECIPES.get(family_of(preset), [])), []).append(preset)
    env = dict(os.environ, PYTHONWARNINGS="ignore", WANDB_MODE="offline")
    taskset = []
    if core is not None:
        taskset = ["taskset", "-c", str(core)]
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for (variant, extra), (recipe, members) in product(args.variants.items(), groups.items()):
        label = "_".join(r.split("=")[-1] for r in recipe) or "default"
        label = f"{variant}+{label}" if variant else label
        cmd = [
            *taskset, sys.executable, "-m", "ampnet.train", "-m", f"model={','.join(members)}",
            *overrides, *recipe, f"trainer.max_epochs={args.epochs}", "step_budget=null",
            "callbacks.progress_bar=null", "callbacks.audio_examples=null",
            f"hydra.sweep.dir={sweep / label}", *args.train_args, *extra,
        ]  # fmt: skip
        if args.every:
            cmd += ["+callbacks.snapshots._target_=ampnet.callbacks.TimedSnapshots",
                    "+callbacks.snapshots.dirpath=${paths.output_dir}/snapshots",
                    f"+callbacks.snapshots.every_n_epochs={args.every}"]  # fmt: skip
        (sweep / label).mkdir(parents=True, exist_ok=True)
        if variant:
            tag = {"label": variant, "overrides": extra}
            (sweep / label / "variant.json").write_text(json.dumps(tag))
        log_file = sweep.parent / f"{name}_{label}.log"
        print(f"  training {len(members)} models on {name} ({label} recipe)", flush=True)
        with open(log_file, "w") as log:
            code = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        if code.returncode != 0:
            sys.exit(f"bench_architectures: the sweep on {name} failed; see {log_file}")
    return sweep


def shown(row: dict) -> str:
    """A row's model as the tables name it: the preset, and its ``--variant`` label."""
    return f"{row['model']} [{row['variant']}]" if row.get("variant") else row["model"]


def snapshots(run: Path, train_seconds: float) -> list[dict]:
    """A run's snapshots (``--every``), each with the training seconds it was reached at;
    files from before ``seconds`` was recorded: counted back from the end of the fit."""
    found = run / "snapshots" / "snapshots.json"
    taken = json.loads(found.read_text()) if found.is_file() else []
    for i, t in enumerate(taken):
        if "seconds" not in t:
            before = taken[i - 1]["overhead_s"] if i else 0.0
            t["seconds"] = train_seconds - (taken[-1]["time"] - t["time"]) - before
    return [t for t in taken if Path(t["path"]).is_file()]


def collect(name: str, sweep: Path, score) -> list[dict]:
    rows = []
    for metrics_file in sorted(sweep.glob("*/*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        loaded = load_model_file(metrics["best_checkpoint"])
        model = loaded.model.eval()
        preset = metrics["model_name"]
        tag = metrics_file.parent.parent / "variant.json"  # what --variant trained it with
        variant = json.loads(tag.read_text()) if tag.is_file() else {"label": "", "overrides": []}
        rate = loaded.sample_rate or 48000
        rtf, engine = realtime_factor(model, rate)
        curve = [{"epoch": t["epoch"], "seconds": t["seconds"],
                  "unseen_esr": score(load_model_file(t["path"]).model.eval())["esr"]}
                 for t in snapshots(metrics_file.parent, metrics["train_seconds"])]  # fmt: skip
        rows.append({
            "data": name, "family": family_of(preset), "model": preset,
            "variant": variant["label"], "overrides": " ".join(variant["overrides"]),
            **{f"unseen_{k}": v for k, v in score(model).items()},
            "val_esr": metrics["val_esr"], "parameters": metrics["parameters"],
            "macs_per_sample": macs_per_sample(model), "rtf_64": rtf, "engine": engine,
            "aliasing_db": aliasing_db(model, rate),
            "train_seconds": metrics["train_seconds"], "epochs": metrics["epochs"],
            "run": str(metrics_file.parent), "curve": curve,
        })  # fmt: skip
        print(f"    {name:<10} {shown(rows[-1]):<24} unseen ESR {rows[-1]['unseen_esr']:.4f}  "
              f"RTF {rtf:.4f} ({engine})", flush=True)  # fmt: skip
    return rows


def train_nam(name: str, data: dict, args) -> None:
    """NAM 0.13's A1 standard WaveNet and recipe (``bench_training.py``'s), trained by
    ``nam-full`` on the regions ampnet trains and validates on, into ``nam/<name>/``; its
    CPU seconds in ``nam/<name>/time.json``. Kept when a model is there already."""
    work = args.out / "nam" / name
    if next(work.glob("runs/*/model.nam"), None) is not None and (work / "time.json").is_file():
        print(f"  NAM A1 on {name}: reusing {work}", flush=True)
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    configs = {"data.json": data, "model.json": NAM_MODEL,
               "learning.json": nam_learning(args.nam_epochs)}  # fmt: skip
    for file, config in configs.items():
        (work / file).write_text(json.dumps(config, indent=2))
    nam_full = shutil.which("nam-full", path=str(Path(sys.executable).parent))
    if nam_full is None:
        sys.exit("bench_architectures: nam-full not found; run make install (bench extra)")
    cmd = [nam_full, *(str(work / f) for f in configs), str(work / "runs"), "--no-show",
           "--no-plots"]  # fmt: skip
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    print(f"  training NAM A1 on {name} ({args.nam_epochs} epochs)", flush=True)
    started = time.time()
    with open(work / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or next(work.glob("runs/*/model.nam"), None) is None:
        sys.exit(f"bench_architectures: NAM's training on {name} failed; see {work / 'log.txt'}")
    times = {"wall_s": time.time() - started, "cpu_s": usage.ru_utime + usage.ru_stime,
             "epochs": args.nam_epochs}  # fmt: skip
    (work / "time.json").write_text(json.dumps(times))


# a bench_capture.json row's names for what the leaderboard shows
BENCH_CAPTURE_KEYS = [("unseen_esr_pre", "di_esr_pre"), ("unseen_mrstft", "di_mrstft"),
                      ("train_seconds", "time_s"), ("parameters", "parameters")]  # fmt: skip


def peers(path: Path | None, name: str, out: Path, score) -> list[dict]:
    """NAM's models: the A1 that ``--nam`` trained here on the same regions (scored like
    ampnet's), else those of a bench_capture.json (ts9, ht40); with their engine's RTF."""
    trained = sorted((out / "nam" / name).glob("runs/*/model.nam"))
    if trained and (out / "nam" / name / "time.json").is_file():
        times = json.loads((out / "nam" / name / "time.json").read_text())
        model = load_model_file(trained[-1]).model.eval()
        rtf, engine = realtime_factor(model, 48000)
        metrics = score(model)
        return [{"label": "NAM 0.13 A1 standard", "unseen_esr": metrics["esr"],
                 "unseen_esr_pre": metrics["esr_pre"], "unseen_mrstft": metrics["mrstft"],
                 "rtf_64": rtf, "engine": engine, "train_seconds": times["cpu_s"],
                 "aliasing_db": aliasing_db(model, 48000),
                 "epochs": times["epochs"], "parameters": sum(p.numel() for p in model.parameters()),
                 "model_file": str(trained[-1])}]  # fmt: skip
    if path is None or not path.is_file() or name not in ("ts9", "ht40"):
        return []
    out_rows = []
    for r in json.loads(path.read_text())["rows"]:
        if r["capture"] != name or not r["tool"].startswith("nam"):
            continue
        model = load_model_file(r["model_file"], 1.0 if "Full" in r["label"] else 0.25).model
        rtf, engine = realtime_factor(model, 48000)
        row = {"label": r["label"], "unseen_esr": r["di_esr"], "rtf_64": rtf, "engine": engine,
               "aliasing_db": aliasing_db(model, 48000)}  # fmt: skip
        for ours, theirs in BENCH_CAPTURE_KEYS:
            if theirs in r:
                row[ours] = r[theirs]
        out_rows.append(row)
    return out_rows


def plot(name: str, rows: list[dict], marks: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    families = list(MODELS)
    colors = plt.cm.tab10(np.linspace(0, 1, len(families)))
    for r in rows:
        c = colors[families.index(r["family"])]
        ax.scatter(r["rtf_64"], r["unseen_esr"], color=c, s=40)
        ax.annotate(shown(r), (r["rtf_64"], r["unseen_esr"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    for m in marks:
        ax.scatter(m["rtf_64"], m["unseen_esr"], marker="*", s=140, color="black")
        ax.annotate(m["label"], (m["rtf_64"], m["unseen_esr"]), fontsize=7,
                    xytext=(3, -9), textcoords="offset points")  # fmt: skip
    ax.axvline(0.05, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("streaming real-time factor, 64-sample blocks, one thread (ampnet's Streamer)")
    ax.set_ylabel("ESR on unseen playing")
    ax.set_title(f"{name}: accuracy against cost (* NAM 0.13, trained by NAM)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(name: str, rows: list[dict], marks: list[dict], path: Path) -> None:
    """Unseen ESR against training time: each run's snapshots (``--every``), NAM's final
    model as a star at its training time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        if r.get("curve"):
            minutes = [p["seconds"] / 60 for p in r["curve"]]
            ax.plot(minutes, [p["unseen_esr"] for p in r["curve"]], marker=".", label=shown(r))
    for m in marks:
        if "train_seconds" in m:
            ax.plot([m["train_seconds"] / 60], [m["unseen_esr"]], "k*", markersize=12)
            ax.annotate(m["label"], (m["train_seconds"] / 60, m["unseen_esr"]), fontsize=7,
                        xytext=(-60, 8), textcoords="offset points")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("training time, minutes, one core (snapshots mid-schedule)")
    ax.set_ylabel("ESR on unseen playing")
    ax.set_title(f"{name}: accuracy against training time (* NAM 0.13, its final model)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def within_time(rows: list[dict], seconds: float) -> tuple[dict, dict] | None:
    """The best final model or snapshot, of a model at RTF <= 0.05, reached within
    ``seconds`` of training."""
    points = [(r, p) for r in rows if r["rtf_64"] <= 0.05
              for p in [*r.get("curve", []), {"epoch": r["epochs"], "seconds": r["train_seconds"],
                                              "unseen_esr": r["unseen_esr"]}]
              if p["seconds"] <= seconds]  # fmt: skip
    return min(points, key=lambda rp: rp[1]["unseen_esr"], default=None)


def write_tables(rows: list[dict], marks: dict, out: Path) -> None:
    columns = ["data", "family", "model", "variant", "overrides", "unseen_esr", "unseen_esr_pre", "unseen_mrstft",
               "val_esr", "parameters", "macs_per_sample", "rtf_64", "engine", "aliasing_db",
               "train_seconds", "epochs"]  # fmt: skip
    with open(out / "leaderboard.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = []
    for name in dict.fromkeys(r["data"] for r in rows):
        part = sorted((r for r in rows if r["data"] == name), key=lambda r: r["unseen_esr"])
        lines += [f"\n### {name}\n",
                  "| model | family | unseen ESR | pre-emph. ESR | MR-STFT | val ESR | params | "
                  "MACs/sample | RTF @64 | engine | aliasing dB | epochs | train s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in part:
            lines.append(
                f"| `{shown(r)}` | {r['family']} | {r['unseen_esr']:.4f} | "
                f"{r['unseen_esr_pre']:.4f} | {r['unseen_mrstft']:.3f} | {r['val_esr']:.4f} | "
                f"{r['parameters']} | {r['macs_per_sample']:.0f} | {r['rtf_64']:.4f} | "
                f"{r['engine']} | {r['aliasing_db']:.0f} | {r['epochs']} | "
                f"{r['train_seconds']:.0f} |"
            )
        for m in marks.get(name, []):
            pre = f"{m['unseen_esr_pre']:.4f}" if "unseen_esr_pre" in m else "-"
            stft = f"{m['unseen_mrstft']:.3f}" if "unseen_mrstft" in m else "-"
            secs = f"{m['train_seconds']:.0f}" if "train_seconds" in m else "-"
            lines.append(
                f"| {m['label']} (peer) | NAM | {m['unseen_esr']:.4f} | {pre} | {stft} | - | "
                f"{m.get('parameters', '-')} | - | {m['rtf_64']:.4f} | {m.get('engine', '-')} | "
                f"{m['aliasing_db']:.0f} | {m.get('epochs', '-')} | {secs} |"
            )
        live = [r for r in part if r["rtf_64"] <= 0.05]
        if live:
            best = live[0]
            line = (f"\nBest at RTF <= 0.05: `{shown(best)}` ({best['family']}), "
                    f"unseen ESR {best['unseen_esr']:.4f}")  # fmt: skip
            a1 = [m for m in marks.get(name, []) if "A1" in m["label"]]
            if a1:
                ratio = best["unseen_esr"] / a1[0]["unseen_esr"]
                verdict = "below" if ratio < 1 else "not below"
                line += f"; {ratio:.2f}x {a1[0]['label']}'s ({verdict} it)"
            lines.append(line + ".")
            if a1 and "train_seconds" in a1[0]:
                nam = a1[0]
                for share, words in ((1.0, "NAM's time"), (1 / 3, "a third of NAM's time")):
                    found = within_time(part, share * nam["train_seconds"])
                    if found:
                        r, p = found
                        lines.append(
                            f"Within {words} ({share * nam['train_seconds']:.0f} s), the best "
                            f"model or snapshot at RTF <= 0.05: `{shown(r)}` at epoch {p['epoch']}, "
                            f"{p['seconds']:.0f} s, unseen ESR {p['unseen_esr']:.4f}; "
                            f"{p['unseen_esr'] / nam['unseen_esr']:.2f}x NAM's."
                        )
        tags = {r["variant"]: r["overrides"] for r in part if r.get("variant")}
        if tags:
            lines.append(
                "\nVariants (the same models, trained with more overrides): "
                + "; ".join(f"`[{label}]` `{overrides}`" for label, overrides in tags.items())
                + "."
            )
    (out / "leaderboard.md").write_text("\n".join(lines).lstrip() + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=DATA, choices=DATA)
    parser.add_argument("--models", nargs="+", default=[p for ps in MODELS.values() for p in ps])
    parser.add_argument(
        "--epochs", type=int, default=50, help="trainer.max_epochs for every run (no step budget)"
    )
    parser.add_argument(
        "--minutes", type=float, default=1.0, help="reamp signal length (ts9, ht40)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="data sets trained at once, one core each"
    )
    parser.add_argument("--train-args", nargs="*", default=[], help="more overrides for every run")
    parser.add_argument(
        "--every", type=int, default=0, metavar="N",
        help="snapshot every run each N epochs and score the snapshots (curves_<data>.png)",
    )  # fmt: skip
    parser.add_argument(
        "--variant", nargs="+", action="append", metavar=("LABEL", "OVERRIDE"),
        help="also train every model with these overrides, listed as 'model [LABEL]' "
        "(repeatable): --variant pre loss=nmse_pre",
    )  # fmt: skip
    parser.add_argument(
        "--peers", type=Path, default=REPO / "outputs" / "bench_capture" / "bench_capture.json"
    )
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_architectures")
    parser.add_argument("--score-only", action="store_true", help="score the runs already in --out")
    parser.add_argument(
        "--nam", action="store_true",
        help="also train NAM 0.13's A1 standard on each data set's regions (nam/<data>/; kept if there)",
    )  # fmt: skip
    parser.add_argument(
        "--nam-epochs", type=int, default=100, help="NAM's epochs (its recipe: 100)"
    )
    parser.add_argument(
        "--nam-only", action="store_true", help="train NAM's peers (--nam) and stop"
    )
    args = parser.parse_args()
    args.variants = variants(args)  # a malformed --variant stops here, before any training
    args.out.mkdir(parents=True, exist_ok=True)
    setups = {name: data_setup(name, args.out, args.minutes) for name in args.data}
    sweeps = {name: args.out / "runs" / name for name in args.data}
    if args.nam and not args.score_only:
        for name in args.data:
            train_nam(name, setups[name][2], args)
        if args.nam_only:
            return
    if not args.score_only:
        if args.jobs > 1:
            free = list(range(args.jobs))

            def slot(name):
                core = free.pop()
                try:
                    return train(name, setups[name][0], args.models, args, core)
                finally:
                    free.append(core)

            with ThreadPoolExecutor(args.jobs) as pool:
                list(pool.map(slot, args.data))
        else:
            for name in args.data:
                train(name, setups[name][0], args.models, args, None)
    rows, marks = [], {}
    for name in args.data:
        rows += collect(name, sweeps[name], setups[name][1])
        marks[name] = peers(args.peers, name, args.out, setups[name][1])
        plot(name, [r for r in rows if r["data"] == name], marks[name],
             args.out / f"pareto_{name}.png")  # fmt: skip
        if any(r.get("curve") for r in rows if r["data"] == name):
            plot_curves(name, [r for r in rows if r["data"] == name], marks[name],
                        args.out / f"curves_{name}.png")  # fmt: skip
    (args.out / "leaderboard.json").write_text(json.dumps({"rows": rows, "peers": marks}, indent=1))
    write_tables(rows, marks, args.out)
    print(
        f"\nwrote leaderboard.md, leaderboard.csv, leaderboard.json and pareto_*.png in {args.out}"
    )


if __name__ == "__main__":
    main()
