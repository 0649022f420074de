"""Check recordings before training: ``python -m ampnet.check data=ts9_pushed``.

Runs every data check (the same ones training runs), lines the pair up, and prints
a summary per pair: duration, levels, latency, polarity, clipping and the regions.
Errors are one line and exit status 2.
"""

from __future__ import annotations

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from ampnet.errors import exit_on_user_error


def check(cfg: DictConfig) -> list:
    """Set the data module up (which checks and aligns every pair) and print what it found."""
    model = instantiate(cfg.model)
    datamodule = instantiate(cfg.data, history=model.history)
    datamodule.setup("fit")
    table = Table(title=f"data={cfg.data.get('name', '')}: every check passed")
    for column in (
        "pair",
        "duration",
        "rate",
        "input peak / RMS",
        "output peak / RMS",
        "latency",
        "polarity",
        "clipped",
        "regions (s)",
    ):
        table.add_column(column)
    for check, regions, pair in zip(
        datamodule.checks, datamodule.regions, datamodule.pairs, strict=True
    ):
        levels = check.levels
        rate = check.sample_rate
        knobs = ", ".join(f"{k}={v:g}" for k, v in pair["params"].items())
        table.add_row(
            f"{check.input}\n{check.output}" + (f"\n{knobs}" if knobs else ""),
            f"{check.seconds:.2f} s",
            f"{rate} Hz",
            f"{levels['input']['peak_dbfs']:.1f} / {levels['input']['rms_dbfs']:.1f} dBFS",
            f"{levels['output']['peak_dbfs']:.1f} / {levels['output']['rms_dbfs']:.1f} dBFS",
            f"{check.lag_samples} samples ({1000 * check.lag_samples / rate:.2f} ms, {check.lag_method}); "
            f"shifted {check.shift_samples}",
            "inverted" if check.polarity_inverted else "normal",
            f"{100 * check.clipped_fraction:.3f}%",
            ", ".join(f"{k} {a / rate:.1f}-{b / rate:.1f}" for k, (a, b) in regions.items()),
        )
    Console(width=200).print(table)
    return datamodule.checks


@hydra.main(version_base="1.3", config_path="../conf", config_name="check")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(check)(cfg)


if __name__ == "__main__":
    main()
