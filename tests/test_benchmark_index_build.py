"""``benchmarks/index_build.py`` cannot rot: a tiny catalogue is built as now and as before, and
the table prints both builds, their ratio and recall."""

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_tiny_run_prints_both_builds_their_ratio_and_recall():
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "index_build.py"), "--shapes",
                           "20000x16", "--catalogue", "clustered"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=BENCHMARKS)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    rows = {line.split()[2]: line.split() for line in lines if "clustered 20000x16 " in line
            and "build time" not in line}
    assert set(rows) == {"new", "old"}
    # Same partitions up to float rounding: the same count and recall.
    assert rows["new"][4] == rows["old"][4] and rows["new"][-1] == rows["old"][-1]
    assert any("old / new build time" in line for line in lines)
