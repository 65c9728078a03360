"""The validation sweep as a user runs it (``tfrec-fashion train|table CONFIG --sweep ...``):
the choice is made on validation and never on test, finished points are reused, a bad key or
value fails in one line with nothing written."""

import json
from pathlib import Path

import pytest

from tfrec_fashion.cli import main
from tfrec_fashion.config import save_config
from tfrec_fashion.training import harness
from tfrec_fashion.training.sweep import parse_sweep

TINY_RUN = """\
run_dir: {run_dir}
seed: 1
data: {{name: latent_factor, seed: 3, n_users: 60, n_items: 50, rank: 2, interactions_per_user: 10}}
model: {{name: bpr_mf, latent_dim: 4}}
train: {{epochs: 1, batch_size: 64, early_stopping_patience: 0, verbose: 0}}
"""

TINY_TABLE = """\
run_dir: {run_dir}
data: {{name: latent_factor, seed: 3, n_users: 60, n_items: 50, rank: 2, interactions_per_user: 10}}
train: {{epochs: 1, batch_size: 64, verbose: 0}}
methods:
  BPR-MF:
    model: {{name: bpr_mf, latent_dim: 4}}
  Own-train:
    model: {{name: bpr_mf, latent_dim: 4}}
    train: {{epochs: 1, batch_size: 32, verbose: 0}}
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(TINY_RUN.format(run_dir=tmp_path / "run"))
    return path


def fake_train(outcomes, calls):
    """A stand-in for ``harness.train`` whose metrics are set per learning rate: validation
    and test disagree on purpose. It writes what a finished run leaves (config, metrics)."""

    def train(config, run_dir=None, overwrite=False):
        calls.append(config.run_dir)
        validation, test = outcomes[config.train.learning_rate]
        metrics = {f"best_{config.train.monitor}": validation, "test_auc": test,
                   "cold_test_auc": test, "random_test_auc": 0.99, "best_epoch": 1}
        save_config(config, f"{config.run_dir}/config.yaml")
        (Path(config.run_dir) / "metrics.json").write_text(json.dumps(metrics))
        return harness.TrainResult(config.run_dir, None, None, None, {}, metrics)

    return train


def test_grid_is_the_cartesian_product_of_yaml_values():
    assert parse_sweep(["a=1,2", "b.c=[x, y],1.0e-3"]) == [
        ["a=1", "b.c=[x, y]"], ["a=1", "b.c=0.001"], ["a=2", "b.c=[x, y]"], ["a=2", "b.c=0.001"]]


@pytest.mark.parametrize("mode, chosen", [("max", 0.05), ("min", 0.2)])
def test_sweep_chooses_on_validation_never_on_test(config, monkeypatch, capsys, mode, chosen):
    # Test AUC would pick 0.5 (max) or 0.05 (min); validation picks the other way round.
    outcomes = {0.05: (0.90, 0.60), 0.2: (0.70, 0.70), 0.5: (0.80, 0.95)}
    monkeypatch.setattr(harness, "train", fake_train(outcomes, calls := []))
    assert main(["train", str(config), "--set", f"train.monitor_mode={mode}",
                 "--sweep", "train.learning_rate=0.05,0.2,0.5"]) == 0
    assert len(calls) == 3
    sweep_dir = config.parent / "run" / "sweep"
    record = json.loads((sweep_dir / "sweep.json").read_text())
    assert record["monitor"] == "val_auc" and record["mode"] == mode
    assert record["chosen"]["overrides"] == [f"train.learning_rate={chosen}"]
    assert record["chosen"]["run_dir"] == str(sweep_dir / f"train.learning_rate={chosen}")
    assert [p["test"] for p in record["points"]] == [  # the model's test metrics, no baselines
        {"test_auc": t, "cold_test_auc": t} for _, t in outcomes.values()]
    out = capsys.readouterr().out
    assert f"Chosen on validation (val_auc, {mode}): train.learning_rate={chosen}" in out
    assert (sweep_dir / "sweep.md").read_text().strip() in out


def test_finished_points_are_reused_and_the_choice_is_the_same(config, capsys):
    argv = ["train", str(config), "--sweep", "train.learning_rate=0.01,0.1",
            "--sweep", "model.l2_latent=0.0,0.01"]
    assert main(argv) == 0
    sweep_dir = config.parent / "run" / "sweep"
    first = json.loads((sweep_dir / "sweep.json").read_text())
    assert [p["reused"] for p in first["points"]] == [False] * 4
    assert (sweep_dir / "train.learning_rate=0.1,model.l2_latent=0.01" / "model"
            / "weights.index").exists()
    stamps = {p["run_dir"]: (Path(p["run_dir"]) / "metrics.json").stat().st_mtime_ns
              for p in first["points"]}
    capsys.readouterr()

    assert main(argv + ["--set", "train.verbose=2"]) == 0  # verbosity changes no result
    second = json.loads((sweep_dir / "sweep.json").read_text())
    assert [p["reused"] for p in second["points"]] == [True] * 4
    assert second["chosen"] == {**first["chosen"], "reused": True}
    assert "training" not in capsys.readouterr().out
    assert stamps == {p["run_dir"]: (Path(p["run_dir"]) / "metrics.json").stat()
                      .st_mtime_ns for p in second["points"]}

    # Another config under the same points is refused before anything trains.
    assert main(argv + ["--set", "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another config (train.epochs differ)" in err
    assert "--overwrite" in err


@pytest.mark.parametrize("sweep, message", [
    (["train.learnig_rate=0.1,0.2"], "unknown key 'train.learnig_rate' (did you mean "
                                     "'learning_rate'?)"),
    (["train.learning_rate=0.1,fast"], "'train.learning_rate' expects a number, got str 'fast'"),
    (["train.learning_rate=0.1,-1"], "train.learning_rate must be positive"),
    (["train.learning_rate"], "--sweep 'train.learning_rate': expected KEY=V1,V2,..."),
    (["train.learning_rate=[0.1"], "the values are not valid YAML"),
    (["model.latent_dim=4,8", "model.latent_dim=16"], "'model.latent_dim' is swept twice"),
    (["model.latent_dim=4,4"], "give the same run"),
    (["run_dir=a,b"], "every point has its own run_dir"),
])
def test_bad_sweeps_fail_in_one_line_with_nothing_written(config, capsys, sweep, message):
    argv = ["train", str(config)]
    for spec in sweep:
        argv += ["--sweep", spec]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (config.parent / "run").exists()


def test_table_sweeps_one_method(tmp_path, monkeypatch, capsys):
    path = tmp_path / "table.yaml"
    path.write_text(TINY_TABLE.format(run_dir=tmp_path / "table"))
    outcomes = {0.05: (0.90, 0.60), 0.5: (0.80, 0.95)}
    monkeypatch.setattr(harness, "train", fake_train(outcomes, calls := []))
    assert main(["table", str(path), "--methods", "BPR-MF",
                 "--sweep", "train.learning_rate=0.05,0.5"]) == 0
    sweep_dir = tmp_path / "table" / "sweep" / "bpr_mf"
    assert calls == [str(sweep_dir / "train.learning_rate=0.05"),
                     str(sweep_dir / "train.learning_rate=0.5")]
    chosen = json.loads((sweep_dir / "sweep.json").read_text())["chosen"]
    assert chosen["overrides"] == ["train.learning_rate=0.05"]

    # Two methods and no --methods; a key that does not reach the method (it has its own train).
    for argv, message in [([], "--sweep tunes one method at a time; name it with --methods"),
                          (["--methods", "Own-train"], "give the same run (the swept key does "
                                                       "not reach this run")]:
        assert main(["table", str(path), *argv, "--sweep", "train.learning_rate=0.01,0.1"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert main(["table", str(path), "--methods", "Own-train",
                 "--sweep", "methods.Own-train.train.learning_rate=0.05,0.5"]) == 0
    assert len(calls) == 4


def test_solver_runs_are_chosen_on_the_validation_metric_they_record(tmp_path, capsys):
    path = tmp_path / "pd.yaml"
    path.write_text(f"""\
run_dir: {tmp_path / "pd"}
data: {{name: synthetic, seed: 0, n_users: 60, n_items: 80, ratings_per_user: 30,
       n_time_epochs: 2}}
model: {{name: partial_dual, C: 1.0, rank: 1, max_iterations: 60, gap_tolerance: 1.0e-4}}
train: {{monitor: val_rmse, monitor_mode: min, verbose: 0}}
""")
    assert main(["train", str(path), "--sweep", "model.C=0.01,1.0"]) == 0
    record = json.loads((tmp_path / "pd" / "sweep" / "sweep.json").read_text())
    rmse = [p["validation"] for p in record["points"]]
    assert record["chosen"] == record["points"][rmse.index(min(rmse))]
    assert all(isinstance(v, float) for v in rmse) and rmse[0] != rmse[1]
    assert "test_rmse" in record["chosen"]["test"]

    # A quantity the solver does not record fails, naming the ones it does.
    assert main(["train", str(path), "--set", "train.monitor=val_loss",
                 "--sweep", "model.C=0.01,1.0", "--run-dir", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "no sweep point recorded a validation val_loss" in err and "val_rmse" in err
