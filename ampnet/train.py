"""Train a capture: ``python -m ampnet.train model=wavenet data=ts9_pushed``.

``train(cfg)`` composes the run from the Hydra config (model, data, loss, optim,
trainer, logger, callbacks), fits, re-evaluates the best checkpoint on the
validation and test regions and writes ``metrics.json`` in the run directory.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from ampnet.atomic import atomic_output
from ampnet.callbacks import DeferredInterrupt
from ampnet.checkpoints import load_model
from ampnet.errors import AmpnetError, exit_on_user_error
from ampnet.module import AmpModule, AtomicCheckpointIO, quiet_lightning
from ampnet.report import score_performance, write_run_report
from ampnet.runs import prepare_ddp_relaunch, resume_argv, resume_checkpoint
from ampnet.summarize import print_run


def _choice(group: str) -> str | None:
    """The config name picked for ``group`` (``model=wavenet_nano`` -> ``wavenet_nano``)."""
    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def train(cfg: DictConfig) -> dict:
    """Run one training job from a composed config; return the metrics it wrote."""
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "highest"))
    model = instantiate(cfg.model)
    params = sum(p.numel() for p in model.parameters())
    if cfg.get("show"):
        print(model)
        print(f"parameters: {params}  receptive field: {model.receptive_field} samples")
        return {}

    datamodule = instantiate(cfg.data, history=model.history)
    datamodule.setup("fit")  # read and check the recordings before anything else starts
    loss = instantiate(
        cfg.loss, sample_rate=datamodule.sample_rate, target_power=datamodule.target_power
    )
    datamodule.require_segment_length(loss.min_length, "the loss's largest STFT")
    if cfg.get("compile"):
        model.compile()  # in place: parameter names and checkpoints stay as without it
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = {"model_name": _choice("model") or type(model).__name__, "data_name": _choice("data")}
    module = AmpModule(
        model,
        loss,
        instantiate(cfg.optim.optimizer),
        instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
        cfg.optim.get("interval", "epoch"),
        {
            "sample_rate": datamodule.sample_rate,
            "input_gain_db": datamodule.input_gain_db,
            "receptive_field": model.receptive_field,
            **names,
            "config": OmegaConf.to_container(cfg, resolve=True),
        },
        step_budget=cfg.get("step_budget"),
    )
    prepare_ddp_relaunch(cfg)
    interrupt = DeferredInterrupt()
    trainer = instantiate(
        cfg.trainer,
        callbacks=[instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
        + [interrupt],
        logger=[instantiate(c) for c in (cfg.get("logger") or {}).values() if c] or False,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
    )

    started = time.perf_counter()
    ckpt_dir = run_dir / "checkpoints"
    resume = resume_checkpoint(cfg.get("ckpt_path"), ckpt_dir)
    try:
        with interrupt.installed(trainer.world_size == 1):
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    except SystemExit as stop:  # how Lightning ends a fit stopped by SIGTERM or Ctrl+C
        by = _stopped_by(stop)
        if by is None or not trainer.interrupted:
            raise
        _exit_interrupted(by, run_dir, ckpt_dir / "last.ckpt")
    train_seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise AmpnetError(
            f"training was interrupted; resume it with: python -m ampnet.train resume={run_dir}"
        )

    best, val = _select_best(trainer, module, datamodule, ckpt_dir)
    test = (
        trainer.test(module, datamodule=datamodule, verbose=False)[0] if datamodule.has_test else {}
    )
    unseen = {}
    if datamodule.unseen is not None and trainer.is_global_zero:
        unseen = score_performance(
            module.model.cpu().eval(), *datamodule.unseen, datamodule.sample_rate
        )
    metrics = {
        **names,
        "val_esr": val.get("val/esr"),
        "val_mrstft": val.get("val/mrstft"),
        "test_esr": test.get("test/esr"),
        "test_mrstft": test.get("test/mrstft"),
        "unseen_esr": unseen.get("esr"),
        "unseen_esr_pre_emphasis": unseen.get("esr_pre_emphasis"),
        "unseen_mrstft": unseen.get("mrstft"),
        "parameters": params,
        "receptive_field": model.receptive_field,
        "sample_rate": datamodule.sample_rate,
        "epochs": trainer.current_epoch,
        "global_steps": trainer.global_step,
        "train_seconds": round(train_seconds, 2),
        "resumed": bool(cfg.get("ckpt_path")),
        "overrides": " ".join(HydraConfig.get().overrides.task)
        if HydraConfig.initialized()
        else "",
        "devices": trainer.world_size,
        "best_checkpoint": str(best),
        "run_dir": str(run_dir),
    }
    if trainer.is_global_zero:
        with atomic_output(run_dir / "metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        title = f"{names['model_name']} on {names['data_name']}"
        write_run_report(run_dir, module.examples, datamodule.sample_rate, title)
        print_run(metrics)
    return metrics


def _select_best(trainer, module: AmpModule, datamodule, ckpt_dir: Path) -> tuple[Path, dict]:
    """Leave the module holding the better of the best validated checkpoint and the weights
    training ended with, and make ``best.ckpt`` hold them; return its path and its metrics.

    Validation runs every ``trainer.check_val_every_n_epoch`` epochs, so the last epochs
    may not have been validated; under a decaying learning rate they are often the best.
    """
    final_state = {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
    val = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    examples = dict(module.examples)
    monitored = [c for c in trainer.checkpoint_callbacks if c.monitor == "val/esr"]
    path = monitored[0].best_model_path if monitored else ""
    if path and Path(path).is_file():
        best_state = load_model(path)[0].state_dict()
        if all(torch.equal(best_state[k], v) for k, v in final_state.items()):
            return Path(path), val  # training ended on its best validated epoch
        module.model.load_state_dict(best_state)
        best_val = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
        if best_val["val/esr"] <= val["val/esr"]:
            return Path(path), best_val
        module.model.load_state_dict(final_state)
        module.examples.update(examples)
    best = ckpt_dir / "best.ckpt"
    # atomic (AtomicCheckpointIO); every rank calls it. Full state, like ModelCheckpoint's
    trainer.save_checkpoint(best, weights_only=False)
    return best, val


def _stopped_by(stop: SystemExit) -> signal.Signals | None:
    """The signal behind Lightning's exit from a fit: its ``SIGTERMException``, or the
    ``sys.exit(1)`` it raises while handling a ``KeyboardInterrupt``; None for any other."""
    if isinstance(stop, SIGTERMException):
        return signal.SIGTERM
    if isinstance(stop.__context__, KeyboardInterrupt):
        return signal.SIGINT
    return None


def _exit_interrupted(sig: signal.Signals, run_dir: Path, last: Path) -> NoReturn:
    """One line saying what a stopped run left and how to go on, then the shell's status for
    the signal (143 SIGTERM, 130 Ctrl+C), so a script or scheduler never takes it for a
    finished run (Lightning itself exits 0 on SIGTERM). No metrics.json is written."""
    if last.is_file():
        left = f"the last finished epoch is in {last}; resume with: python -m ampnet.train resume={run_dir}"
    else:
        left = "no epoch finished, so there is nothing to resume; start it again"
    print(
        f"ampnet: training stopped by {sig.name} before its last epoch; {left}",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(128 + int(sig))


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the validation ESR so sweepers can minimise it."""
    metrics = exit_on_user_error(train)(cfg)
    return metrics.get("val_esr")


if __name__ == "__main__":
    sys.argv = exit_on_user_error(resume_argv)(sys.argv)
    sys.exit(main())
