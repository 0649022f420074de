"""Loss values against hand-computed ones."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from ampnet.losses import (
    AmpLoss,
    MultiResolutionSTFT,
    PreEmphasis,
    a_weighting_fir,
    dc_loss,
    esr,
    mse,
)


def test_esr_of_identical_signals_is_zero_and_of_silence_prediction_is_one():
    y = torch.randn(2, 1, 1000)
    assert esr(y, y).item() == 0.0
    assert esr(torch.zeros_like(y), y).item() == pytest.approx(1.0, abs=1e-6)


def test_esr_matches_its_closed_form():
    y = torch.tensor([[[1.0, -2.0, 3.0]]])
    y_hat = torch.tensor([[[0.5, -2.0, 2.0]]])
    expected = (0.5**2 + 0 + 1.0**2) / (1 + 4 + 9)
    assert esr(y_hat, y).item() == pytest.approx(expected, rel=1e-6)
    # ESR is scale-invariant: scaling both signals leaves it unchanged
    assert esr(10 * y_hat, 10 * y).item() == pytest.approx(expected, rel=1e-6)


def test_esr_pools_the_batch_so_quiet_items_do_not_dominate():
    loud = torch.ones(1, 1, 4)
    quiet = 1e-3 * torch.ones(1, 1, 4)
    y = torch.cat([loud, quiet])
    y_hat = torch.cat([loud, torch.zeros_like(quiet)])  # quiet item entirely wrong
    expected = (4 * 1e-6) / (4 + 4 * 1e-6)
    assert esr(y_hat, y).item() == pytest.approx(expected, rel=1e-4)


def test_mse_and_dc_loss_by_hand():
    y = torch.tensor([[[1.0, 3.0]]])
    y_hat = torch.tensor([[[0.0, 2.0]]])
    assert mse(y_hat, y).item() == pytest.approx(1.0)
    # mean error 1, mean power (1 + 9) / 2 = 5
    assert dc_loss(y_hat, y).item() == pytest.approx(1.0 / 5.0, rel=1e-6)
    assert dc_loss(y + 0.0, y).item() == 0.0


def test_first_order_pre_emphasis_by_hand():
    x = torch.tensor([[[1.0, 2.0, 4.0, 8.0]]])
    out = PreEmphasis(kind="hp", coef=0.5)(x)
    torch.testing.assert_close(out, torch.tensor([[[2.0 - 0.5, 4.0 - 1.0, 8.0 - 2.0]]]))


def test_a_weighting_fir_follows_the_curve():
    sr = 48000
    taps = a_weighting_fir(sr)
    w, h = scipy.signal.freqz(taps, worN=[100.0, 1000.0, 3000.0], fs=sr)
    db = 20 * np.log10(np.abs(h))
    assert abs(db[1]) < 1.0  # 0 dB at 1 kHz
    assert db[0] < -12.0  # A-weighting is -19 dB at 100 Hz; the 255-tap fit gets -15
    assert db[2] > 0.0  # and slightly positive around 2-4 kHz
    out = PreEmphasis(kind="aw", sample_rate=sr, taps=101)(torch.randn(2, 1, 500))
    assert out.shape == (2, 1, 400)


def test_mrstft_is_zero_for_identical_signals_and_grows_with_error():
    loss = MultiResolutionSTFT()
    y = torch.randn(1, 1, 8192)
    assert loss(y, y).item() == pytest.approx(0.0, abs=1e-5)
    assert (
        loss(y + 0.5 * torch.randn_like(y), y).item()
        > loss(y + 0.05 * torch.randn_like(y), y).item()
        > 0
    )


def test_amp_loss_is_the_weighted_sum_of_named_terms():
    y = torch.randn(2, 1, 4096)
    y_hat = y + 0.1 * torch.randn_like(y)
    loss = AmpLoss(
        weights={"esr": 1.0, "mse": 2.0, "esr_pre": 0.5, "dc": 0.0}, pre_emphasis={"coef": 0.85}
    )
    total, terms = loss(y_hat, y)
    assert set(terms) == {"esr", "mse", "esr_pre"}  # zero weights are left out
    pre = PreEmphasis(coef=0.85)
    assert terms["esr_pre"].item() == pytest.approx(esr(pre(y_hat), pre(y)).item(), rel=1e-6)
    expected = terms["esr"] + 2.0 * terms["mse"] + 0.5 * terms["esr_pre"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_nmse_is_the_region_esr_on_average_and_needs_the_region_power():
    # the training region: loud and quiet segments; batches of one segment each
    rng = torch.Generator().manual_seed(0)
    y = torch.randn(8, 1, 2048, generator=rng) * torch.tensor([1.0, 0.01] * 4).view(8, 1, 1)
    y_hat = y + 0.05 * torch.randn(y.shape, generator=rng)
    power = float(y.pow(2).mean())
    loss = AmpLoss(weights={"nmse": 1.0}, signal_power=power)
    per_batch = torch.stack([loss(y_hat[i : i + 1], y[i : i + 1])[0] for i in range(8)])
    # the mean over batches is the whole region's ESR ...
    assert per_batch.mean().item() == pytest.approx(esr(y_hat, y).item(), rel=1e-5)
    # ... which a mean of per-batch ESRs is not: quiet batches dominate it
    per_batch_esr = torch.stack([esr(y_hat[i : i + 1], y[i : i + 1]) for i in range(8)])
    assert per_batch_esr.mean().item() > 100 * esr(y_hat, y).item()
    with pytest.raises(ValueError, match="signal_power"):
        AmpLoss(weights={"nmse": 1.0})


def test_nmse_pre_scales_the_pre_emphasised_error_by_the_pre_emphasised_power():
    rng = torch.Generator().manual_seed(1)
    y = torch.randn(2, 1, 4096, generator=rng)
    y_hat = y + 0.1 * torch.randn(y.shape, generator=rng)
    emphasis = PreEmphasis(kind="hp", coef=0.85)
    pre_power = float(emphasis(y).pow(2).mean())
    loss = AmpLoss(
        weights={"nmse_pre": 1.0}, pre_emphasis={"kind": "hp", "coef": 0.85},
        pre_signal_power=pre_power,
    )  # fmt: skip
    total, terms = loss(y_hat, y)
    assert total.item() == pytest.approx(esr(emphasis(y_hat), emphasis(y)).item(), rel=1e-5)
    assert set(terms) == {"nmse_pre"}
    with pytest.raises(ValueError, match="pre_signal_power"):
        AmpLoss(weights={"nmse_pre": 1.0}, signal_power=1.0)


def test_amp_loss_rejects_unknown_terms():
    with pytest.raises(ValueError, match="unknown loss terms"):
        AmpLoss(weights={"esrr": 1.0})


def test_amp_loss_calibrates_its_powers_from_the_data():
    y = torch.randn(1, 1, 4096, generator=torch.Generator().manual_seed(2))
    asked = []

    def target_power(transform):
        asked.append(transform)
        z = y if transform is None else transform(y)
        return float(z.pow(2).mean())

    loss = AmpLoss(weights={"nmse": 1.0, "nmse_pre": 1.0}, target_power=target_power)
    assert asked[0] is None and asked[1] is loss.pre_emphasis  # the loss's own pre-emphasis
    assert loss.signal_power == pytest.approx(float(y.pow(2).mean()))
    assert loss.pre_signal_power == pytest.approx(float(loss.pre_emphasis(y).pow(2).mean()))
    asked.clear()
    AmpLoss(weights={"esr": 1.0}, target_power=target_power)
    assert asked == []  # terms that need no power do not ask for one


def test_a_warmup_trains_its_first_steps_on_other_weights():
    y = torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(3))
    y_hat = 0.5 * y
    loss = AmpLoss(
        weights={"nmse": 1.0}, signal_power=float(y.pow(2).mean()),
        warmup={"steps": 3, "weights": {"mrstft": 1.0}},
    )  # fmt: skip
    assert loss.min_length == loss.mrstft.min_length  # the STFTs set the shortest segment
    spectral = MultiResolutionSTFT()(y_hat, y)
    for step in (0, 2):
        total, terms = loss(y_hat, y, step=step)
        assert set(terms) == {"mrstft"} and total.item() == pytest.approx(spectral.item())
    for step in (3, 100, None):  # after the warm-up, and outside training: the loss itself
        total, terms = loss(y_hat, y, step=step)
        assert set(terms) == {"nmse"} and total.item() == pytest.approx(0.25, rel=1e-5)
    with pytest.raises(ValueError, match="unknown loss terms"):
        AmpLoss(weights={"esr": 1.0}, warmup={"steps": 5, "weights": {"stft": 1.0}})
    # a warm-up on nmse asks the data for the power its own weights do not need
    calibrated = AmpLoss(
        weights={"esr": 1.0}, warmup={"steps": 5, "weights": {"nmse": 1.0}},
        target_power=lambda transform: 2.0,
    )  # fmt: skip
    assert calibrated.signal_power == 2.0
