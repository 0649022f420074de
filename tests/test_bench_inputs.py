"""The benchmarks refuse missing reference data with one line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO


@pytest.mark.parametrize("script", ["bench_capture.py", "bench_training.py"])
def test_benchmark_without_the_shared_data_says_where_to_point_it(script, tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, "AMPNET_SHARED_DATA": str(empty)}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(empty / "di.wav") in lines[0], lines
    assert "AMPNET_SHARED_DATA" in lines[0] and "Traceback" not in result.stderr
    assert not out.exists()


def test_capture_bench_with_a_signal_length_out_of_range_says_so_in_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "di.wav").touch()  # the script checks only that it is there before the signal
    out = tmp_path / "out"
    env = {**os.environ, "AMPNET_SHARED_DATA": str(data)}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_capture.py"), "--minutes", "0.2",
         "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--minutes 0.2" in lines[0], lines
    assert "Traceback" not in result.stderr
    assert not out.exists()
