"""A 1-D convolution whose CPU backward is a few matrix products.

PyTorch's CPU backward of a small dilated convolution (a WaveNet's 3-16 channels, tens of
thousands of samples) takes 3-8x its forward: oneDNN's weight gradient and its input
gradient (a transposed convolution) both run far below what the arithmetic needs. Both
gradients are sums over the kernel's taps of one matrix product each,

    dW[:, :, j] = sum_b  dY[b] @ X[b, :, j*d : j*d + n].T      (out, in)
    dX[b, :, j*d : j*d + n] += W[:, :, j].T @ dY[b]            (in, n)

and written that way (products on strided views, accumulated in place) they take about
the forward's time: a dilated layer's forward and backward run 2.2-2.5x faster and the
default WaveNet's training step 1.6x (README, "Speed levers"). The forward is
``F.conv1d``'s, and so is everything on other devices, in other dtypes, under autocast,
with groups, strides or padding, and for 1x1 convolutions (already fast). Plain PyTorch.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

MAX_TAPS = 32  # a loop over taps: long FIR filters (a cabinet's) stay with F.conv1d
TAP_WISE = True  # False: PyTorch's own backward everywhere (benchmarks and tests compare)


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
            grad_w = weight.new_zeros(k, weight.shape[0], weight.shape[1])
            for b in range(grad.shape[0]):
                for j in range(k):  # (out, n) @ (n, in): the tap's input is a strided view
                    grad_w[j].addmm_(grad[b], x[b, :, j * d : j * d + n].t())
            grad_w = grad_w.permute(1, 2, 0)
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


def conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, dilation: int = 1
) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, dilation=dilation)``, valid, stride 1, one group:
    x (batch, in, time) -> (batch, out, time - (k-1)*dilation), with the tap-wise backward
    for float32 CPU tensors in training, wherever the kernel has 2 to ``MAX_TAPS`` taps."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if (
        TAP_WISE
        and 1 < weight.shape[-1] <= MAX_TAPS
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
