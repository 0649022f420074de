"""The GRU's native recurrence (training and rendering): PyTorch's GRU to float rounding,
forward and every gradient, and the model falls back to ``nn.GRU`` where it cannot run."""

from __future__ import annotations

import pytest
import torch

from ampnet import kernels
from ampnet.kernels import recurrence
from ampnet.models import GRU

needs_kernels = pytest.mark.skipif(not kernels.available(), reason="native kernels not built")


@needs_kernels
@pytest.mark.parametrize("inputs,hidden,layers", [(1, 24, 1), (3, 8, 2), (1, 64, 1)])
def test_native_gru_equals_pytorch_forward_and_gradients(inputs, hidden, layers):
    torch.manual_seed(inputs + hidden + layers)
    rnn = torch.nn.GRU(inputs, hidden, layers, batch_first=True)
    with torch.no_grad():
        for p in rnn.parameters():
            p.mul_(3.0)  # strongly nonlinear, so a wrong gate shows
    x = torch.randn(3, 400, inputs)
    h0 = 0.5 * torch.randn(layers, 3, hidden)
    weight = torch.randn(3, 400, hidden)
    results = []
    for run in (rnn, lambda a, b: recurrence.gru(rnn, a, b)):
        rnn.zero_grad()
        xa, ha = x.clone().requires_grad_(), h0.clone().requires_grad_()
        y, hn = run(xa, ha)
        ((y * weight).sum() + (hn**2).sum()).backward()
        grads = [p.grad.clone() for p in rnn.parameters()] + [xa.grad, ha.grad]
        results.append((y.detach(), hn.detach(), grads))
    (y1, h1, g1), (y2, h2, g2) = results
    assert (y1 - y2).abs().max() < 1e-5 and (h1 - h2).abs().max() < 1e-5
    for a, b in zip(g1, g2, strict=True):
        assert (a - b).abs().max() <= 1e-5 * max(1.0, float(a.abs().max()))


@needs_kernels
def test_the_gru_model_trains_through_the_native_recurrence(monkeypatch):
    torch.manual_seed(0)
    model = GRU(hidden_size=12, burn_in=0)
    x = 0.3 * torch.randn(2, 1, 300)
    assert recurrence.native_ok(x.transpose(1, 2), model.gru)
    native = model(x)
    native.square().mean().backward()
    grad = model.gru.weight_hh_l0.grad.clone()
    model.zero_grad()
    monkeypatch.setattr(recurrence, "native_ok", lambda *_: False)
    plain = model(x)
    plain.square().mean().backward()
    assert (native - plain).abs().max() < 1e-5
    assert (grad - model.gru.weight_hh_l0.grad).abs().max() < 1e-5


def test_the_native_recurrence_is_not_used_where_it_cannot_run():
    rnn = torch.nn.GRU(1, 8, batch_first=True)
    assert not recurrence.native_ok(torch.zeros(1, 10, 1, dtype=torch.float64), rnn.double())
    assert not recurrence.native_ok(torch.zeros(1, 0, 1), rnn.float())
    model = GRU(hidden_size=8).double()  # float64 runs on nn.GRU, and still runs
    assert model(torch.zeros(1, 1, 16, dtype=torch.float64), pad_start=True).shape == (1, 1, 16)
