"""Multi-worker training for real: two worker processes on localhost, each with its TF_CONFIG,
train with ``train.strategy: multi_worker`` (``MultiWorkerMirroredStrategy``) through the CLI,
and match a one-worker run with the same global batch and seed; one worker is killed mid-run and
the restarted cluster resumes from the chief's backup to the end.

What makes the two runs the same computation (see ``training/harness.py``, ``models/two_tower``):
every worker draws the same global batch and keeps its share (tf.data's auto-sharding by data of
the pipeline's batches, rebatched per replica), the gradients are summed across the workers, the
tasks divide by the true global batch when it splits unevenly (``losses.averaging``), the
two-tower's in-batch softmax scores each replica's queries against the whole global batch's
candidates, and Keras' sum over the workers of what each step returns is the global loss (the
metrics are divided by the replicas before it). So the 2-worker run is the 1-worker run up to
float32 summation order, and the tolerances below are float noise, not a modelling margin.

Measured (CPU, 2 shared cores, the configs below): every logged per-epoch number agrees to
1.7e-7 relative (two-tower) and 8.2e-8 (VBPR), test AUC and best epoch are equal, and so are the
killed-and-resumed run's and a one-worker run interrupted at the same epoch (test AUC 0.573520
both). Slow: four clusters of two TensorFlow processes, one killed; 65-120 s on 2 cores.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf
import yaml

from tfrec_fashion.config import from_dict
from tfrec_fashion.training import harness
from tfrec_fashion.training.harness import train
from tfrec_fashion.training.run_config import RunConfig

pytestmark = pytest.mark.slow

# Float32 summation order only (measured ~1e-7 relative on the losses): the losses must agree
# to 1e-5 of their size, the AUCs (a few thousand held-out pairs each) to 1e-4.
LOSS_RTOL = 1e-5
AUC_ATOL = 1e-4

RUNS = {
    "two_tower": {
        "seed": 1,
        "data": {"name": "latent_factor", "seed": 3, "n_users": 150, "n_items": 80, "rank": 4,
                 "interactions_per_user": 20},
        "model": {"name": "two_tower", "embedding_dim": 8, "l2": 1e-4},
        "train": {"epochs": 3, "batch_size": 256, "learning_rate": 0.1, "optimizer": "adagrad",
                  "early_stopping_patience": 0, "verbose": 0},
    },
    "vbpr": {
        "seed": 0,
        "data": {"name": "synthetic", "seed": 0, "n_users": 60, "n_items": 120,
                 "n_time_epochs": 3, "mean_interactions_per_user": 12.0},
        "model": {"name": "vbpr", "latent_dim": 4, "visual_dim": 4, "l2_latent": 0.01},
        # 6 batches an epoch, the last of 79 triplets: 40 and 39 on the two workers.
        "train": {"epochs": 4, "batch_size": 100, "learning_rate": 0.02,
                  "early_stopping_patience": 0, "verbose": 0},
    },
}
KILLED_EPOCHS = 10  # the killed-and-resumed VBPR run: long enough to be killed in the middle
WORKER_TIMEOUT = 240  # seconds: a cluster that hangs fails the test instead of CI


def _config_file(directory: Path, name: str, strategy: str, **train) -> Path:
    raw = RUNS[name]
    config = {**raw, "run_dir": str(directory / "run"),
              "train": {**raw["train"], "strategy": strategy, **train}}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class Cluster:
    """Two ``tfrec-fashion train`` processes, worker 0 (the chief) and worker 1, on localhost."""

    def __init__(self, config_path: Path, run_dirs: tuple[Path | None, Path | None] = (None, None)):
        self.config_path = config_path
        self.logs = [config_path.parent / f"worker_{index}.log" for index in range(2)]
        cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
        self.processes = []
        for index in range(2):
            env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": "",
                   "TF_CPP_MIN_LOG_LEVEL": "2",
                   "TF_CONFIG": json.dumps({"cluster": cluster,
                                            "task": {"type": "worker", "index": index}})}
            command = [sys.executable, "-m", "tfrec_fashion.cli", "train", str(config_path)]
            if run_dirs[index] is not None:
                command += ["--run-dir", str(run_dirs[index])]
            with self.logs[index].open("a") as log:
                self.processes.append(subprocess.Popen(command, env=env, stdout=log,
                                                       stderr=subprocess.STDOUT))

    def wait(self, timeout: float = WORKER_TIMEOUT) -> list[int]:
        deadline = time.time() + timeout
        try:
            return [process.wait(timeout=max(1.0, deadline - time.time()))
                    for process in self.processes]
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the cluster did not finish in {timeout} s:\n{self.tails()}")

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def tails(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs)


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _losses(run_dir: Path) -> list[float]:
    return [float(row["loss"]) for row in _rows(run_dir / "logs" / "training.csv")]


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _assert_same_run(two: Path, one: Path) -> dict[str, float]:
    """The 2-worker run in ``two`` against the 1-worker run in ``one``; returns the differences."""
    two_rows, one_rows = (_rows(run / "logs" / "training.csv") for run in (two, one))
    assert [row.keys() for row in two_rows] == [row.keys() for row in one_rows]
    # Every logged number per epoch: the losses and the metrics (a metric counted once per
    # worker would be twice the one-worker value).
    for two_row, one_row in zip(two_rows, one_rows):
        for key, value in one_row.items():
            assert float(two_row[key]) == pytest.approx(float(value), rel=LOSS_RTOL,
                                                        abs=1e-12), (key, two_row, one_row)
    two_metrics, one_metrics = _metrics(two), _metrics(one)
    for key in ("test_auc", "best_val_auc"):
        assert two_metrics[key] == pytest.approx(one_metrics[key], abs=AUC_ATOL), key
    assert two_metrics["epochs_run"] == one_metrics["epochs_run"]
    assert two_metrics["best_epoch"] == one_metrics["best_epoch"]
    return {"loss": max(abs(a - b) / abs(b) for a, b in zip(_losses(two), _losses(one))),
            "test_auc": abs(two_metrics["test_auc"] - one_metrics["test_auc"])}


@pytest.mark.parametrize("name", ["two_tower", "vbpr"])
def test_two_workers_train_like_one_worker_with_the_same_global_batch(tmp_path, name):
    one = train(from_dict(RunConfig, yaml.safe_load(
        _config_file(tmp_path / "one", name, "default").read_text())))
    cluster = Cluster(_config_file(tmp_path / "two", name, "multi_worker"))
    started = time.perf_counter()
    codes = cluster.wait()
    assert codes == [0, 0], cluster.tails()
    print(f"{name}: 2 workers {time.perf_counter() - started:.1f} s wall")
    run_dir = tmp_path / "two" / "run"
    differences = _assert_same_run(run_dir, one.run_dir)
    print(f"{name}: largest relative loss difference {differences['loss']:.2e}, "
          f"test AUC difference {differences['test_auc']:.2e}")
    # The chief keeps the run directory; worker 1 its own files, the same run.
    worker = run_dir / "workers" / "worker_1"
    assert _rows(worker / "logs" / "training.csv") == _rows(run_dir / "logs" / "training.csv")
    assert _metrics(worker)["test_auc"] == _metrics(run_dir)["test_auc"]
    assert (run_dir / "checkpoints" / "best.index").exists()
    assert (run_dir / "model" / "weights.index").exists()
    assert not (run_dir / "backup").exists(), "a finished run leaves no backup behind"


def test_a_killed_worker_is_resumed_by_restarting_the_cluster(tmp_path, monkeypatch):
    config_path = _config_file(tmp_path, "vbpr", "multi_worker", epochs=KILLED_EPOCHS)
    run_dir = tmp_path / "run"
    log = run_dir / "logs" / "training.csv"
    cluster = Cluster(config_path)
    deadline = time.time() + WORKER_TIMEOUT
    while (len(_rows(log)) < 2 or not (run_dir / "backup" / "chief").is_dir()) and \
            time.time() < deadline and all(p.poll() is None for p in cluster.processes):
        time.sleep(0.05)
    assert all(p.poll() is None for p in cluster.processes), (
        "a worker ended before it could be killed; make the run longer\n" + cluster.tails())
    cluster.processes[1].send_signal(signal.SIGKILL)
    cluster.processes[1].wait()
    # The chief cannot go on without its peer: it waits in the next collective (TensorFlow's
    # health check would end it after tens of seconds); it is stopped here.
    time.sleep(1.0)
    cluster.kill()
    killed_after = len(_rows(log))
    assert 2 <= killed_after < KILLED_EPOCHS
    assert not (run_dir / "metrics.json").exists()

    # A worker that cannot see the chief's run directory restores nothing while the chief
    # resumes: both refuse at once instead of training different epochs into a hang.
    apart = Cluster(config_path, run_dirs=(None, tmp_path / "elsewhere"))
    assert apart.wait() != [0, 0]
    assert "see different training states" in apart.tails()

    resumed = Cluster(config_path)
    codes = resumed.wait()
    assert codes == [0, 0], resumed.tails()
    assert "Resuming the interrupted run" in resumed.logs[0].read_text()
    epochs = [int(row["epoch"]) for row in _rows(log)]
    # Epochs before the kill are not trained again: at most the one in flight is repeated.
    assert sorted(set(epochs)) == list(range(KILLED_EPOCHS))
    assert len(epochs) - KILLED_EPOCHS <= 1
    # Worker 1 resumed from the chief's backup, at the same epoch with the same weights:
    # its log after the restart is the chief's, row for row.
    chief_rows = _rows(log)
    worker_rows = _rows(run_dir / "workers" / "worker_1" / "logs" / "training.csv")
    assert worker_rows[-KILLED_EPOCHS + killed_after - 1:] == \
        chief_rows[-KILLED_EPOCHS + killed_after - 1:]
    metrics = _metrics(run_dir)
    assert metrics["epochs_run"] == KILLED_EPOCHS
    assert metrics["test_auc"] == _metrics(run_dir / "workers" / "worker_1")["test_auc"]
    assert not (run_dir / "backup").exists()

    # One worker, interrupted after the same backed-up epoch and resumed (a resumed run draws
    # its batches afresh, as any restarted process does), is the same run.
    resumed_at = epochs[killed_after]
    one = _interrupted_and_resumed(config_path, tmp_path / "one", resumed_at, monkeypatch)
    assert [int(row["epoch"]) for row in _rows(one / "logs" / "training.csv")] == \
        list(range(KILLED_EPOCHS))
    two_losses = [float(row["loss"]) for row in chief_rows]
    assert two_losses[:killed_after] == pytest.approx(_losses(one)[:killed_after], rel=LOSS_RTOL)
    assert two_losses[-KILLED_EPOCHS + resumed_at:] == pytest.approx(
        _losses(one)[resumed_at:], rel=LOSS_RTOL)
    assert metrics["test_auc"] == pytest.approx(_metrics(one)["test_auc"], abs=AUC_ATOL)
    print(f"killed after epoch {killed_after}, resumed at {resumed_at}: test AUC 2 workers "
          f"{metrics['test_auc']:.6f}, 1 worker {_metrics(one)['test_auc']:.6f}")


class _Interrupted(Exception):
    pass


class _InterruptAt(tf.keras.callbacks.Callback):
    """Stops ``fit`` as a kill would, when ``epoch`` begins (after the previous epoch's backup)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Interrupted(epoch)


def _interrupted_and_resumed(config_path: Path, run_dir: Path, epoch: int, monkeypatch) -> Path:
    """A one-worker run of ``config_path`` in ``run_dir``, stopped when ``epoch`` begins and
    resumed to the end."""
    raw = yaml.safe_load(config_path.read_text())
    config = from_dict(RunConfig, {**raw, "run_dir": str(run_dir),
                                   "train": {**raw["train"], "strategy": "default"}})
    real_recipe = harness.get_recipe

    def interrupting_recipe(*args, **kwargs):
        recipe = real_recipe(*args, **kwargs)
        callbacks = recipe.callbacks
        recipe.callbacks = lambda model: [*callbacks(model), _InterruptAt(epoch)]
        return recipe

    with monkeypatch.context() as patch:
        patch.setattr(harness, "get_recipe", interrupting_recipe)
        with pytest.raises(_Interrupted):
            train(config)
    assert harness.run_state(run_dir) == "interrupted"
    train(config)
    return run_dir
