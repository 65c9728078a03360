"""``benchmarks/training_speed.py`` cannot rot: ``--tiny`` trains BPR-MF and VBPR under the old
and the new settings on the planted world's tiny preset, and its report holds what a full run
prints (steps/s, triplets/s, fit seconds, AUCs and the new / old ratios)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_tiny_run_reports_old_and_new_settings_and_their_ratios():
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "training_speed.py"), "--tiny",
                           "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    results = report["results"]
    assert [(r["model"], r["settings"]) for r in results] == [
        ("bpr_mf", "old"), ("bpr_mf", "new"), ("vbpr", "old"), ("vbpr", "new")]
    for result in results:
        assert result["steps_per_second"] > 0 and result["fit_seconds"] >= 0
        assert result["triplets_per_second"] == pytest.approx(
            result["steps_per_second"] * result["batch_size"])
        assert result["epochs_run"] == 2
        assert 0 <= result["test_auc"] <= 1 and 0 <= result["best_val_auc"] <= 1
    # The baseline is the old settings, measured in the same run.
    assert results[0]["batch_size"] == 256 and results[0]["steps_per_execution"] == 1
    for ratio, (old, new) in zip(report["ratios"], (results[:2], results[2:])):
        assert ratio["triplets_per_second"] == pytest.approx(
            new["triplets_per_second"] / old["triplets_per_second"])
        assert ratio["test_auc_change"] == pytest.approx(new["test_auc"] - old["test_auc"])


def test_unknown_model_is_refused():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import training_speed
    finally:
        sys.path.remove(str(BENCHMARKS))
    with pytest.raises(SystemExit, match="unknown model 'dvbpr'"):
        training_speed.settings("dvbpr", tiny=True)
