"""Run directories: finding runs and their checkpoints under ``outputs/``, resuming a run
in place, and starting a DDP run's other ranks in the same directory."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ampnet.errors import AmpnetError

DEFAULT_OUTPUTS = Path("outputs")


def run_dirs(outputs: str | os.PathLike = DEFAULT_OUTPUTS) -> list[Path]:
    """Every run directory (one holding ``checkpoints/``) under ``outputs``, newest last."""
    root = Path(outputs)
    runs = {p.parent.parent for p in root.glob("**/checkpoints/*.ckpt")} if root.is_dir() else set()
    return sorted(
        runs, key=lambda run: max(p.stat().st_mtime for p in (run / "checkpoints").glob("*.ckpt"))
    )


def resolve_checkpoint(
    spec: str | os.PathLike, outputs: str | os.PathLike = DEFAULT_OUTPUTS
) -> Path:
    """``best`` / ``last`` (of the newest run), a run directory, a sweep folder (its run with
    the lowest validation ESR), or a checkpoint path -> a .ckpt path."""
    spec_str = str(spec)
    if spec_str in ("best", "last"):
        runs = run_dirs(outputs)
        if not runs:
            raise AmpnetError(
                f"no training runs under {Path(outputs).resolve()}; train one (python -m ampnet.train) "
                "or pass a checkpoint path"
            )
        return _in_run(runs[-1], spec_str)
    path = Path(spec_str)
    if path.is_dir() and not (path / "checkpoints").is_dir() and run_dirs(path):
        return _in_run(best_of_sweep(path), "best")
    if path.is_dir():
        return _in_run(path, "best")
    if not path.is_file():
        raise AmpnetError(f"{path}: no such checkpoint or run directory")
    return path


def best_of_sweep(folder: Path) -> Path:
    """The run below ``folder`` (a multirun's folder) with the lowest validation ESR: the
    number each run selected its best checkpoint on, so picking by it leaves every run's
    test region unseen. Says which run it took, and of how many."""
    scored = []
    for run in run_dirs(folder):
        try:
            val = json.loads((run / "metrics.json").read_text())["val_esr"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(val, int | float) and math.isfinite(val):
            scored.append((val, str(run)))
    if not scored:
        raise AmpnetError(
            f"{folder}: no finished run below it (a metrics.json with a validation ESR); "
            "pass a run directory or a checkpoint"
        )
    val, best = min(scored)
    print(
        f"ampnet: {folder}: {Path(best).relative_to(folder)} has the lowest validation ESR "
        f"({val:.5g}) of {len(scored)} finished run(s)",
        file=sys.stderr,
        flush=True,
    )
    return Path(best)


def _in_run(run: Path, which: str) -> Path:
    path = run / "checkpoints" / f"{which}.ckpt"
    if not path.is_file():
        raise AmpnetError(f"{run}: has no checkpoints/{which}.ckpt; pass another run or checkpoint")
    return path


def resume_checkpoint(ckpt_path: str | None, checkpoint_dir: Path) -> str | None:
    """``ckpt_path=last`` resumes from this run's ``last.ckpt``; a path is used as given."""
    if ckpt_path in (None, ""):
        return None
    path = checkpoint_dir / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise AmpnetError(f"{path}: no checkpoint to resume from; check ckpt_path")
    return str(path)


def resume_argv(argv: list[str]) -> list[str]:
    """``resume=RUN_DIR`` becomes that run's own overrides plus ``hydra.run.dir=RUN_DIR
    ckpt_path=last``, so an interrupted run continues in place with the config it had.
    Overrides given beside ``resume=`` win over the saved ones (e.g. more epochs)."""
    resume = [a for a in argv[1:] if a.startswith("resume=")]
    if not resume:
        return argv
    run_dir = Path(resume[-1].split("=", 1)[1]).expanduser()
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        raise AmpnetError(
            f"{run_dir / 'checkpoints' / 'last.ckpt'}: no checkpoint to resume from; "
            "resume= takes a run directory that has checkpoints/last.ckpt"
        )
    if not saved.is_file():
        raise AmpnetError(
            f"{saved}: missing, so the run's settings are unknown; resume with the original "
            f"overrides plus hydra.run.dir={run_dir} ckpt_path=last"
        )
    given = [a for a in argv[1:] if not a.startswith("resume=")]
    forced = [f"hydra.run.dir={run_dir}", "ckpt_path=last"]

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    taken = {key(a) for a in given + forced}
    old = [str(a) for a in OmegaConf.load(saved) if key(str(a)) not in taken]
    return [argv[0], *old, *given, *forced]


def prepare_ddp_relaunch(cfg: DictConfig) -> None:
    """Make Lightning's DDP re-launch of this script start the other ranks as this job.

    Lightning starts ranks 1..N-1 by re-running ``sys.argv`` with ``hydra.run.dir`` set to
    Hydra's *run* directory. Inside a multirun that would start a whole new sweep in the
    wrong folder, so the other ranks get this job's own overrides and output directory.
    """
    if not HydraConfig.initialized() or "ddp" not in str(cfg.trainer.get("strategy", "")).lower():
        return
    hydra_cfg = HydraConfig.get()
    sys.argv = [sys.argv[0], *hydra_cfg.overrides.task]
    OmegaConf.set_readonly(hydra_cfg, False)
    hydra_cfg.run.dir = str(cfg.paths.output_dir)
    OmegaConf.set_readonly(hydra_cfg, True)
