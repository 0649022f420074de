"""Train a capture: ``python -m ampnet.train model=wavenet data=ts9_pushed``.

``train(cfg)`` composes the run from the Hydra config (model, data, loss, optim,
trainer, logger, callbacks), fits, re-evaluates the best checkpoint on the
validation and test regions and writes ``metrics.json`` in the run directory.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ampnet.atomic import atomic_output
from ampnet.checkpoints import load_model
from ampnet.errors import AmpnetError, exit_on_user_error
from ampnet.losses import PreEmphasis
from ampnet.module import AmpModule, AtomicCheckpointIO
from ampnet.report import write_report


def _choice(group: str) -> str | None:
    """The config name picked for ``group`` (``model=wavenet_nano`` -> ``wavenet_nano``)."""
    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get(group)
    return None


def _write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def _resume_path(ckpt_path: str | None, checkpoint_dir: Path) -> str | None:
    """``ckpt_path=last`` resumes from this run's ``last.ckpt``; a path is used as given."""
    if ckpt_path in (None, ""):
        return None
    path = checkpoint_dir / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise AmpnetError(f"{path}: no checkpoint to resume from; check ckpt_path")
    return str(path)


def _prepare_ddp_relaunch(cfg: DictConfig) -> None:
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


def train(cfg: DictConfig) -> dict:
    """Run one training job from a composed config; return the metrics it wrote."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "highest"))
    model = instantiate(cfg.model)
    params = sum(p.numel() for p in model.parameters())
    if cfg.get("show"):
        print(model)
        print(f"parameters: {params}  receptive field: {model.receptive_field} samples")
        return {}

    datamodule = instantiate(cfg.data, history=model.receptive_field - 1 + model.burn_in)
    datamodule.setup("fit")  # read and check the recordings before anything else starts
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = {"model_name": _choice("model") or type(model).__name__, "data_name": _choice("data")}
    hparams = {
        "sample_rate": datamodule.sample_rate,
        "input_gain_db": datamodule.input_gain_db,
        "receptive_field": model.receptive_field,
        **names,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    powers = {"signal_power": datamodule.target_power()}
    if (cfg.loss.get("weights") or {}).get("nmse_pre"):
        emphasis = PreEmphasis(
            sample_rate=datamodule.sample_rate, **(cfg.loss.get("pre_emphasis") or {})
        )
        powers["pre_signal_power"] = datamodule.target_power(emphasis)
    loss = instantiate(cfg.loss, sample_rate=datamodule.sample_rate, **powers)
    if datamodule.segment_length < getattr(loss, "min_length", 1):
        raise AmpnetError(
            f"data.segment_length={datamodule.segment_length} is shorter than the loss needs "
            f"({loss.min_length} samples for its largest STFT); raise data.segment_length"
        )
    if cfg.get("compile"):
        model.compile()  # in place: parameter names and checkpoints stay as without it
    module = AmpModule(
        model,
        loss,
        instantiate(cfg.optim.optimizer),
        instantiate(cfg.optim.scheduler) if cfg.optim.get("scheduler") else None,
        cfg.optim.get("interval", "epoch"),
        hparams,
    )
    _prepare_ddp_relaunch(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
    )

    started = time.perf_counter()
    ckpt_dir = run_dir / "checkpoints"
    trainer.fit(
        module, datamodule=datamodule, ckpt_path=_resume_path(cfg.get("ckpt_path"), ckpt_dir)
    )
    train_seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise AmpnetError(
            f"training was interrupted; resume it with: python -m ampnet.train resume={run_dir}"
        )

    best, val = _select_best(trainer, module, datamodule, ckpt_dir)
    test = (
        trainer.test(module, datamodule=datamodule, verbose=False)[0] if datamodule.has_test else {}
    )
    metrics = {
        **names,
        "val_esr": val.get("val/esr"),
        "val_mrstft": val.get("val/mrstft"),
        "test_esr": test.get("test/esr"),
        "test_mrstft": test.get("test/mrstft"),
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
        _write_json(run_dir / "metrics.json", metrics)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        _write_report(module, run_dir, datamodule.sample_rate, names)
        _print_summary(metrics)
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


def _write_report(module: AmpModule, run_dir: Path, sample_rate: int, names: dict) -> None:
    """report.png and report.html on the test region (the validation region if there is none)."""
    stage = "test" if "test" in module.examples else "val"
    di, target, prediction = (t.numpy() for t in module.examples[stage])
    title = f"{names['model_name']} on {names['data_name']}: {stage} region"
    write_report(
        target,
        prediction,
        sample_rate,
        png=run_dir / "report.png",
        html=run_dir / "report.html",
        di=di,
        title=title,
    )


def _print_summary(metrics: dict) -> None:
    def fmt(value):
        return "n/a" if value is None else f"{value:.5f}"

    print(
        f"\nampnet: trained {metrics['model_name']} on {metrics['data_name']} in "
        f"{metrics['train_seconds']:.0f} s ({metrics['epochs']} epochs)\n"
        f"  validation ESR {fmt(metrics['val_esr'])}   test ESR {fmt(metrics['test_esr'])}\n"
        f"  model:   {metrics['best_checkpoint']}\n"
        f"  metrics: {Path(metrics['run_dir']) / 'metrics.json'}\n"
        f"  report:  {Path(metrics['run_dir']) / 'report.html'}",
        flush=True,
    )


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the validation ESR so sweepers can minimise it."""
    metrics = exit_on_user_error(train)(cfg)
    return metrics.get("val_esr")


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


if __name__ == "__main__":
    sys.argv = exit_on_user_error(resume_argv)(sys.argv)
    sys.exit(main())
