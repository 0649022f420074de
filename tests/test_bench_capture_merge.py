"""bench_capture.py --merge: runs made into separate folders become one table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO

SCRIPT = REPO / "scripts" / "bench_capture.py"


def _row(tool: str, label: str, esr: float, seconds: float, curve: list) -> dict:
    return {
        "tool": tool, "capture": "ts9", "label": label, "time_s": seconds, "clock": "cpu",
        "wall_s": seconds, "wall_measured_s": seconds, "cpu_s": seconds, "own_val": {},
        "model_file": "-", "overrides": [], "di_esr": esr, "di_esr_pre": esr,
        "di_mrstft": 1.0, "val_esr": esr / 2, "parameters": 10, "curve": curve,
    }  # fmt: skip


def _run(folder, signal: bytes, rows: list) -> str:
    folder.mkdir()
    (folder / "reamp.wav").write_bytes(signal)
    path = folder / "bench_capture.json"
    path.write_text(json.dumps({"reamp": str(folder / "reamp.wav"), "seconds": 1.0, "rows": rows}))
    return str(path)


def _merge(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--merge", *map(str, args)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip


def test_merge_puts_two_runs_into_one_table_with_the_ratios(tmp_path):
    # ampnet: 0.001 in 100 s, and 0.003 at 50 s; NAM: 0.002 in 400 s (a third: 133 s)
    ampnet = _row("ampnet", "ampnet defaults", 0.001, 100.0, [[50, 0.003, 0], [100, 0.001, 0]])
    nam = _row("nam_a1", "NAM A1", 0.002, 400.0, [[400, 0.002, 0]])
    a = _run(tmp_path / "a", b"same signal", [ampnet])
    b = _run(tmp_path / "b", b"same signal", [nam])
    result = _merge(a, b, "--out", tmp_path / "merged")
    assert result.returncode == 0, result.stderr[-2000:]
    merged = json.loads((tmp_path / "merged" / "bench_capture.json").read_text())
    assert [r["label"] for r in merged["rows"]] == ["NAM A1", "ampnet defaults"]
    goals = merged["goals"]["ts9"]["ampnet defaults"]
    assert goals["di_esr_over_best_nam"] == pytest.approx(0.5)
    assert goals["time_over_best_nam"] == pytest.approx(0.25)
    assert goals["best_snapshot_within_third_of_nam_time_over_nam"] == pytest.approx(0.5)
    assert goals["di_over_val"] == pytest.approx(2.0)
    assert (tmp_path / "merged" / "esr_vs_time_ts9.png").is_file()


def test_merge_of_runs_without_curves_names_each_final_model_in_the_plot(tmp_path):
    # --no-curves runs: no snapshots, so each row is one point; the legend must name them
    # (an unlabelled point made matplotlib warn "No artists with labels found").
    a = _run(tmp_path / "a", b"same signal", [_row("ampnet", "ampnet defaults", 0.001, 100.0, [])])
    b = _run(tmp_path / "b", b"same signal", [_row("nam_a1", "NAM A1", 0.002, 400.0, [])])
    result = _merge(a, b, "--out", tmp_path / "merged")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "No artists with labels" not in result.stderr + result.stdout
    assert (tmp_path / "merged" / "esr_vs_time_ts9.png").stat().st_size > 1000


def test_merge_refuses_runs_on_different_signals(tmp_path):
    a = _run(tmp_path / "a", b"one signal", [_row("ampnet", "x", 0.001, 1.0, [])])
    b = _run(tmp_path / "b", b"another signal", [_row("nam_a1", "y", 0.002, 1.0, [])])
    result = _merge(a, b, "--out", tmp_path / "merged")
    assert result.returncode == 2 and "different reamp signals" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "merged").exists()


def test_merge_of_a_file_that_is_not_a_bench_capture_json_says_so_in_one_line(tmp_path):
    a = _run(tmp_path / "a", b"same signal", [_row("ampnet", "x", 0.001, 1.0, [])])
    other = tmp_path / "notes.json"
    other.write_text("[1, 2, 3]")
    result = _merge(a, other, "--out", tmp_path / "merged")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("ampnet: error:") and "not a bench_capture.json" in lines[0]
    assert str(other) in lines[0] and not (tmp_path / "merged").exists()
