"""``benchmarks/design_latency.py`` cannot rot: ``--tiny`` exports tiny design networks at each
(steps, restarts) setting of both sweeps, times each in-graph and through our gRPC server, and
reports ratios to the smallest setting of the same run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_tiny_run_times_both_sweeps_in_graph_and_served(capsys):
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "design_latency.py"), "--tiny",
                           "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert (report["device"], report["n"], report["base_steps"], report["base_restarts"]) == (
        "CPU", 8, 2, 8)
    assert report["image_shape"] == [8, 8, 3]
    sweeps = report["sweeps"]
    assert [(r["steps"], r["restarts"]) for r in sweeps["steps"]] == [(1, 8), (2, 8)]
    assert [(r["steps"], r["restarts"]) for r in sweeps["restarts"]] == [(2, 8), (2, 16)]
    for name, rows in sweeps.items():
        smallest = rows[0]
        for row in rows:
            for timing in ("in_graph_ms", "served_ms"):
                assert row[timing] > 0
                assert row[f"{timing}_ratio"] == pytest.approx(row[timing] / smallest[timing])
            assert row["work_ratio"] == row[name] / smallest[name]
        assert smallest["in_graph_ms_ratio"] == 1.0 and smallest["served_ms_ratio"] == 1.0
    # The table a person reads, from the same numbers.
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import design_latency
    finally:
        sys.path.remove(str(BENCHMARKS))
    args = design_latency.parse_args(["--tiny"])
    design_latency.print_table(sweeps, args, "CPU")
    printed = capsys.readouterr().out
    assert "against the steps (restarts m = 8); ratios to the smallest steps in this run" in \
        printed
    assert "against the restarts (steps = 2)" in printed and "served/in-graph" in printed
    assert len([line for line in printed.splitlines() if line.strip().startswith(
        ("1 ", "2 ", "8 ", "16 "))]) == 4
