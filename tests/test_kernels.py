"""The native kernels: exact against PyTorch for every activation and instruction set, and
failing safe (PyTorch fallback, said once) when they cannot be built or trusted."""

from __future__ import annotations

import os
import platform
import stat
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

from ampnet import kernels
from ampnet import stream as streaming
from ampnet.formats.nam_weights import wavenet_weights
from ampnet.models import LSTM, WaveNet
from ampnet.models.activations import NAMES
from ampnet.models.layer_array import FILMS
from ampnet.stream import Streamer

from .conftest import REPO
from .test_stream import MIXED, models, offline, signal, stream

needs_kernels = pytest.mark.skipif(not kernels.available(), reason="native kernels not built")


def test_native_kernels_build_where_there_is_a_compiler():
    # a machine with a compiler must get the kernels: a silent fallback would hide a broken one
    if kernels.compiler() is None or os.environ.get("AMPNET_NO_NATIVE"):
        pytest.skip("no C compiler here (or AMPNET_NO_NATIVE): the fallback tests below cover it")
    assert kernels.available(), "the native kernels did not build; see the line on stderr"


# NAM's parametric activations beyond LeakyReLU run on the PyTorch path (tested below)
KERNEL_ACTIVATIONS = list(NAMES)  # every activation NAM's engine knows


@needs_kernels
@pytest.mark.parametrize("activation", KERNEL_ACTIVATIONS)
def test_every_activation_streams_like_pytorch(activation):
    torch.manual_seed(0)
    layers = [{**MIXED[0], "activation": activation}, {**MIXED[1], "activation": activation}]
    model = WaveNet(layers).eval()
    reach = []  # the largest pre-activation: past every kink (Hardtanh 1, Hardswish 3)
    hooks = [
        layer.conv.register_forward_hook(lambda m, i, out: reach.append(out.abs().max().item()))
        for array in model.layer_arrays
        for layer in array.layers
    ]
    x = 4 * signal(6000)
    reference = offline(model, x)
    for hook in hooks:
        hook.remove()
    assert max(reach) > 3.4
    streamer = Streamer(model, max_block=256, backend="native")
    assert streamer.backend == "native"
    y = stream(streamer, x, [1, 63, 64, 700])
    np.testing.assert_allclose(y, reference, rtol=0, atol=1e-6)


@needs_kernels
def test_the_kernel_names_exactly_the_activations_the_models_have():
    lib = kernels.library()
    ids = kernels.activation_ids(lib, KERNEL_ACTIVATIONS)
    assert sorted(ids) == list(range(len(KERNEL_ACTIVATIONS)))  # each one, once, no gaps
    assert kernels.activation_ids(lib, ["Tanhh"]) == [-1]


@needs_kernels
@pytest.mark.parametrize(
    "change",
    [
        {"kernel_sizes": [3, 2, 6, 2, 15], "kernel_size": None},  # A2's long kernels
        {"bottleneck": 3},
        {"head": {"out_channels": 4, "kernel_size": 16, "bias": True}, "head_size": None},
        {"gated": True, "bottleneck": 2},
        {"activation": "LeakyReLU"},
        {"gating_mode": "blended", "secondary_activation": "Sigmoid"},
        {"gating_mode": "blended", "secondary_activation": "Hardtanh", "bottleneck": 3},
        {"gating_mode": "gated", "secondary_activation": "SiLU"},
        {"head1x1": {"active": True, "out_channels": 4, "groups": 1}, "head_size": 4},
        {
            "head1x1": {"active": True, "out_channels": 3, "groups": 3},
            "head_size": 4,
            "bottleneck": 3,
        },
        {"layer1x1": {"active": False, "groups": 1}},
        {"layer1x1": {"active": True, "groups": 2}, "bottleneck": 4},
        {"groups_input": 3},
        *(
            {f: {"active": True, "shift": shift, "groups": 1}}
            for f in FILMS[:6]
            for shift in (True, False)
        ),
        {"activation": {"type": "PReLU", "negative_slopes": [0.1, 0.2, 0.3, 0.05, 0.5, 0.0]}},
        {"activation": {"type": "PReLU", "negative_slope": 0.3}, "gated": True},
        {"activation": {"type": "LeakyReLU", "negative_slope": 0.2}},
        {
            "activation": {
                "type": "LeakyHardtanh",
                "min_val": -0.3,
                "max_val": 0.5,
                "min_slope": 0.1,
                "max_slope": 0.05,
            }
        },
        {"gating_mode": ["none", "gated", "blended", "none", "gated"]},
        {
            "activation": [
                "Tanh",
                "ReLU",
                "SiLU",
                "Softsign",
                {"type": "LeakyReLU", "negative_slope": 0.3},
            ]
        },
        {
            "gating_mode": "gated",
            "secondary_activation": {"type": "LeakyReLU", "negative_slope": 0.2},
        },
        {
            "gating_mode": ["blended", "gated", "gated", "none", "blended"],
            "secondary_activation": [
                {
                    "type": "LeakyHardtanh",
                    "min_val": 0.0,
                    "max_val": 0.9,
                    "min_slope": 0.0,
                    "max_slope": 0.02,
                },
                "ReLU",
                {"type": "PReLU", "negative_slopes": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]},
                None,
                "Sigmoid",
            ],
        },
        {  # everything at once, as NAM's wavenet_a2_max does
            "gating_mode": "blended",
            "secondary_activation": "Softsign",
            "bottleneck": 3,
            "head1x1": {"active": True, "out_channels": 2, "groups": 1},
            "groups_input": 2,
            **{f: {"active": True, "shift": True, "groups": 1} for f in FILMS},
        },
    ],
)
def test_the_kernel_runs_a2s_layer_features_exactly(change):
    torch.manual_seed(0)
    model = WaveNet([{**MIXED[0], **change}, MIXED[1]]).eval()
    assert kernels.unsupported(model) is None
    x = signal(5000)
    y = stream(Streamer(model, max_block=256, backend="native"), x, [1, 63, 64, 700])
    np.testing.assert_allclose(y, offline(model, x), rtol=0, atol=1e-5)


@needs_kernels
@pytest.mark.parametrize("head", [None, "ReLU", {"type": "PReLU", "negative_slopes": [0.1, 0.3]}])
@pytest.mark.parametrize("dsp", [None, "plain", "with its own head"])
def test_the_kernel_runs_a_top_level_head_and_a_condition_dsp_exactly(head, dsp):
    """NAM's top-level head (activation, causal conv, repeated) and condition_dsp (a WaveNet
    on the input whose outputs condition every layer), alone and together."""
    torch.manual_seed(2)
    cond = 3 if dsp else 1
    arrays = [{**MIXED[0], "condition_size": cond}, {**MIXED[1], "condition_size": cond}]
    kwargs = {}
    if head is not None:
        arrays[1] = {**arrays[1], "head_size": 2}
        kwargs["head"] = {"channels": 2, "out_channels": 1, "kernel_sizes": [3, 1, 4]}
        kwargs["head"]["activation"] = head
    if dsp:
        dsp_head = {"channels": 4, "out_channels": 3, "kernel_sizes": [2, 2]}
        kwargs["condition_dsp"] = WaveNet(
            [{**MIXED[0], "head_size": 3 if dsp == "plain" else 5, "dilations": [1, 4]}],
            head=dsp_head if dsp != "plain" else None,
        ).eval()
    model = WaveNet(arrays, **kwargs).eval()
    assert kernels.unsupported(model) is None
    x = signal(5000)
    streamer = Streamer(model, max_block=256, backend="native")
    y = stream(streamer, x, [1, 63, 64, 700])
    np.testing.assert_allclose(y, offline(model, x), rtol=0, atol=1e-5)
    streamer.reset()  # back to silence, the condition_dsp too
    fresh = Streamer(model, max_block=256, backend="native")
    np.testing.assert_array_equal(stream(streamer, x, [64]), stream(fresh, x, [64]))


@needs_kernels
@pytest.mark.parametrize(
    "change",
    [
        {"groups_input_mixin": 2},
        {"conv_post_film": {"active": True, "shift": True, "groups": 2}},
        {"input_mixin_pre_film": {"active": True, "shift": False, "groups": 2}},
    ],
)
def test_grouped_convolutions_and_films_over_knobs_run_natively(change):
    """Groups that need a condition of two channels (audio and a knob), turned mid-stream."""
    torch.manual_seed(1)
    arrays = [{**MIXED[0], "gated": True, **change}, MIXED[1]]
    model = WaveNet(arrays, params=["drive"]).eval()
    assert kernels.unsupported(model) is None
    x = signal(4000)
    runs = []
    for backend in ("native", "torch"):
        streamer = Streamer(model, max_block=256, backend=backend, params={"drive": 0.2})
        y = [streamer.process(x[:1500])]
        streamer.set_params(drive=0.9)
        y += [streamer.process(x[1500 + i : 1564 + i]) for i in range(0, 2500, 64)]
        runs.append(np.concatenate(y))
    np.testing.assert_allclose(runs[0], runs[1], rtol=0, atol=1e-5)


@needs_kernels
@pytest.mark.parametrize(
    "change",
    [
        "an LSTM condition_dsp",
        "a WaveNet condition_dsp with an LSTM condition_dsp",
    ],
)
def test_what_the_kernel_cannot_run_streams_on_pytorch_with_a_note(change, capsys):
    torch.manual_seed(0)
    dsp = LSTM(hidden_size=8).eval()
    if "WaveNet" in change:
        dsp = WaveNet([{**MIXED[0], "head_size": 1}], condition_dsp=dsp).eval()
    model = WaveNet([MIXED[0], MIXED[1]], condition_dsp=dsp).eval()
    why = kernels.unsupported(model)
    assert why and "native kernel has no" in why
    streamer = Streamer(model, max_block=256)
    assert streamer.backend == "torch"
    said = capsys.readouterr().err
    assert said.count(why) <= 1 and (why in said or why in streaming._NOTED)  # once a reason
    x = signal(3000)
    np.testing.assert_allclose(stream(streamer, x, [63, 64]), offline(model, x), atol=1e-5)
    with pytest.raises(RuntimeError, match="native"):
        Streamer(model, backend="native")


@needs_kernels
@pytest.mark.parametrize("name", ["wavenet", "lstm", "gru"])
def test_the_c_timing_loop_streams_what_offline_gives(name):
    """time_blocks (the benchmark's like-for-like with NAM's engine `bench`) really runs the
    model: its output, 64 samples a call, is the offline output, and it takes time."""
    model = models()[name]
    x = signal(4096 + 64 * 7)
    native = kernels.NativeModel(model, max_block=64)
    seconds, y = native.time_blocks(x[None], 64)
    assert seconds > 0
    np.testing.assert_allclose(y, offline(model, x), atol=1e-5)
    with pytest.raises(ValueError, match="block must be"):
        native.time_blocks(x[None], 65)


@needs_kernels
def test_native_kernel_refuses_a_layout_it_cannot_run():
    model = models()["wavenet"]
    lib = kernels.library()
    (config, params), weights = kernels.wavenet_kernel_config(model, lib), wavenet_weights(model)

    def create(config, weights, params) -> bool:
        ints = (kernels._ptr(config, kernels._int_p), len(config))
        floats = (kernels._ptr(weights), len(weights), kernels._ptr(params), len(params))
        handle = lib.wavenet_create(*ints, *floats, 64)
        if handle:
            lib.wavenet_destroy(handle)
        return bool(handle)

    assert create(config, weights, params)
    assert not create(config, weights[:-5], params)  # weights short
    assert not create(config, weights, params[:-1])  # activation parameters short
    config[8] = 99  # the first array's activation id: one the kernel does not have
    assert not create(config, weights, params)


PORTABLE_CHECK = """
import numpy as np, torch
from ampnet import kernels
from ampnet import stream as streaming
from ampnet.stream import Streamer
from tests.test_stream import models, offline, signal, stream
assert kernels.available()
for name, model in models().items():
    if kernels.unsupported(model):  # the GRU has no kernel yet
        continue
    x = signal(5000)
    y = stream(Streamer(model, max_block=256, backend="native"), x, [1, 63, 64, 700])
    err = float(np.abs(y - offline(model, x)).max())
    assert err < 1e-5, (name, err)
print("ok")
"""


@needs_kernels
@pytest.mark.skipif(
    platform.machine() != "x86_64", reason="instruction-set variants are x86-64 names"
)
@pytest.mark.slow  # two more kernel builds
@pytest.mark.parametrize("march", ["x86-64", "x86-64-v3"])
def test_kernels_are_exact_on_older_instruction_sets(march, tmp_path):
    # SSE2-only and AVX2 machines get narrower vectors and other reciprocal estimates
    env = dict(os.environ, AMPNET_MARCH=march, AMPNET_CACHE=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", PORTABLE_CHECK], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


NO_COMPILER_CHECK = """
import numpy as np
from ampnet import kernels
from ampnet import stream as streaming
from ampnet.stream import Streamer, render
from tests.test_stream import models, offline, signal, stream
assert not kernels.available()
for name, model in models().items():
    x = signal(3000)
    streamer = Streamer(model, max_block=128)
    assert streamer.backend == "torch", streamer.backend
    y = stream(streamer, x, [1, 63, 64, 700])
    assert float(np.abs(y - offline(model, x)).max()) < 1e-5, name
    assert float(np.abs(render(model, x, threads=2) - offline(model, x)).max()) < 1e-5, name
print("ok")
"""


def run_check(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_a_compiler_streaming_falls_back_to_pytorch_and_says_so_once(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()  # a PATH with no compiler on it, and no cached library to find
    result = run_check(
        NO_COMPILER_CHECK, PATH=str(empty), CC="", AMPNET_CACHE=str(tmp_path / "cache")
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
    notes = [line for line in result.stderr.splitlines() if line.startswith("ampnet:")]
    assert len(notes) == 1, result.stderr
    assert "no C compiler found" in notes[0] and "PyTorch" in notes[0]
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.so"))


def test_a_missing_cc_is_the_same_as_no_compiler(tmp_path):
    result = run_check(
        NO_COMPILER_CHECK,
        PATH=str(tmp_path),
        CC=str(tmp_path / "no-such-cc"),
        AMPNET_CACHE=str(tmp_path / "cache"),
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
    assert result.stderr.count("native kernels unavailable") == 1


def fake_compiler(tmp_path, body: str):
    script = tmp_path / "fakecc"
    script.write_text(
        f"#!/bin/sh\ncase \"$1\" in --version) echo 'fakecc 1.0';; *) {body};; esac\n"
    )
    script.chmod(0o755)
    return script


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """library() computed afresh inside the test, and again afterwards for the other tests."""
    monkeypatch.setenv("AMPNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AMPNET_NO_NATIVE", raising=False)
    kernels.library.cache_clear()
    yield
    kernels.library.cache_clear()


def test_a_compiler_that_hangs_is_stopped_and_falls_back(
    tmp_path, monkeypatch, capsys, fresh_library
):
    monkeypatch.setenv("CC", str(fake_compiler(tmp_path, "sleep 30")))
    monkeypatch.setattr(kernels, "COMPILE_TIMEOUT", 1)
    assert kernels.library() is None
    assert kernels.library() is None  # asked twice, said once
    err = capsys.readouterr().err
    assert err.count("native kernels unavailable") == 1 and "took over 1 s" in err


def test_a_failing_compiler_falls_back_with_its_message(
    tmp_path, monkeypatch, capsys, fresh_library
):
    monkeypatch.setenv(
        "CC", str(fake_compiler(tmp_path, "echo 'amp.c: internal error' >&2; exit 1"))
    )
    assert kernels.library() is None
    assert "internal error" in capsys.readouterr().err


@needs_kernels
def test_a_broken_cached_library_is_built_again(tmp_path, monkeypatch, fresh_library):
    monkeypatch.delenv("CC", raising=False)
    path = kernels.library_path(kernels.compiler())
    path.write_bytes(b"not a shared library")
    path.chmod(0o600)
    assert kernels.library() is not None
    assert path.read_bytes()[:4] == b"\x7fELF" or path.stat().st_size > 1000


def test_a_library_that_will_not_load_falls_back(tmp_path, monkeypatch, capsys, fresh_library):
    if kernels.compiler() is None:
        pytest.skip("needs a compiler to get as far as loading")

    def refuse(*args, **kwargs):
        raise OSError("wrong ELF class")

    monkeypatch.setattr(kernels.ctypes, "CDLL", refuse)
    assert kernels.library() is None
    assert "does not load (wrong ELF class)" in capsys.readouterr().err


def test_a_folder_others_can_write_is_not_trusted(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert not kernels.private(shared)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "mine")
    (tmp_path / "mine").mkdir(mode=0o700)
    assert kernels.private(tmp_path / "mine") and not kernels.private(link)


def test_an_untrusted_cache_folder_is_passed_over(tmp_path, monkeypatch, fresh_library):
    shared = tmp_path / "cache" / "kernels"
    shared.mkdir(parents=True)
    shared.chmod(0o777)  # anyone could plant a library here
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    folder = kernels._folder()
    assert folder == tmp_path / "tmp" / f"ampnet-kernels-{os.getuid()}"
    assert kernels.private(folder)
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0


def test_the_cache_key_follows_the_compiler_version(tmp_path, monkeypatch):
    monkeypatch.setenv("AMPNET_CACHE", str(tmp_path))
    one = kernels.library_path([str(fake_compiler(tmp_path, "exit 0"))])
    (tmp_path / "fakecc").write_text("#!/bin/sh\necho 'fakecc 2.0'\n")
    two = kernels.library_path([str(tmp_path / "fakecc")])
    assert one != two and one.parent == two.parent
