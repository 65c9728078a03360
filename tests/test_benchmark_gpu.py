"""``benchmarks/gpu.py`` cannot rot: ``--tiny`` runs it on the CPU (two logical devices, so the
MirroredStrategy scaling path runs too) and its report holds what a GPU run prints; the FLOPs it
divides by are CNN-F's, counted by hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def gpu_benchmark():
    """``benchmarks/gpu.py`` as a module, imported by path."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import gpu
    finally:
        sys.path.remove(str(BENCHMARKS))
    return gpu


def test_tiny_run_measures_one_and_two_devices_and_prints_its_references(gpu_benchmark,
                                                                         capsys):
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "gpu.py"), "--tiny", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert (report["device"], report["preset"], report["batch_per_device"]) == (
        "CPU", "small_cnn", 8)
    results = report["results"]
    assert [(r["devices"], r["global_batch"]) for r in results] == [(1, 8), (2, 16)]
    for result in results:
        assert result["images_per_second"] > 0 and result["step_ms"] > 0
        low, high = result["step_ms_spread"]
        assert low <= result["step_ms"] <= high
        # images/s is 2 images per triplet over the median step.
        assert result["images_per_second"] == pytest.approx(
            2 * result["global_batch"] / (result["step_ms"] / 1000))
        assert result["share_of_peak"] is None  # no spec-sheet peak for a CPU
    assert results[0]["vs_1_device"] == 1.0 and results[0]["efficiency"] == 1.0
    assert results[1]["vs_1_device"] == pytest.approx(
        results[1]["images_per_second"] / results[0]["images_per_second"])

    # The table a GPU run prints, from these results.
    args = gpu_benchmark.parse_args(["--tiny"])
    gpu_benchmark.print_table(results, args, "NVIDIA H100 80GB HBM3", 495.0, "small_cnn")
    out = capsys.readouterr().out
    assert "CNN-F preset small_cnn (32x32x3, K = 50" in out
    assert "Compared against: 1 device in this run" in out
    assert "NVIDIA H100 80GB HBM3's dense TF32 peak, 495 TFLOP/s" in out
    assert "reports no throughput" in out


def test_the_paper_preset_is_counted_layer_by_layer(gpu_benchmark):
    from tfrec_fashion.layers.cnn_f import CNNF

    phi = CNNF.from_preset("cnn_f", output_dim=50)
    # conv1..conv5 at 54, 27, 14, 14, 14 pixels a side, then fc6 (7x7x256) -> 4096 -> 4096 -> 50.
    convs = [(54, 64, 11, 3), (27, 256, 5, 64), (14, 256, 3, 256), (14, 256, 3, 256),
             (14, 256, 3, 256)]
    expected = sum(2 * side * side * out * k * k * cin for side, out, k, cin in convs)
    expected += 2 * (12544 * 4096 + 4096 * 4096 + 4096 * 50)
    assert gpu_benchmark.forward_flops(phi) == expected == 1_563_043_328
    assert phi.count_params() == 70_573_874


def test_device_counts_double_up_to_all_and_refuse_what_is_not_there(gpu_benchmark):
    assert gpu_benchmark.device_counts(None, 1) == [1]
    assert gpu_benchmark.device_counts(None, 6) == [1, 2, 4, 6]
    assert gpu_benchmark.device_counts(None, 8) == [1, 2, 4, 8]
    assert gpu_benchmark.device_counts("2,1", 4) == [1, 2]
    with pytest.raises(SystemExit, match="--devices must lie in 1..2"):
        gpu_benchmark.device_counts("4", 2)
