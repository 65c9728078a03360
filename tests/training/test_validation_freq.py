"""``train.validation_freq``: validation every N epochs (the last one and a process's first one
included), NaN logged between, the best checkpoint and early stopping judged on validations
only, a resumed run still right; ``train.steps_per_execution`` trains the same run."""

import csv
import logging
import math

import numpy as np
import pytest

from tfrec_fashion.config import from_dict
from tfrec_fashion.training import callbacks as callbacks_module
from tfrec_fashion.training.callbacks import (EpochMetrics, ValidatedEarlyStopping,
                                              is_validation_epoch)
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig

WORLD = {"name": "latent_factor", "seed": 3, "n_users": 200, "n_items": 100, "rank": 4,
         "interactions_per_user": 20}


def run_config(run_dir, **train_overrides):
    train_section = {"epochs": 8, "batch_size": 256, "steps_per_epoch": 10,
                     "learning_rate": 0.02, "early_stopping_patience": 0, "verbose": 0,
                     **train_overrides}
    return from_dict(RunConfig, {"run_dir": str(run_dir), "seed": 1, "data": WORLD,
                                 "model": {"name": "bpr_mf", "latent_dim": 8},
                                 "train": train_section})


def logged(run_dir):
    with (run_dir / "logs" / "training.csv").open() as handle:
        return {int(row["epoch"]): float(row["val_auc"]) for row in csv.DictReader(handle)}


def test_schedule_is_every_nth_epoch_and_the_last():
    assert [e + 1 for e in range(10) if is_validation_epoch(e, 3, 10)] == [3, 6, 9, 10]
    assert all(is_validation_epoch(e, 1, 10) for e in range(10))


def test_epoch_metrics_log_nan_between_validations():
    calls = []
    metrics = EpochMetrics(lambda model: calls.append(1) or {"auc": 0.7}, frequency=3)
    metrics.set_params({"epochs": 7})
    logs = [{} for _ in range(7)]
    for epoch, epoch_logs in enumerate(logs):
        metrics.on_epoch_end(epoch, epoch_logs)
    # Epoch 1 (the process's first: the log's columns), 3, 6 and the last, 7.
    assert [e + 1 for e, l in enumerate(logs) if not math.isnan(l["val_auc"])] == [1, 3, 6, 7]
    assert len(calls) == 4


def test_early_stopping_patience_counts_validations():
    stopping = ValidatedEarlyStopping(2, monitor="val_auc", mode="max", patience=2)
    stopping.set_params({"epochs": 100})

    class Model:
        stop_training = False

    stopping.set_model(Model())
    stopping.on_train_begin()
    values = [0.9, 0.5, math.nan, 0.6, 0.1, 0.55, 0.1, 0.55, math.nan, 0.5]
    for epoch, value in enumerate(values):
        stopping.on_epoch_end(epoch, {"val_auc": value})
        if stopping.model.stop_training:
            break
    # Only epochs 2, 4, 6, 8 count: 0.5, best 0.6, then no improvement twice -> stop at 8.
    assert epoch + 1 == 8


def test_a_run_validating_every_third_epoch_checkpoints_and_resumes(tmp_path, caplog,
                                                                     monkeypatch):
    every = train(run_config(tmp_path / "every"))
    # The same run validated every 3rd epoch, killed after its 4th epoch, resumed; with 4
    # steps per execution (same updates, fewer calls).
    sparse_dir = tmp_path / "sparse"
    config = run_config(sparse_dir, validation_freq=3, steps_per_execution=4,
                        early_stopping_patience=3)

    class Killed(Exception):
        pass

    original = ValidatedEarlyStopping.on_epoch_end

    def kill_after_fourth(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 3:
            raise Killed  # after the backup and the log of epoch 4, like a SIGKILL then

    monkeypatch.setattr(callbacks_module.ValidatedEarlyStopping, "on_epoch_end",
                        kill_after_fourth)
    with pytest.raises(Killed):
        train(config)
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING):
        sparse = train(config)
    # No complaint about the monitored value missing on epochs without validation.
    assert "not available" not in caplog.text

    every_log, sparse_log = logged(every.run_dir), logged(sparse_dir)
    assert sorted(sparse_log) == list(range(8))
    validated = [epoch + 1 for epoch, value in sorted(sparse_log.items()) if not math.isnan(value)]
    # 1 (first epoch), 3, then 5 (the resumed process's first), 6 and 8 (the last).
    assert validated == [1, 3, 5, 6, 8]
    # Validating less never changes training: before the kill, the same values as every epoch's
    # run (a resumed run redraws its batches, so later epochs differ from an uninterrupted one).
    for epoch in (1, 3):
        assert sparse_log[epoch - 1] == pytest.approx(every_log[epoch - 1], abs=1e-6)
    best = max(validated, key=lambda epoch: sparse_log[epoch - 1])
    assert sparse.metrics["best_epoch"] == best
    assert sparse.metrics["epochs_run"] == 8
    assert np.isfinite(sparse.metrics["test_auc"])


@pytest.mark.parametrize("field", ["validation_freq", "steps_per_execution"])
def test_frequencies_must_be_positive(field):
    from tfrec_fashion.training.run_config import TrainConfig

    with pytest.raises(ValueError, match=f"train.{field} must be positive"):
        TrainConfig(**{field: 0})
