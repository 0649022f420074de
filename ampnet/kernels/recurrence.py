"""The GRU recurrence in the native library, forward and backward, as an autograd function.

PyTorch 2.13 has a fused CPU kernel for training an LSTM (oneDNN's) but none for a GRU:
``nn.GRU`` then runs every time step as separate small operations, forward and backward,
about 50x slower than the LSTM of the same size. Here only the recurrence (the part that
cannot be batched over time) runs in C (``gru_forward`` / ``gru_backward`` in ``amp.c``);
the input projections and the weight gradients stay single matrix products in PyTorch.
The result is PyTorch's GRU (gates r, z, n) to float rounding, with the same parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ampnet import kernels


def native_ok(x: torch.Tensor, rnn: torch.nn.GRU) -> bool:
    """True when :func:`gru` can run ``rnn`` on ``x``: float32 on the CPU, the library
    built, and not while a model is being traced, scripted or exported (they need
    ``nn.GRU`` itself)."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.shape[1] == 0:
        return False
    if rnn.bidirectional or not rnn.batch_first or rnn.proj_size or not rnn.bias:
        return False
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return False
    return kernels.library() is not None


class _Recurrence(torch.autograd.Function):
    """(gi (B, T, 3H), h0 (B, H), W_hh (3H, H), b_hh (3H)) -> hs (B, T, H)."""

    @staticmethod
    def forward(ctx, gi, h0, w_hh, b_hh):
        lib = kernels.library()
        batch, steps, three_h = gi.shape
        hidden = three_h // 3
        gi, h0, w_hh, b_hh = (t.contiguous() for t in (gi, h0, w_hh, b_hh))
        wt = w_hh.t().contiguous()
        hs = gi.new_empty(batch, steps, hidden)
        grad = any(ctx.needs_input_grad)
        save = gi.new_empty(batch, steps, 4 * hidden) if grad else None
        lib.gru_forward(
            batch, steps, hidden, gi.data_ptr(), h0.data_ptr(), wt.data_ptr(),
            b_hh.data_ptr(), hs.data_ptr(), save.data_ptr() if grad else None,
        )  # fmt: skip
        if grad:
            ctx.save_for_backward(h0, w_hh, hs, save)
        return hs

    @staticmethod
    def backward(ctx, dhs):
        lib = kernels.library()
        h0, w_hh, hs, save = ctx.saved_tensors
        batch, steps, hidden = hs.shape
        dhs = dhs.contiguous()
        dgi = hs.new_empty(batch, steps, 3 * hidden)
        dgh = torch.empty_like(dgi)
        dh0 = torch.empty_like(h0)
        lib.gru_backward(
            batch, steps, hidden, w_hh.data_ptr(), h0.data_ptr(), hs.data_ptr(),
            save.data_ptr(), dhs.data_ptr(), dgi.data_ptr(), dgh.data_ptr(), dh0.data_ptr(),
        )  # fmt: skip
        prev = torch.cat([h0[:, None], hs[:, :-1]], dim=1)
        dw = dgh.flatten(0, 1).t() @ prev.flatten(0, 1)
        return dgi, dh0, dw, dgh.sum((0, 1))


def gru(rnn: torch.nn.GRU, x: torch.Tensor, h0: torch.Tensor):
    """``rnn(x, h0)`` (batch-first, ``h0`` (layers, batch, hidden)) with the recurrence in
    the native library: ``(outputs, final states)`` as ``nn.GRU`` returns them. Call only
    where :func:`native_ok` holds."""
    finals = []
    for layer in range(rnn.num_layers):
        w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        x = _Recurrence.apply(F.linear(x, w_ih, b_ih), h0[layer], w_hh, b_hh)
        finals.append(x[:, -1])
    return x, torch.stack(finals)
