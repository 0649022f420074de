"""ONNX and TorchScript exports for hosts that embed a runtime: one streaming step.

Both run ``(x, state) -> (y, new_state)``: ``x`` is ``(1, channels, n)`` float32 for
any ``n`` (audio first, then knobs), ``y`` is ``(1, 1, n)``, and ``state`` is one
``(1, state_size)`` float32 vector that the host passes back in on the next call.
All zeros means "after silence", so a host starts (and resets) with zeros. The model
card gives ``state_size``. Processing a whole file is one call with n = its length.

A knob-aware model's knobs are channels of ``x`` after the audio, one value per
sample (the card's ``x_channels`` names them): hold a knob by repeating its value,
ramp it to avoid clicks. For such a WaveNet the zero state is silence with every
knob at 0; the difference from silence at another setting fades within one
receptive field.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

from ampnet.atomic import atomic_output


def _leaves(state) -> list[torch.Tensor]:
    """The tensors of a model's state (nested lists and tuples of tensors), in order."""
    if isinstance(state, torch.Tensor):
        return [state]
    return [leaf for part in state for leaf in _leaves(part)]


def _rebuild(like, leaves: list[torch.Tensor]):
    """``like``'s nesting with ``leaves`` (consumed from the front) in place of its tensors."""
    if isinstance(like, torch.Tensor):
        return leaves.pop(0)
    parts = [_rebuild(part, leaves) for part in like]
    return tuple(parts) if isinstance(like, tuple) else parts


class StreamingStep(nn.Module):
    """A model as one stateful step; the state is stored relative to the state after silence.

    Uses only the model contract: ``initial_state()`` and ``forward_with_state(x, state)``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()
        self.start = model.initial_state()
        leaves = _leaves(self.start)
        self.shapes = [tuple(t.shape) for t in leaves]
        self.register_buffer(
            "offset", torch.cat([t.reshape(1, -1) for t in leaves], dim=1).detach().clone()
        )

    @property
    def state_size(self) -> int:
        return int(self.offset.shape[1])

    def _unpack(self, state: torch.Tensor):
        parts, i = [], 0
        full = state + self.offset
        for shape in self.shapes:
            size = int(np.prod(shape))
            parts.append(full[:, i : i + size].reshape(shape))
            i += size
        return _rebuild(self.start, parts)

    def _pack(self, state) -> torch.Tensor:
        return torch.cat([p.reshape(1, -1) for p in _leaves(state)], dim=1) - self.offset

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, new = self.model.forward_with_state(x, self._unpack(state))
        return y[:, :1], self._pack(new)


def _example(step: StreamingStep, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    channels = step.model.input_channels
    return 0.1 * torch.randn(1, channels, n), torch.zeros(1, step.state_size)


def export_onnx(model: nn.Module, path: str | Path) -> dict:
    """Write the streaming step as ONNX (opset 17, dynamic block length); returns its signature."""
    step = StreamingStep(model)
    with atomic_output(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing notes about Python branches on fixed shapes
        torch.onnx.export(
            step,
            _example(step),
            str(tmp),
            input_names=["x", "state"],
            output_names=["y", "state_out"],
            dynamic_axes={"x": {2: "n"}, "y": {2: "n"}},
            opset_version=17,
            dynamo=False,
        )
    return signature(step)


def export_torchscript(model: nn.Module, path: str | Path) -> dict:
    """Write the streaming step as a traced TorchScript module; returns its signature."""
    step = StreamingStep(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(step, _example(step), check_trace=False)
    with atomic_output(path) as tmp:
        traced.save(str(tmp))
    return signature(step)


def signature(step: StreamingStep) -> dict:
    """What a host needs to call the exported step."""
    return {
        "inputs": {"x": [1, step.model.input_channels, "n"], "state": [1, step.state_size]},
        "x_channels": ["audio", *step.model.params],
        "outputs": {"y": [1, 1, "n"], "state_out": [1, step.state_size]},
        "state_size": step.state_size,
        "initial_state": "zeros (silence)",
    }


def run_onnx(path: str | Path, audio: np.ndarray, blocks: list[int]) -> np.ndarray:
    """Stream ``audio`` (channels, n) through an exported ONNX step in the given block sizes."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    size = session.get_inputs()[1].shape[1]
    state = np.zeros((1, size), np.float32)
    out, pos = [], 0
    for n in blocks:
        y, state = session.run(
            None, {"x": audio[None, :, pos : pos + n].astype(np.float32), "state": state}
        )
        out.append(y[0, 0])
        pos += n
    return np.concatenate(out)


def run_torchscript(path: str | Path, audio: np.ndarray, blocks: list[int]) -> np.ndarray:
    """Stream ``audio`` (channels, n) through an exported TorchScript step in the given block sizes."""
    step = torch.jit.load(str(path))
    state = torch.zeros(1, step.offset.shape[1])
    out, pos = [], 0
    with torch.no_grad():
        for n in blocks:
            y, state = step(
                torch.from_numpy(audio[None, :, pos : pos + n].astype(np.float32)), state
            )
            out.append(y[0, 0].numpy())
            pos += n
    return np.concatenate(out)
