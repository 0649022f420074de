"""``python -m ampnet.export ckpt=best [formats=[nam,aidax]] [name=...] [gear_type=pedal] ...``"""

import os

import hydra
from omegaconf import DictConfig

from ampnet.errors import exit_on_user_error
from ampnet.export import export


@hydra.main(version_base="1.3", config_path="../../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    exit_on_user_error(export)(cfg)


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    main()
