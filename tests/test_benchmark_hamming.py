"""``benchmarks/hamming.py`` cannot rot: a tiny catalogue prints the exact baseline, the Hamming
rows and their re-rank, with recall@10 (it broke silently once when ``make_catalogue`` changed)."""

import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_tiny_run_prints_the_exact_baseline_and_each_code_length():
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "hamming.py"), "--items", "2000",
                           "--queries", "16", "--bits", "64", "128", "--repeats", "1"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=BENCHMARKS)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    exact = [line for line in lines if line.strip().startswith("float matmul + top_k (exact)")]
    assert len(exact) == 1 and exact[0].split()[-4] == "1.000"  # its recall@10
    for bits in (64, 128):
        assert any(f"Hamming top-10, {bits}-bit codes" in line for line in lines), bits
    rerank = [float(line.split()[-4]) for line in lines if "+ float re-rank" in line]
    hamming = [float(line.split()[-4]) for line in lines if "Hamming top-10," in line]
    # Re-scoring the Hamming candidates by their float vectors never loses recall.
    assert len(rerank) == 2 and all(r >= h for r, h in zip(rerank, hamming))
