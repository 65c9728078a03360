"""The training harness as a user relies on it: the model learns (near the oracle, above
popularity), the run directory is complete, a killed run resumes, finished runs are safe."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from tfrec_fashion.config import from_dict, load_config, read_yaml
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.harness import evaluate_run, make_strategy, train
from tfrec_fashion.training.run_config import RunConfig

WORLD = {"name": "latent_factor", "seed": 3, "n_users": 400, "n_items": 200, "rank": 4,
         "interactions_per_user": 30}


def run_config(tmp_path, **train_overrides):
    train_section = {"epochs": 25, "batch_size": 128, "learning_rate": 0.1,
                     "optimizer": "adagrad", "early_stopping_patience": 5, "verbose": 0,
                     **train_overrides}
    return from_dict(RunConfig, {"run_dir": str(tmp_path / "run"), "seed": 1, "data": WORLD,
                                 "model": {"name": "two_tower", "embedding_dim": 16, "l2": 1e-4},
                                 "train": train_section})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("trained")
    return train(run_config(tmp_path))


def test_two_tower_learns_close_to_the_oracle_and_beats_popularity(trained):
    metrics = trained.metrics
    print(json.dumps(metrics, indent=1))
    # Measured (seed 1, world seed 3): model 0.848, oracle 0.860, popularity 0.649.
    assert metrics["oracle_test_auc"] > 0.8  # the planted world is learnable
    assert metrics["test_auc"] > metrics["popularity_test_auc"] + 0.1
    assert metrics["test_auc"] > metrics["oracle_test_auc"] - 0.05
    assert metrics["test_auc"] <= metrics["oracle_test_auc"] + 0.02


def test_run_directory_holds_config_logs_checkpoints_and_metrics(trained):
    run_dir = trained.run_dir
    saved = from_dict(RunConfig, read_yaml(run_dir / "config.yaml"))
    assert saved.model.embedding_dim == 16 and saved.data.seed == 3
    with (run_dir / "logs" / "training.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == trained.metrics["epochs_run"] >= 2
    assert {"loss", "val_auc"} <= set(rows[0])
    assert any((run_dir / "logs" / "tensorboard").rglob("events.out.tfevents.*"))
    assert (run_dir / "checkpoints" / "best.index").exists()
    assert (run_dir / "model" / "weights.index").exists()
    assert not (run_dir / "backup").exists(), "a finished run leaves no backup behind"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    best = max(float(r["val_auc"]) for r in rows)
    assert metrics["best_val_auc"] == pytest.approx(best)
    assert float(rows[metrics["best_epoch"] - 1]["val_auc"]) == pytest.approx(best)


def test_evaluate_reloads_the_best_epoch_from_the_run_directory(trained):
    metrics = evaluate_run(trained.run_dir)
    assert metrics["test_auc"] == pytest.approx(trained.metrics["test_auc"], abs=1e-6)


def test_finished_run_is_not_overwritten_without_asking(trained, monkeypatch):
    config = run_config(trained.run_dir.parent)

    def never_built():
        raise AssertionError("the data was built before the finished run was refused")

    # Refused before the data is built: building can take minutes (image features).
    monkeypatch.setattr(type(config.data), "build", lambda self: never_built())
    with pytest.raises(ConfigError, match="already holds a finished run"):
        train(config)


def test_same_seed_gives_the_same_run(tmp_path):
    first = train(run_config(tmp_path / "a", epochs=2, early_stopping_patience=0))
    second = train(run_config(tmp_path / "b", epochs=2, early_stopping_patience=0))
    assert first.history["loss"] == second.history["loss"]
    assert first.metrics["test_auc"] == second.metrics["test_auc"]


def test_mirrored_strategy_trains(tmp_path):
    result = train(run_config(tmp_path, epochs=2, strategy="mirrored"))
    assert result.metrics["epochs_run"] == 2


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="multi_worker needs the TF_CONFIG"):
        make_strategy("multi_worker")


def _logged_epochs(path):
    if not path.exists():
        return []
    with path.open() as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    config_path = tmp_path / "config.yaml"
    config = yaml.safe_load(
        yaml.safe_dump({"run_dir": str(tmp_path / "run"), "seed": 1,
                        "data": WORLD,
                        "model": {"name": "two_tower", "embedding_dim": 16},
                        "train": {"epochs": 12, "batch_size": 16, "learning_rate": 0.05,
                                  "optimizer": "adagrad", "early_stopping_patience": 0,
                                  "verbose": 0}}))
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "tfrec_fashion.cli", "train", str(config_path)]
    log = tmp_path / "run" / "logs" / "training.csv"

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while len(_logged_epochs(log)) < 3 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_after = len(_logged_epochs(log))
    assert 3 <= killed_after < 12
    assert (tmp_path / "run" / "backup").exists()
    assert not (tmp_path / "run" / "metrics.json").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming the interrupted run" in resumed.stdout
    epochs = _logged_epochs(log)
    # Epochs before the kill are not trained again: at most the one in flight is repeated.
    assert epochs.count(0) == 1
    assert sorted(set(epochs)) == list(range(12))
    assert len(epochs) - 12 <= 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 12
    assert metrics["test_auc"] > metrics["popularity_test_auc"]


def test_resuming_with_another_config_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "backup" / "chief").mkdir(parents=True)
    (run_dir / "backup" / "chief" / "checkpoint").write_text("state")
    config = run_config(tmp_path)
    from tfrec_fashion.config import save_config

    save_config(config, run_dir / "config.yaml")
    changed = load_config(RunConfig, run_dir / "config.yaml", ["model.embedding_dim=8"])
    with pytest.raises(ConfigError, match=r"different config \(model\.embedding_dim differ\)"):
        train(changed)


def test_a_field_added_since_a_run_was_trained_is_its_default_not_a_change(tmp_path):
    """StyNet gained ``model.feature_source`` (default "dataset"): a run saved before it is
    still the same config (tables reuse it, an interrupted one resumes); a value other than
    the default is a change."""
    import yaml

    from tfrec_fashion.config import save_config
    from tfrec_fashion.training.harness import config_differences

    config = from_dict(RunConfig, {"model": {"name": "stynet"}, "data": {"name": "synthetic"},
                                   "run_dir": str(tmp_path)})
    save_config(config, tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    del saved["model"]["feature_source"]  # as written before the field existed
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    assert config_differences(tmp_path, config) == []
    other = from_dict(RunConfig, {"model": {"name": "stynet", "feature_source": "attributes"},
                                  "data": {"name": "synthetic"}, "run_dir": str(tmp_path)})
    assert config_differences(tmp_path, other) == ["model.feature_source"]


def test_a_run_that_cannot_be_served_still_finishes_with_its_metrics(tmp_path, monkeypatch):
    """Parts the export would refuse (here NaN vectors) do not lose the trained, evaluated run:
    its metrics say why it has no serving parts, and exporting it fails with that reason."""
    from tfrec_fashion.training.recipes.two_tower import TwoTowerRecipe
    from tfrec_fashion.training.serving_parts import retrieval_parts
    from tfrec_fashion_export.runs import export_run

    def unservable(self, model):
        return retrieval_parts(self, model, user_vectors=np.full(
            (len(self.dataset.users), 16), np.nan, np.float32))

    monkeypatch.setattr(TwoTowerRecipe, "serving_parts", unservable)
    result = train(run_config(tmp_path, epochs=1))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["serving_parts"].startswith("not written: user_vectors must be finite")
    assert metrics["test_auc"] > 0.5  # evaluated all the same
    assert not (result.run_dir / "serving").exists()
    with pytest.raises(ValueError, match="user_vectors must be finite"):
        export_run(result.run_dir, tmp_path / "exports")
