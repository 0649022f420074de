"""A 1-D convolution whose CPU backward is a few matrix products.

PyTorch's CPU backward of a small dilated convolution (a WaveNet's 3-16 channels, tens of
thousands of samples) takes 3-8x its forward: oneDNN's weight gradient and its input
gradient (a transposed convolution) both run far below what the arithmetic needs. Both
gradients are sums over the kernel's taps of one matrix product each,

    dW[:, :, j] = sum_b  dY[b] @ X[b, :, j*d : j*d + n].T      (out, in)
    dX[b, :, j*d : j*d + n] += W[:, :, j].T @ dY[b]            (in, n)

and written that way (products on strided views, accumulated in place) they take about
the forward's time: a dilated layer's forward and backward run 2.2-2.5x faster, the
default WaveNet's training step 1.3-1.6x on one thread and 1.1x on two (README, "The
training step"). The forward is ``F.conv1d``'s, and so is everything on other devices,
in other dtypes, under autocast, with groups, strides or padding, for 1x1 convolutions
(already fast) and on more than ``MAX_THREADS`` threads. Plain PyTorch.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

MAX_TAPS = 32  # a loop over taps: long FIR filters (a cabinet's) stay with F.conv1d
TAP_WISE = True  # False: PyTorch's own backward everywhere (benchmarks and tests compare)
MAX_THREADS = 2  # measured with 1 and 2 threads (README, "The training step"); with more,
# PyTorch's backward (it spreads over threads better, and more were not measured)


class _TapConv1d(torch.autograd.Function):
    """``F.conv1d(x, weight, bias, dilation=d)`` (valid, stride 1, one group) with the
    backward above. x: (batch, in, n + (k-1)*d), weight: (out, in, k)."""

    @staticmethod
    def forward(ctx, x, weight, bias, dilation: int):
        ctx.save_for_backward(x, weight)
        ctx.dilation, ctx.has_bias = dilation, bias is not None
        return F.conv1d(x, weight, bias, dilation=dilation)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        d, k, n = ctx.dilation, weight.shape[-1], grad.shape[-1]
        grad = grad.contiguous()
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if need_w:
            grad_w = _weight_grad(x, grad, k, d, torch.get_num_threads())
        if need_b and ctx.has_bias:
            grad_b = grad.sum((0, 2))
        if need_x:
            grad_x = x.new_empty(x.shape)
            grad_x[:, :, n:].zero_()  # the first tap writes the rest (beta=0 ignores it)
            taps = weight.permute(2, 1, 0)  # (k, in, out)
            for j in range(k):  # added in place into the tap's slice of the gradient
                grad_x[:, :, j * d : j * d + n].baddbmm_(
                    taps[j].expand(len(grad), -1, -1), grad, beta=1.0 if j else 0.0
                )
        return grad_x, grad_w, grad_b, None


def _weight_grad(x: torch.Tensor, grad: torch.Tensor, k: int, d: int, threads: int):
    """dW (out, in, k) of a valid convolution: per batch item and tap, (out, n) @ (n, in).
    One product of the whole length does not spread over threads (its output is tiny), so
    with several threads the length is cut into ``4 x threads`` chunks, one batched product."""
    out, n = grad.shape[1], grad.shape[-1]
    grad_w = grad.new_zeros(k, out, x.shape[1])
    chunks = 4 * threads if threads > 1 and n >= 4096 * threads else 1
    m = n // chunks
    split = chunks * m if chunks > 1 else 0  # samples the chunks cover; the rest: one product
    for b in range(grad.shape[0]):
        g = grad[b, :, :split].unflatten(-1, (chunks, m)).transpose(0, 1) if split else None
        for j in range(k):  # the tap's input, a strided view
            taps = x[b, :, j * d : j * d + n]
            if split:  # (chunks, out, m) @ (chunks, m, in), summed over the chunks
                grad_w[j] += torch.bmm(
                    g, taps[:, :split].unflatten(-1, (chunks, m)).permute(1, 2, 0)
                ).sum(0)
            if split < n:
                grad_w[j].addmm_(grad[b, :, split:], taps[:, split:].t())
    return grad_w.permute(1, 2, 0)


def conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, dilation: int = 1
) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, dilation=dilation)``, valid, stride 1, one group:
    x (batch, in, time) -> (batch, out, time - (k-1)*dilation), with the tap-wise backward
    for float32 CPU tensors in training, wherever the kernel has 2 to ``MAX_TAPS`` taps and
    PyTorch runs on at most ``MAX_THREADS`` threads."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if (
        TAP_WISE
        and 1 < weight.shape[-1] <= MAX_TAPS
        and torch.get_num_threads() <= MAX_THREADS
        and torch.is_grad_enabled()
        and any(t.requires_grad for t in tensors)
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
        and not torch.is_autocast_enabled("cpu")
        and x.dim() == 3
    ):
        return _TapConv1d.apply(x, weight, bias, int(dilation))
    return F.conv1d(x, weight, bias, dilation=dilation)


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` (the same parameters, state dict and output) that trains on the CPU
    with :func:`conv1d`'s backward when it is valid, stride 1 and one group."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1 and self.stride == (1,) and self.padding == (0,):
            return conv1d(x, self.weight, self.bias, self.dilation[0])
        return super().forward(x)
