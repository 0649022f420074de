"""The tap-wise CPU backward of ``ampnet.models.conv``: the same gradients as PyTorch's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ampnet.models import WaveNet, build_model
from ampnet.models import conv as conv_module
from ampnet.models.conv import Conv1d, conv1d

from .test_configs import compose_train


@pytest.fixture(autouse=True)
def one_thread():
    """The tap-wise path runs on at most ``MAX_THREADS`` threads: pin one, whatever the
    machine (a single-process run of the suite uses every core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _grads(fn, x, w, b, g):
    y = fn(x, w, b)
    return [y, *torch.autograd.grad(y, [t for t in (x, w, b) if t is not None], g)]


@pytest.mark.parametrize(
    "batch, cin, cout, k, dilation, bias",
    [
        (2, 10, 10, 6, 41, True),
        (3, 8, 16, 15, 101, True),
        (1, 10, 1, 16, 1, False),
        (4, 3, 5, 2, 7, True),
        (2, 1, 4, 3, 2, False),
    ],
)
def test_gradients_match_pytorchs_convolution(batch, cin, cout, k, dilation, bias):
    torch.manual_seed(0)
    x = torch.randn(batch, cin, 500 + (k - 1) * dilation, requires_grad=True)
    w = torch.randn(cout, cin, k, requires_grad=True)
    b = torch.randn(cout, requires_grad=True) if bias else None
    g = torch.randn(batch, cout, 500)
    ours = _grads(lambda *a: conv1d(*a, dilation=dilation), x, w, b, g)
    theirs = _grads(lambda *a: F.conv1d(*a, dilation=dilation), x, w, b, g)
    assert ours[0].grad_fn.name() != theirs[0].grad_fn.name()  # the tap-wise path ran
    ours[0], theirs[0] = ours[0].detach(), theirs[0].detach()
    for a, e in zip(ours, theirs, strict=True):
        assert torch.allclose(a, e, rtol=1e-5, atol=1e-5 * float(e.abs().max()))


def test_only_the_input_or_only_the_weights_may_need_a_gradient():
    x = torch.randn(2, 4, 60)
    w = torch.randn(3, 4, 5)
    g = torch.randn(2, 3, 60 - 4 * 3)
    wr = w.clone().requires_grad_()
    (dw,) = torch.autograd.grad(conv1d(x, wr, None, 3), wr, g)
    (ew,) = torch.autograd.grad(F.conv1d(x, wr, None, dilation=3), wr, g)
    assert torch.allclose(dw, ew, rtol=1e-5, atol=1e-5)
    xr = x.clone().requires_grad_()
    (dx,) = torch.autograd.grad(conv1d(xr, w, None, 3), xr, g)
    (ex,) = torch.autograd.grad(F.conv1d(xr, w, None, dilation=3), xr, g)
    assert torch.allclose(dx, ex, rtol=1e-5, atol=1e-5)


def test_pytorchs_convolution_runs_where_the_tap_wise_backward_does_not_apply():
    x = torch.randn(2, 4, 50, requires_grad=True)
    w = torch.randn(3, 4, 5, requires_grad=True)
    custom = conv1d(x, w, None, 2).grad_fn.name()
    assert "Convolution" not in custom
    with torch.no_grad():
        assert conv1d(x, w, None, 2).grad_fn is None
    assert "Convolution" in conv1d(x.double(), w.double(), None, 2).grad_fn.name()
    assert "Convolution" in conv1d(x, w[:, :, :1], None, 1).grad_fn.name()  # 1x1: fast already
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv1d(x, w, None, 2).dtype == torch.bfloat16
    grouped = Conv1d(4, 4, 3, groups=2)
    assert "Convolution" in grouped(x).grad_fn.name()


def test_the_module_is_nn_conv1d_with_the_same_state_and_output():
    ours, theirs = Conv1d(6, 5, 4, dilation=3), nn.Conv1d(6, 5, 4, dilation=3)
    theirs.load_state_dict(ours.state_dict())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 6, 80)
    assert torch.equal(ours(x), theirs(x))


def test_a_wavenet_trains_with_the_gradients_of_pytorchs_convolution(monkeypatch, tmp_path):
    torch.manual_seed(1)
    model = build_model(compose_train(["model=wavenet"], tmp_path).model)
    assert isinstance(model, WaveNet)
    x = torch.randn(2, 1, model.receptive_field + 300) * 0.3
    conv = model.layer_arrays[0].layers[0].conv
    probe = torch.randn(1, conv.in_channels, 40)

    def gradients():
        model.zero_grad()
        model(x).square().mean().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return conv(probe).grad_fn.name(), grads

    path, ours = gradients()
    monkeypatch.setattr(conv_module, "TAP_WISE", False)
    path_then, theirs = gradients()
    assert "Convolution" not in path and "Convolution" in path_then
    assert len(ours) == len(theirs) > 40
    for a, e in zip(ours, theirs, strict=True):
        assert torch.allclose(a, e, rtol=1e-4, atol=1e-5 * float(e.abs().max()) + 1e-12)


def test_two_threads_cut_the_weight_gradient_into_chunks_with_the_same_result():
    torch.manual_seed(2)
    x = torch.randn(2, 6, 9001 + 5 * 7, requires_grad=True)  # a length the chunks leave a rest of
    w = torch.randn(4, 6, 6, requires_grad=True)
    g = torch.randn(2, 4, 9001)
    torch.set_num_threads(2)  # the fixture puts back the thread count
    ours = torch.autograd.grad(conv1d(x, w, None, 7), (x, w), g)
    torch.set_num_threads(3)  # past MAX_THREADS: PyTorch's own backward
    assert "Convolution" in conv1d(x, w, None, 7).grad_fn.name()
    theirs = torch.autograd.grad(F.conv1d(x, w, None, dilation=7), (x, w), g)
    for a, e in zip(ours, theirs, strict=True):
        assert torch.allclose(a, e, rtol=1e-5, atol=1e-5 * float(e.abs().max()))
