"""Finding training runs and their checkpoints under ``outputs/``."""

from __future__ import annotations

import os
from pathlib import Path

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
    """``best`` / ``last`` (of the newest run), a run directory, or a checkpoint path -> a .ckpt path."""
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
    if path.is_dir():
        return _in_run(path, "best")
    if not path.is_file():
        raise AmpnetError(f"{path}: no such checkpoint or run directory")
    return path


def _in_run(run: Path, which: str) -> Path:
    path = run / "checkpoints" / f"{which}.ckpt"
    if not path.is_file():
        raise AmpnetError(f"{run}: has no checkpoints/{which}.ckpt; pass another run or checkpoint")
    return path
