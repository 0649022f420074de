"""Every committed config composes, instantiates, and every model preset trains a step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from ampnet.train import train

from .conftest import REPO

CONF = REPO / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_train(overrides: list[str], output_dir: Path):
    """The composed train config, with Hydra's runtime set so ${hydra:...} resolves."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*overrides, f"paths.output_dir={output_dir}"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra  # a task never sees this node; ${hydra:...} resolves through HydraConfig
    return cfg


def pair_overrides(make_pair) -> list[str]:
    inp, out = make_pair(seconds=2.0, sr=8000)
    return ["data=pair", "data.name=synthetic", f"data.input={inp}", f"data.output={out}"]


@pytest.mark.parametrize("name", options("model"))
def test_model_config_instantiates_the_plain_module(name, tmp_path):
    model = instantiate(compose_train([f"model={name}"], tmp_path).model)
    assert isinstance(model, torch.nn.Module)
    assert "lightning" not in type(model).__module__
    x = torch.randn(1, 1, model.receptive_field + model.burn_in + 10)
    assert model(x).shape[-1] == x.shape[-1] - model.receptive_field + 1


@pytest.mark.parametrize("name", options("loss"))
def test_loss_config_computes(name, tmp_path):
    cfg = compose_train([f"loss={name}"], tmp_path)
    powers = {"signal_power": 1.0, "pre_signal_power": 1.0}  # as training passes them
    loss = instantiate(cfg.loss, sample_rate=48000, **powers)
    y = torch.randn(2, 1, 4096)
    total, terms = loss(y + 0.1 * torch.randn_like(y), y)
    assert total.item() > 0 and terms and all(v.item() >= 0 for v in terms.values())
    assert loss(y, y)[0].item() == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("name", options("optim"))
def test_optim_config_builds_optimizer_and_scheduler(name, tmp_path):
    cfg = compose_train([f"optim={name}", "optim.lr=0.01"], tmp_path)
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = instantiate(cfg.optim.optimizer)([param])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    factory = instantiate(cfg.optim.scheduler)
    kwargs = (
        {"total_steps": 100}
        if "total_steps" in __import__("inspect").signature(factory).parameters
        else {}
    )
    scheduler = factory(optimizer, **kwargs)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert cfg.optim.interval in ("epoch", "step")


@pytest.mark.parametrize("name", [n for n in options("trainer") if n != "gpu"])
def test_trainer_config_instantiates(name, tmp_path):
    cfg = compose_train([f"trainer={name}"], tmp_path)
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.max_epochs >= 1


def test_gpu_trainer_config_asks_for_one_cuda_device(tmp_path):
    cfg = compose_train(["trainer=gpu"], tmp_path)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.devices == 1
    if torch.cuda.is_available():
        instantiate(cfg.trainer, logger=False, enable_checkpointing=False)


@pytest.mark.parametrize("name", options("logger"))
def test_logger_config_instantiates(name, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_train([f"logger={name}"], tmp_path)
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    if name == "none":
        assert loggers == []
    else:
        assert loggers and all(hasattr(lg, "log_metrics") for lg in loggers)


def test_callbacks_config_instantiates(tmp_path):
    cfg = compose_train([], tmp_path)
    callbacks = {k: instantiate(v) for k, v in cfg.callbacks.items()}
    assert callbacks["model_checkpoint"].monitor == "val/esr"
    assert Path(callbacks["model_checkpoint"].dirpath) == tmp_path / "checkpoints"


@pytest.mark.parametrize("name", [n for n in options("data") if n != "demo"])
def test_pair_data_configs_read_the_given_recordings(name, tmp_path, make_pair):
    inp, out = make_pair(seconds=34.0, sr=8000)  # long enough for the shared_* splits in seconds
    knobs = OmegaConf.load(CONF / "data" / f"{name}.yaml").get("params")
    if knobs:  # a knob-aware config: every pair reads the given recordings, one per setting
        pairs = ",".join(
            f"{{input:'{inp}',output:'{out}',params:{{{knobs[0]}:{v}}}}}" for v in (0.0, 1.0)
        )
        overrides = [f"data={name}", f"data.pairs=[{pairs}]"]
    else:
        overrides = [f"data={name}", f"data.input={inp}", f"data.output={out}"]
    if name == "pair":
        overrides.append("data.name=synthetic")
    cfg = compose_train(overrides, tmp_path)
    dm = instantiate(cfg.data, history=100)
    dm.setup()
    assert dm.sample_rate == 8000 and len(dm.train_dataloader()) >= 1
    assert len(dm.regions) == (2 if knobs else 1)


def test_pair_data_defaults_to_data_raw_name(tmp_path):
    cfg = compose_train(["data=ts9_pushed"], tmp_path)
    assert cfg.data.input == "data/raw/ts9_pushed/input.wav"
    assert cfg.data.output == "data/raw/ts9_pushed/output.wav"


def test_demo_data_config_renders_and_splits(tmp_path):
    cfg = compose_train(
        ["data=demo", f"data.cache_dir={tmp_path / 'cache'}", "data.seconds=6"], tmp_path
    )
    dm = instantiate(cfg.data, history=4092)
    dm.setup()
    assert dm.sample_rate == 48000 and dm.has_test
    assert set(dm.regions[0]) == {"train", "val", "test"}


def test_experiment_demo_composes(tmp_path):
    cfg = compose_train(["experiment=demo"], tmp_path)
    assert cfg.model._target_ == "ampnet.models.WaveNet" and cfg.data.name == "demo"
    # the demo trains the default model (tanh at 10 channels), 12 epochs
    layers = cfg.model.layers[0]
    assert layers.activation == "Tanh" and layers.channels == 10
    assert cfg.model == compose_train([], tmp_path).model and cfg.trainer.max_epochs == 12


def test_the_default_loss_is_nmse_and_nmse_pre_adds_the_pre_emphasised_error(tmp_path):
    """conf/train.yaml keeps loss=nmse: loss=nmse_pre won HT40 but lost TS9 on new playing
    (README, "The pre-emphasised loss again"); both take their scale from the data."""
    plain = instantiate(compose_train([], tmp_path).loss, signal_power=2.0)
    assert plain.weights == {"nmse": 1.0}
    cfg = compose_train(["loss=nmse_pre"], tmp_path)
    pre = instantiate(cfg.loss, signal_power=2.0, pre_signal_power=0.5)
    assert pre.weights == {"nmse": 1.0, "nmse_pre": 1.0} and pre.pre_emphasis.kind == "hp"
    assert pre.pre_emphasis.kernel.flatten().tolist() == pytest.approx([-0.85, 1.0])


def test_experiment_recurrent_sets_the_recurrent_recipe_and_leaves_the_model_choice(tmp_path):
    cfg = compose_train(["experiment=recurrent"], tmp_path)
    assert cfg.model._target_ == "ampnet.models.GRU" and cfg.optim.optimizer.lr == 0.005
    assert cfg.optim.scheduler.peak_by_length is None  # its fixed peak, at any length
    loss = instantiate(cfg.loss, signal_power=1.0)
    assert loss.warmup_steps == 500 and set(loss.warmup_weights) == {"mrstft"}
    assert set(loss.weights) == {"nmse"}
    # short windows after a shorter burn-in: eight times the steps per epoch, for any cell
    assert cfg.data.segment_length == 2048 and cfg.model.burn_in == 1024
    assert cfg.data.segment_length >= loss.min_length  # the spectral start's STFTs fit a window
    lstm = compose_train(["experiment=recurrent", "model=lstm_large"], tmp_path)
    assert lstm.model._target_ == "ampnet.models.LSTM" and lstm.loss.warmup.steps == 500
    assert lstm.model.hidden_size == 64 and lstm.model.burn_in == 1024
    assert lstm.data.segment_length == 2048


@pytest.mark.slow  # a training per preset (the GRU's alone is about 20-50 s on 2 cores)
@pytest.mark.parametrize("name", options("model"))
def test_every_model_preset_trains_a_step(name, tmp_path, make_pair):
    overrides = [
        f"model={name}",
        *pair_overrides(make_pair),
        "trainer=debug",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "data.segment_length=2304",  # the MR-STFT loss needs 2048 + pre-emphasis
        "data.batch_size=2",
        "logger=none",
        "callbacks.progress_bar=null",
    ]
    metrics = train(compose_train(overrides, tmp_path / "run"))
    assert metrics["global_steps"] == 1
    assert metrics["val_esr"] is not None and metrics["val_esr"] == metrics["val_esr"]  # finite
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["model_name"] == name and saved["parameters"] == metrics["parameters"]


def test_readme_layout_names_every_module():
    readme = (REPO / "README.md").read_text()
    layout = readme[readme.index("## Layout") :].split("```")[1]
    for entry in sorted((REPO / "ampnet").iterdir()):
        if entry.name.startswith("__"):
            continue
        name = entry.name + "/" if entry.is_dir() else entry.name
        assert name in layout, f"README's layout section leaves out ampnet/{name}"


def _rates(total_steps: int, **kwargs) -> list[float]:
    from ampnet.module import warmup_cosine

    param = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps, **kwargs)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_warmup_cosine_one_cycle_warms_up_peaks_and_anneals():
    rates = _rates(200, warmup_fraction=0.05, final_fraction=0.01)
    assert rates[0] == pytest.approx(0.1)  # 1/10 of the 10 warm-up steps
    assert max(rates) == pytest.approx(1.0) and rates.index(max(rates)) == 9
    assert rates[-1] == pytest.approx(0.01, abs=1e-3)
    # decays monotonically
    assert all(b <= a + 1e-12 for a, b in zip(rates[10:], rates[11:], strict=False))
    assert _rates(200, cycles=[1.0]) == rates  # one cycle given explicitly is the same schedule


def test_warmup_cosine_restarts_anneal_at_the_end_of_each_cycle():
    rates = _rates(300, cycles=[1, 2], restart_peak=0.5, final_fraction=0.01)
    # the first cycle is the first third: annealed at its end, then a restart at half the peak
    assert rates[99] == pytest.approx(0.01, abs=2e-3)
    assert max(rates[:100]) == pytest.approx(1.0)
    assert max(rates[100:]) == pytest.approx(0.5)
    # the restart warms up from the annealed rate, no jump
    assert rates[99] < rates[100] < 0.1 < rates[105]
    assert rates[-1] == pytest.approx(0.005, abs=1e-3)


def test_warmup_cosine_power_spends_longer_low_with_the_same_ends():
    plain = _rates(400)
    steep = _rates(400, power=2.0)
    assert _rates(400, power=1.0) == plain
    assert steep[:20] == plain[:20]  # the same warm-up and peak
    assert steep[-1] == pytest.approx(plain[-1], abs=1e-4)  # and the same floor
    # every step after the peak is lower, and by the middle of the decay it is the square
    assert all(s < p for s, p in zip(steep[21:-1], plain[21:-1], strict=True))
    middle = (0.5 - 0.01) / 0.99  # the plain cosine's half-wave at half its decay
    assert steep[210] == pytest.approx(0.01 + 0.99 * middle**2, abs=0.01)
    # 1.5 over 140 epochs follows the plain cosine over 120 to epoch 80 (adam_cosine.yaml)
    long = _rates(1400, power=1.5)
    short = _rates(1200)
    assert max(abs(a - b) for a, b in zip(short[70:800], long[70:800], strict=True)) < 0.01
    assert long[1100] > 1.5 * short[1100]  # then a longer tail


def test_length_scale_interpolates_in_log_steps_and_holds_beyond_the_ends():
    from ampnet.module import length_scale

    points = [[2000, 1.0], [28800, 0.5]]
    assert length_scale(240, points) == 1.0
    assert length_scale(2000, points) == 1.0
    assert length_scale(28800, points) == pytest.approx(0.5)
    assert length_scale(100_000, points) == pytest.approx(0.5)
    # halfway in log(steps) is halfway in log(share)
    middle = math.sqrt(2000 * 28800)
    assert length_scale(round(middle), points) == pytest.approx(math.sqrt(0.5), rel=1e-4)
    assert length_scale(5000, None) == length_scale(5000, []) == 1.0


def test_warmup_cosine_scales_the_whole_schedule_by_the_runs_length():
    plain = _rates(200)
    scaled = _rates(200, peak_by_length=[[50, 1.0], [400, 0.25]])
    share = math.exp(math.log(0.25) * math.log(200 / 50) / math.log(400 / 50))
    assert scaled == pytest.approx([share * r for r in plain])
    assert _rates(200, peak_by_length=[[1000, 1.0], [2000, 0.5]]) == plain  # a short run: full rate


def test_the_default_recipe_peaks_long_runs_lower():
    """conf/optim/adam_cosine.yaml: short runs (the demo, the acceptance run) at optim.lr,
    120 epochs of the 3-minute signal at 0.375 of it."""
    from ampnet.module import length_scale

    optim = OmegaConf.load(REPO / "conf" / "optim" / "adam_cosine.yaml")
    points = OmegaConf.to_container(optim.scheduler.peak_by_length)
    assert optim.lr * length_scale(240, points) == pytest.approx(0.008)
    assert optim.lr * length_scale(12 * 105, points) == pytest.approx(0.008)  # make demo
    assert optim.lr * length_scale(120 * 240, points) == pytest.approx(0.003)


def test_training_says_and_uses_the_peak_its_length_gives(tmp_path, make_pair, capsys):
    overrides = [
        "model=wavenet_nano",
        *pair_overrides(make_pair),
        "trainer=debug",  # 2 epochs of one batch here
        "data.segment_length=2304",
        "data.batch_size=2",
        "logger=none",
        "callbacks.progress_bar=null",
        "optim.lr=0.01",
        "optim.scheduler.peak_by_length=[[1,1.0],[4,0.25]]",
    ]
    metrics = train(compose_train(overrides, tmp_path / "run"))
    assert metrics["global_steps"] == 2
    share = math.exp(math.log(0.25) * math.log(2) / math.log(4))  # 0.5
    assert f"learning rate: peak {0.01 * share:.3g}" in capsys.readouterr().out
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["lr_schedulers"][0]["peak_share"] == pytest.approx(share)
    # after the last step the schedule stands at its end: the share of final_fraction of lr
    assert ckpt["lr_schedulers"][0]["_last_lr"][0] == pytest.approx(0.01 * share * 0.01)


def test_warmup_cosine_rejects_bad_cycles():
    from ampnet.errors import SettingError
    from ampnet.module import warmup_cosine

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0)
    with pytest.raises(ValueError, match="cycles"):
        warmup_cosine(optimizer, 100, cycles=[1, 0])
    with pytest.raises(ValueError, match="restart_peak"):
        warmup_cosine(optimizer, 100, cycles=[1, 2], restart_peak=1.5)
    with pytest.raises(SettingError, match="peak_by_length"):
        warmup_cosine(optimizer, 100, peak_by_length=[[2000, 1.0], [1000, 0.5]])
    with pytest.raises(SettingError, match="peak_by_length"):
        warmup_cosine(optimizer, 100, peak_by_length=[[2000, 0.0]])
    with pytest.raises(SettingError, match="power"):
        warmup_cosine(optimizer, 100, power=0.0)
