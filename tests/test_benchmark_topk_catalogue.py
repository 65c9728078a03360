"""``benchmarks/topk_catalogue.py`` cannot rot: a tiny run prints, per catalogue (clustered,
random, learned), the exact baselines at recall 1, each scan and ScaNN tuned to every recall
target (meeting it on the evaluation queries within sampling error, or "not reachable"), the
build times and a summary line per target; the trained vectors land in the data home."""

import os
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TARGETS = (0.9, 0.95)
# Settings are tuned on 256 queries and checked on 50 (batch 1) or 256 (batch 256) others.
SAMPLING_SLACK = 0.07
ROW = re.compile(r"^  (?P<name>\S.*?)\s+(?P<target>exact|\d\.\d\d+)  (?P<rest>.*)$")


def test_tiny_run_prints_matched_recall_rows_for_every_catalogue(tmp_path):
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": "",
           "TFREC_FASHION_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "topk_catalogue.py"), "--tiny",
                           "--quantizations", "bfloat16", "none", "no_such_scan",
                           "--targets", *map(str, TARGETS)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=BENCHMARKS)
    assert done.returncode == 0, done.stderr[-3000:]
    with_scann = "ScaNN rows skipped" not in done.stdout
    tables = done.stdout.split("\n\n")[1:]
    assert [table.split()[0] for table in tables] == ["clustered", "random", "learned"]
    assert "two-tower item vectors" in tables[2]
    assert list((tmp_path / "cache" / "topk_catalogue").glob("two_tower-tiny-d16-*.npz"))
    for table in tables:
        lines = table.splitlines()
        assert "PartitionedTopK bfloat16" in lines[1] and "k-means" in lines[1]
        assert "'no_such_scan' skipped" in table
        rows = {}
        for line in lines:
            match = ROW.match(line)
            if match and not line.startswith("  method"):
                fields = match["rest"].split()
                batch = (int(fields[-6]) if "not reachable" not in line
                         else int(fields[fields.index("reachable") + 1]))
                rows[match["name"], match["target"], batch] = fields
        methods = ["Partitioned bfloat16", "Partitioned none"]
        methods += ["ScaNN pybind (custom code)"] * with_scann
        for batch in (1, 256):
            for exact in ("TFRS BruteForce", "NumPy matmul + argpartition"):
                assert float(rows[exact, "exact", batch][-3]) == 1.0
            for target in TARGETS:
                for name in methods:
                    fields = rows[name, f"{target:.2f}", batch]
                    if "reachable" not in fields:
                        assert float(fields[-3]) >= target - SAMPLING_SLACK, (name, fields)
                        assert float(fields[-5].replace(",", "")) > 0  # queries/s
        for target in TARGETS:
            assert f"recall {target:.2f}: batch 1: " in table
