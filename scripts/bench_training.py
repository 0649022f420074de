"""Training, side by side with NAM: wall time, throughput and validation/test ESR.

    .venv/bin/python scripts/bench_training.py                      # both captures
    .venv/bin/python scripts/bench_training.py --data ts9_pushed --long

For each capture in ../shared/data (the DI through ts9_pushed / ht40_highgain), on the
same split for both tools -- training on the start of the DI, a test region of
``--test-seconds`` right after it that neither tool ever sees, validation on the last
9 s (what both use to pick their best checkpoint) -- it runs, one after the other:

* NAM 0.13's ``nam-full`` with its default standard WaveNet and recipe (batch 16,
  segments of 8192, Adam 0.004, ExponentialLR 0.993, 100 epochs, MSE loss), CPU;
* ``python -m ampnet.train model=wavenet data=shared_<capture>``: ampnet's defaults;
* with ``--long``: ampnet again with as many epochs as fit into NAM's wall time.

``--reuse-nam`` takes NAM's row (wall time, steps, model) from an earlier run's
``bench_training.json`` in ``--out`` instead of training NAM again: only for reruns on
the same machine, and the table says so.

Every model is scored by the same code: the exported ``model.nam`` (NAM) or the best
checkpoint (ampnet) renders the whole DI, and ESR is taken on each region. Prints a
table and the ratios, and writes ``bench_training.json`` in ``--out``.
``--test-seconds 0`` is NAM's exact protocol (train on all but the last 9 s).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ampnet.errors import AmpnetError, exit_on_user_error

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AMPNET_SHARED_DATA", REPO.parent / "shared" / "data"))
VAL_SECONDS = 9.0

NAM_MODEL = {
    "net": {
        "name": "WaveNet",
        "config": {
            "layers_configs": [
                {
                    "condition_size": 1,
                    "input_size": 1,
                    "channels": 16,
                    "kernel_size": 3,
                    "dilations": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                    "activation": "Tanh",
                    "head": {"out_channels": 8, "kernel_size": 1, "bias": False},
                },
                {
                    "condition_size": 1,
                    "input_size": 16,
                    "channels": 8,
                    "kernel_size": 3,
                    "dilations": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                    "activation": "Tanh",
                    "head": {"out_channels": 1, "kernel_size": 1, "bias": True},
                },
            ],
            "head_scale": 0.02,
        },
    },
    "optimizer": {"lr": 0.004},
    "lr_scheduler": {"class": "ExponentialLR", "kwargs": {"gamma": 0.993}},
}


def nam_a2_model() -> dict:
    """NAM 0.13's default model and recipe, its own ``config_model_packed.json``: A2-Lite and
    A2-Full trained together (MSE + MR-STFT 5e-4, Adam 0.004 with weight decay 3.17e-7,
    ExponentialLR 0.994, ESR validation)."""
    import importlib.resources

    resource = importlib.resources.files("nam.train._resources") / "config_model_packed.json"
    return json.loads(resource.read_text())


# What NAM's simplified trainer adds to the data for A2: the target scaled to -18 dBFS RMS
# (undone at export through head_scale).
NAM_A2_JOINT = [
    {"name": "nam.data.normalize_joint_dataset_output", "kwargs": {"level_rms_dbfs": -18.0}}
]
A2_SIZES = {"A2-Lite": 0.25, "A2-Full": 1.0}  # a container plays its first max_value above


def nam_learning(epochs: int) -> dict:
    return {
        "train_dataloader": {
            "batch_size": 16,
            "shuffle": True,
            "pin_memory": False,
            "drop_last": True,
            "num_workers": 0,
        },
        "val_dataloader": {},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": epochs},
        "trainer_fit_kwargs": {},
    }


def nam_data(x: Path, y: Path, train: tuple, val: tuple) -> dict:
    """NAM's data config: train and validate on the regions ``(start, stop)`` in seconds
    (negative: from the end; None: the file's start or end). The validation region need not
    follow silence (the DI has none before its last 9 s)."""
    return {
        "train": {"start_seconds": train[0], "stop_seconds": train[1], "ny": 8192},
        "validation": {
            "start_seconds": val[0],
            "stop_seconds": val[1],
            "ny": None,
            "require_input_pre_silence": None,
        },
        "common": {"x_path": str(x), "y_path": str(y), "delay": 0},
    }


def regions(n: int, rate: int, test_seconds: float) -> dict[str, tuple[int, int]]:
    val = n - int(VAL_SECONDS * rate)
    test = val - int(test_seconds * rate)
    out = {"train": (0, test), "val": (val, n)}
    if test_seconds > 0:
        out["test"] = (test, val)
    return out


def score(
    model_path: Path, di: np.ndarray, target: np.ndarray, parts: dict, size: float | None = None
) -> dict:
    """ESR of the model on each region: the whole DI rendered, silence before it."""
    from ampnet.formats import load_model_file
    from ampnet.stream import render

    loaded = load_model_file(model_path, size)
    with torch.no_grad():
        y = render(loaded.model, di, input_gain_db=loaded.input_gain_db)
    out = {}
    for name, (a, b) in parts.items():
        if name == "train":
            continue
        err = np.sum((target[a:b] - y[a:b]).astype(np.float64) ** 2)
        out[f"{name}_esr"] = float(err / np.sum(target[a:b].astype(np.float64) ** 2))
    return out


def run(cmd: list[str], log: Path, cwd: Path = REPO) -> float:
    """Run ``cmd`` with its output to ``log``; its wall time in seconds."""
    started = time.perf_counter()
    with open(log, "w") as f:
        result = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bench_training: {' '.join(cmd[:4])} ... failed; see {log}")
    return seconds


def bench_nam(capture: str, out: Path, train_stop: float, epochs: int, a2: bool = False) -> dict:
    work = out / f"nam_{'a2_' if a2 else ''}{capture}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    data = nam_data(
        SHARED / "di.wav", SHARED / f"{capture}.wav", (None, train_stop), (-VAL_SECONDS, None)
    )
    if a2:
        data["joint"] = NAM_A2_JOINT
    configs = {
        "data.json": data,
        "model.json": nam_a2_model() if a2 else NAM_MODEL,
        "learning.json": nam_learning(epochs),
    }
    for name, config in configs.items():
        (work / name).write_text(json.dumps(config, indent=2))
    nam_full = shutil.which("nam-full", path=str(Path(sys.executable).parent))
    if nam_full is None:
        raise AmpnetError("bench_training: nam-full not found; run make install (bench extra)")
    cmd = [nam_full, *(str(work / n) for n in configs), str(work / "runs"), "--no-show"]
    cmd.append("--no-plots")
    wall = run(cmd, work / "log.txt")
    exported = sorted(glob.glob(str(work / "runs" / "*" / "model.nam")))
    if not exported:
        sys.exit(f"bench_training: NAM wrote no model.nam; see {work / 'log.txt'}")
    epoch_ckpts = sorted(
        glob.glob(str(work / "runs" / "*" / "**" / "checkpoint_epoch_*.ckpt"), recursive=True)
    )
    steps = 0
    if epoch_ckpts:
        steps = torch.load(epoch_ckpts[-1], map_location="cpu", weights_only=True)["global_step"]
    name = "NAM 0.13 A2" if a2 else "NAM 0.13"
    return {"tool": name, "wall_s": wall, "steps": steps, "samples": steps * 16 * 8192,
            "model": exported[-1], "sizes": A2_SIZES if a2 else None}  # fmt: skip


def reused_nam(rows: list[dict], capture: str, source: Path, a2: bool = False) -> dict:
    name = "NAM 0.13 A2" if a2 else "NAM 0.13"
    for row in rows:
        if row["tool"].removesuffix(" (reused)") == name and row["capture"] == capture:
            if not Path(row["model"]).is_file():
                raise AmpnetError(
                    f"bench_training: {row['model']} is gone; run without --reuse-nam"
                )
            keep = ("wall_s", "steps", "samples", "model", "sizes")
            return {"tool": f"{name} (reused)", **{k: row.get(k) for k in keep}}
    raise AmpnetError(
        f"bench_training: no {name} row for {capture} in {source}; run without --reuse-nam"
    )


def bench_ampnet(
    capture: str,
    out: Path,
    test_seconds: float,
    label: str,
    extra: list[str],
    model: str = "wavenet",
):
    run_dir = out / f"ampnet_{capture}_{label.replace(' ', '_').strip('-')}"
    shutil.rmtree(run_dir, ignore_errors=True)
    test_start = -(VAL_SECONDS + test_seconds)
    split = [f"data.split.train=[0.0,{test_start}]"]
    if test_seconds > 0:
        split.append(f"data.split.test=[{test_start},{-VAL_SECONDS}]")
    cmd = [
        sys.executable, "-m", "ampnet.train", f"model={model}", f"data=shared_{capture}",
        *split, "callbacks.progress_bar=null", "callbacks.audio_examples=null",
        f"hydra.run.dir={run_dir}", *extra,
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    wall = run(cmd, run_dir.with_suffix(".log"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = _load_yaml(run_dir / "config.yaml")
    batch, segment = cfg["data"]["batch_size"], cfg["data"]["segment_length"]
    steps = metrics["global_steps"]
    sizes = None
    if model == "a2_slim":  # the best checkpoint of each size, as NAM's packed trainer keeps them
        sizes = {name: (str(run_dir / "checkpoints" / f"best_size{i}.ckpt"), size)
                 for i, (name, size) in enumerate(A2_SIZES.items())}  # fmt: skip
    return {"tool": f"ampnet ({label})", "wall_s": wall, "steps": steps,
            "samples": steps * batch * segment, "epochs": metrics["epochs"],
            "model": str(run_dir / "checkpoints" / "best.ckpt"), "overrides": extra,
            "sizes": sizes}  # fmt: skip


def _load_yaml(path: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["ts9_pushed", "ht40_highgain"])
    parser.add_argument("--test-seconds", type=float, default=4.0)
    parser.add_argument("--nam-epochs", type=int, default=100)
    parser.add_argument("--long", action="store_true", help="also ampnet for NAM's wall time")
    parser.add_argument("--ampnet", nargs="*", default=[], help="extra overrides for ampnet")
    parser.add_argument(
        "--models", nargs="+", default=["a1"], choices=["a1", "a2"],
        help="a1: NAM's standard WaveNet against model=wavenet; a2: NAM 0.13's packed A2 "
        "default against model=a2_slim (both sizes trained together)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench_training")
    parser.add_argument(
        "--reuse-nam", action="store_true", help="NAM's rows from --out/bench_training.json"
    )
    args = parser.parse_args()
    earlier = args.out / "bench_training.json"
    earlier_rows = json.loads(earlier.read_text()) if args.reuse_nam and earlier.is_file() else []
    if not (SHARED / "di.wav").is_file():
        raise AmpnetError(
            f"bench_training: {SHARED / 'di.wav'} not found; "
            "set AMPNET_SHARED_DATA to the shared data folder"
        )
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"threads: {torch.get_num_threads()}  torch {torch.__version__}", flush=True)

    results = []
    for capture in args.data:
        di, rate = sf.read(SHARED / "di.wav", dtype="float32")
        target, _ = sf.read(SHARED / f"{capture}.wav", dtype="float32")
        n = min(len(di), len(target))
        di, target = di[:n], target[:n]
        parts = regions(n, rate, args.test_seconds)
        train_stop = -(VAL_SECONDS + args.test_seconds)
        for kind in args.models:
            a2 = kind == "a2"
            model = "a2_slim" if a2 else "wavenet"
            if args.reuse_nam:
                nam = reused_nam(earlier_rows, capture, earlier, a2)
            else:
                nam = bench_nam(capture, args.out, train_stop, args.nam_epochs, a2)
            rows = [nam]
            label = ("defaults" if not args.ampnet else "with --ampnet") + (
                " a2_slim" if a2 else ""
            )
            rows.append(
                bench_ampnet(capture, args.out, args.test_seconds, label, args.ampnet, model)
            )
            if args.long:
                per_epoch = rows[-1]["wall_s"] / max(1, rows[-1]["epochs"])
                epochs = max(1, int(nam["wall_s"] / per_epoch))
                extra = [*args.ampnet, f"trainer.max_epochs={epochs}"]
                long_label = "long" + (" a2_slim" if a2 else "")
                rows.append(
                    bench_ampnet(capture, args.out, args.test_seconds, long_label, extra, model)
                )
            scored = []
            for row in rows:
                row["samples_per_s"] = row["samples"] / row["wall_s"] if row["samples"] else None
                row["capture"] = capture
                if not row.get("sizes"):
                    scored.append({**row, **score(Path(row["model"]), di, target, parts)})
                    continue
                for name, spec in row["sizes"].items():  # each size of a container
                    path, size = spec if isinstance(spec, list | tuple) else (row["model"], spec)
                    scored.append(
                        {
                            **row,
                            "tool": f"{row['tool']} {name}",
                            "size_name": name,
                            **score(Path(path), di, target, parts, size),
                        }  # fmt: skip
                    )
            results.extend(scored)
            print_table(capture, scored)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_training.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out / 'bench_training.json'}")


def print_table(capture: str, rows: list[dict]) -> None:
    nams = {r.get("size_name"): r for r in rows if r["tool"].startswith("NAM")}
    print(f"\n{capture}: trained on the start of the DI; test and validation regions unseen")
    print(f"{'tool':<30} {'wall s':>8} {'steps':>6} {'samples/s':>10} {'val ESR':>10} "
          f"{'test ESR':>10} {'time/NAM':>9} {'val/NAM':>8} {'test/NAM':>9}")  # fmt: skip
    for r in rows:
        nam = nams.get(r.get("size_name"), next(iter(nams.values())))
        print(
            f"{r['tool']:<30} {r['wall_s']:>8.0f} {r['steps']:>6} "
            f"{fmt(r.get('samples_per_s'), '>10.0f')} {r['val_esr']:>10.5f} "
            f"{fmt(r.get('test_esr'), '>10.5f')} {r['wall_s'] / nam['wall_s']:>9.2f} "
            f"{r['val_esr'] / nam['val_esr']:>8.2f} "
            f"{fmt(r.get('test_esr', math.nan) / nam.get('test_esr', math.nan), '>9.2f')}",
            flush=True,
        )


if __name__ == "__main__":
    main()
