"""The training harness: one path from a ``RunConfig`` to a trained model in a run directory.

Run directory layout::

    <run_dir>/config.yaml            the resolved config the run used (file + --set overrides)
    <run_dir>/backup/                BackupAndRestore state while a run is unfinished
    <run_dir>/checkpoints/best*      weights of the best epoch by ``train.monitor``
    <run_dir>/model/weights*         final weights (the best epoch's), read by ``load_run``
    <run_dir>/logs/training.csv      one row per epoch (CSVLogger)
    <run_dir>/logs/tensorboard/      TensorBoard event files
    <run_dir>/metrics.json           held-out metrics, best epoch, epochs run
    <run_dir>/embeddings.npz         customer and item embeddings keyed by id (rating models,
                                     ``data.embeddings``)
    <run_dir>/serving/               what the export serves (``serving_parts``: ids, vectors,
                                     the item embedder as a SavedModel); export reads only this

Models fitted by their own solver rather than ``fit`` (``SolverRecipe``: Partial Dual) use the
same layout: the solver's state in ``backup/`` while unfinished, the fitted model in ``model/``,
a per-iteration ``logs/solver.csv``.

A killed run is resumed by running the same command again: BackupAndRestore restores the model,
optimizer and epoch, and the best-so-far value of the monitored quantity is recovered from the
CSV log so the best checkpoint is not overwritten by a worse epoch. A finished run is never
overwritten unless asked (``overwrite=True``).

Multi-worker runs (``train.strategy: multi_worker``, one process per worker, each with its
``TF_CONFIG``) share one run directory, which must be on a filesystem every worker sees: the
chief (worker 0, or the "chief" task) writes the layout above; the other workers keep their own
``config.yaml``, ``logs/``, ``model/``, ``metrics.json`` ... under
``<run_dir>/workers/<type>_<index>/``, but train from the chief's ``backup/`` (Keras'
``BackupAndRestore`` restores every worker from it and lets only the chief write it) and end on
the chief's best checkpoint. A run that lost a worker is resumed by starting every worker again
with the same command.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import tfrec_fashion  # noqa: F401  (Keras 2 before TensorFlow loads)
import tensorflow as tf

from tfrec_fashion.config import from_dict, read_yaml, save_config, to_dict
from tfrec_fashion.data.dataset import FashionDataset
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.data.embeddings import FILE_NAME as EMBEDDINGS_FILE
from tfrec_fashion.training.callbacks import ValidatedEarlyStopping, validating_every
from tfrec_fashion.training.precision import precision_policy
from tfrec_fashion.training.recipes import Recipe, SolverRecipe, get_recipe
from tfrec_fashion.training.run_config import RunConfig, TrainConfig
from tfrec_fashion.training.serving_parts import DIRECTORY as SERVING_DIRECTORY, save_parts
from tfrec_fashion.training.thumbnails import images_in_order

# Keys that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"train.epochs", "train.verbose", "train.early_stopping_patience",
                      "train.validation_freq"}


@dataclasses.dataclass
class TrainResult:
    """What ``train`` returns: the run directory, the trained model and its numbers."""

    run_dir: Path
    model: tf.keras.Model
    recipe: Recipe
    dataset: FashionDataset
    history: dict[str, list[float]]
    metrics: dict[str, Any]


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the distribution strategy named by ``train.strategy``.

    "multi_worker" reads the cluster from the ``TF_CONFIG`` environment variable, as
    ``tf.distribute.MultiWorkerMirroredStrategy`` does, and fails clearly when it is unset.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError("train.strategy: multi_worker needs the TF_CONFIG environment "
                              "variable describing the cluster (see tf.distribute docs)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"train.strategy: unknown strategy {name!r}")


def _non_chief_task() -> dict | None:
    """The TF_CONFIG task of this process if it is a non-chief worker, else None (TF's
    convention: the "chief" task, or worker 0 when the cluster has no chief, is the chief)."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task")
    if not task or task.get("type") == "chief":
        return None
    if (task.get("type") == "worker" and task.get("index", 0) == 0
            and "chief" not in tf_config.get("cluster", {})):
        return None
    return task


def make_optimizer(config: TrainConfig) -> tf.keras.optimizers.Optimizer:
    optimizers = {"adam": tf.keras.optimizers.Adam, "adagrad": tf.keras.optimizers.Adagrad,
                  "sgd": tf.keras.optimizers.SGD}
    return optimizers[config.optimizer](learning_rate=config.learning_rate)


def set_seeds(seed: int, deterministic: bool) -> None:
    """Seeds Python, NumPy and TensorFlow; optionally makes TF ops deterministic."""
    tf.keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def train(config: RunConfig, run_dir: str | Path | None = None,
          overwrite: bool = False) -> TrainResult:
    """Trains ``config.model`` on ``config.data`` and writes the run directory.

    Args:
        config: the resolved run config.
        run_dir: overrides ``config.run_dir``.
        overwrite: replace a finished run in ``run_dir`` (otherwise an error).

    Returns:
        A ``TrainResult`` with the best epoch's model and its held-out metrics.
    """
    shared_dir = Path(run_dir or config.run_dir)
    task = _non_chief_task()
    # Non-chief workers of a multi-worker run keep their (identical) files apart; the training
    # state (backup/) and the best checkpoint are the chief's, in ``shared_dir``.
    run_dir = (shared_dir if task is None
               else shared_dir / "workers" / f"{task['type']}_{task['index']}")
    train_config = config.train
    # A finished run (without overwrite) or a changed config under an interrupted one is refused
    # before the data is built: that can take minutes (image features) and must not be wasted.
    # Every worker judges the shared directory, so all of them resume, or none.
    state = _check_run_dir(shared_dir, config, overwrite)
    set_seeds(config.seed, train_config.deterministic)
    strategy = make_strategy(train_config.strategy)
    recipe = get_recipe(config.model, train_config, config.seed)
    dataset = config.data.build()
    # Whatever the data lacks for this model fails here, before the run directory is written.
    recipe.prepare(dataset)
    if task is None:
        _prepare_run_dir(run_dir, state)
        save_config(config, run_dir / "config.yaml")
    if isinstance(recipe, SolverRecipe):
        if task is not None:
            _prepare_worker_dir(run_dir, state, config)
        return _train_with_solver(recipe, dataset, run_dir)
    # The model's layers keep the policy they were built under (``training.precision``).
    with strategy.scope(), precision_policy(train_config.precision):
        model = recipe.build_model()
        if not model.built:
            raise TypeError(f"the {config.model.name} recipe must return a built model (all "
                            "variables created) so that an interrupted run can be restored")
        model.compile(optimizer=make_optimizer(train_config),
                      steps_per_execution=train_config.steps_per_execution,
                      jit_compile=train_config.jit_compile)
    if task is not None:
        # After the model's variables exist: creating them waited for the chief's initial
        # values, so the chief has prepared (or, with overwrite, emptied) the shared directory.
        _prepare_worker_dir(run_dir, state, config)
    _check_same_backup(strategy, shared_dir / "backup")
    train_data, validation_data = recipe.datasets()

    csv_path = run_dir / "logs" / "training.csv"
    # The chief's path on every worker: Keras writes it on the chief only (the others write a
    # temporary copy and delete it), and every worker reloads it after fit.
    best_path = shared_dir / "checkpoints" / "best"
    checkpoint = tf.keras.callbacks.ModelCheckpoint(
        str(best_path), monitor=train_config.monitor, mode=train_config.monitor_mode,
        save_best_only=True, save_weights_only=True, verbose=0)
    _, previous_best = _best(read_log(csv_path), train_config.monitor, train_config.monitor_mode)
    if previous_best is not None:
        checkpoint.best = previous_best
    callbacks: list[tf.keras.callbacks.Callback] = [
        # First: they add the monitored validation metrics to logs (every validation_freq epochs).
        *validating_every(recipe.callbacks(model), train_config.validation_freq),
        tf.keras.callbacks.BackupAndRestore(str(shared_dir / "backup")),
        checkpoint,
        tf.keras.callbacks.CSVLogger(str(csv_path), append=True),
        tf.keras.callbacks.TensorBoard(str(run_dir / "logs" / "tensorboard"), profile_batch=0),
    ]
    if train_config.early_stopping_patience:
        callbacks.append(ValidatedEarlyStopping(
            train_config.validation_freq, monitor=train_config.monitor,
            mode=train_config.monitor_mode, patience=train_config.early_stopping_patience))
    started = time.perf_counter()
    model.fit(train_data, validation_data=validation_data, epochs=train_config.epochs,
              steps_per_epoch=train_config.steps_per_epoch, callbacks=callbacks,
              verbose=train_config.verbose)
    fit_seconds = round(time.perf_counter() - started, 1)

    # Every worker's last backup and the chief's last best checkpoint are written before any
    # worker goes on (a no-op on one worker).
    _barrier(strategy)
    if task is None and not _has_backup(run_dir):
        shutil.rmtree(run_dir / "backup", ignore_errors=True)
    history = read_log(csv_path)
    if best_path.with_suffix(".index").exists():
        model.load_weights(str(best_path)).expect_partial()
    model.save_weights(str(run_dir / "model" / "weights"))
    metrics = recipe.evaluate(model)
    best_epoch, best_value = _best(history, train_config.monitor, train_config.monitor_mode)
    summary = {
        **metrics,
        "epochs_run": len(history.get("epoch", [])),
        "fit_seconds": fit_seconds,  # this process's fit (a resumed run: since resuming)
        "best_epoch": best_epoch,
        f"best_{train_config.monitor}": best_value,
    }
    _write_results(recipe, model, run_dir, summary)
    return TrainResult(run_dir, model, recipe, dataset, history, summary)


def _prepare_worker_dir(worker_dir: Path, state: str, config: RunConfig) -> None:
    """A non-chief worker's own directory: kept when resuming (its CSV log goes on), else
    emptied; with the config it ran (``config.yaml``)."""
    if state != "interrupted":
        shutil.rmtree(worker_dir, ignore_errors=True)
    worker_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, worker_dir / "config.yaml")


def _barrier(strategy: tf.distribute.Strategy) -> None:
    """Waits until every worker of a multi-worker strategy gets here (an all-reduce); returns
    at once under any other strategy."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    strategy.reduce(tf.distribute.ReduceOp.SUM,
                    strategy.run(lambda: tf.constant(1.0)), axis=None).numpy()


def _check_same_backup(strategy: tf.distribute.Strategy, backup_dir: Path) -> None:
    """Refuses, on every worker at once, a multi-worker run whose workers see different
    training states in the chief's ``backup_dir`` (the newest checkpoint's number, 0 = none).

    ``BackupAndRestore`` restores every worker from there; a worker that cannot read it (the
    run directory is not on a shared filesystem) would start again while the others resume,
    and the workers' collectives would stop matching (an error or a hang in the first step)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    latest = tf.train.latest_checkpoint(str(backup_dir / "chief"))
    number = int(latest.rsplit("-", 1)[1]) if latest else 0
    seen = strategy.gather(strategy.run(lambda: tf.constant([number], tf.int64)), axis=0)
    seen = sorted(set(seen.numpy().tolist()))
    if len(seen) > 1:
        raise ConfigError(
            f"the workers see different training states in {backup_dir} (backups "
            f"{', '.join(map(str, seen))}; 0 = none): every worker must see the chief's run "
            "directory, so put run_dir on a filesystem shared by all workers")


def _train_with_solver(recipe: SolverRecipe, dataset: FashionDataset,
                       run_dir: Path) -> TrainResult:
    """The same run directory for a model fitted by its own solver (Partial Dual): the solver
    checkpoints into ``backup/`` as it goes (so a killed run resumes there), the fitted model
    goes to ``model/``, its per-iteration log to ``logs/``."""
    started = time.perf_counter()
    model = recipe.solve(run_dir / "backup", run_dir / "logs")
    fit_seconds = round(time.perf_counter() - started, 1)
    recipe.save_model(model, run_dir / "model")
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    summary = {**recipe.evaluate(model), **recipe.solver_summary(model),
               "fit_seconds": fit_seconds}
    # One fitted model, so its value of the monitored quantity is the run's best (None when
    # the recipe records no such metric): sweeps read best_<monitor> from every run alike.
    monitor = recipe.train_config.monitor
    summary[f"best_{monitor}"] = summary.get(monitor)
    _write_results(recipe, model, run_dir, summary)
    return TrainResult(run_dir, model, recipe, dataset, recipe.history(model), summary)


def _write_results(recipe: Recipe, model, run_dir: Path, summary: dict[str, Any]) -> None:
    """metrics.json, after what serving needs (``serving_parts``: export reads only that) and
    the shared embeddings file for recipes that learn customer embeddings (written first:
    metrics.json marks a finished run)."""
    try:
        save_run_parts(recipe, model, run_dir)
    except ValueError as error:  # e.g. a diverged model's NaN vectors: evaluated, not servable
        shutil.rmtree(run_dir / SERVING_DIRECTORY, ignore_errors=True)
        summary["serving_parts"] = f"not written: {error}"
        print(f"warning: {run_dir} is not servable, its serving parts were not written: {error}")
    embeddings = recipe.embeddings(model)
    if embeddings is not None:
        embeddings.save(run_dir / EMBEDDINGS_FILE)
    # Tables and the demo read a run by its protocol's name (``evaluation.protocols``).
    summary["protocol"] = recipe.protocol
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=float))


def save_run_parts(recipe: Recipe, model, run_dir: Path) -> Path:
    """``<run_dir>/serving``: the model's serving parts and, when the dataset has item images,
    their thumbnail sheet (the browse page's pictures, in the parts' item order)."""
    parts = recipe.serving_parts(model)
    return save_parts(parts, run_dir / SERVING_DIRECTORY,
                      images_in_order(recipe.dataset.items, parts.item_ids))


def load_run(run_dir: str | Path) -> tuple[RunConfig, Recipe, tf.keras.Model]:
    """Rebuilds a finished run's recipe and model from its directory (config + weights)."""
    run_dir = Path(run_dir)
    weights = run_dir / "model" / "weights"
    if not (run_dir / "config.yaml").exists():
        raise ConfigError(f"{run_dir} holds no trained model (no config.yaml); "
                          "train it first with `tfrec-fashion train`")
    config = from_dict(RunConfig, read_yaml(run_dir / "config.yaml"),
                       source=str(run_dir / "config.yaml"))
    recipe = get_recipe(config.model, config.train, config.seed)
    recipe.prepare(config.data.build())
    if isinstance(recipe, SolverRecipe):
        return config, recipe, recipe.load_model(run_dir / "model")
    if not weights.with_suffix(".index").exists():
        raise ConfigError(f"{run_dir} holds no trained model (no model/weights); "
                          "train it first with `tfrec-fashion train`")
    with precision_policy(config.train.precision):
        model = recipe.build_model()
    model.load_weights(str(weights)).expect_partial()
    return config, recipe, model


def evaluate_run(run_dir: str | Path) -> dict[str, Any]:
    """Re-evaluates a finished run and returns its held-out metrics."""
    _, recipe, model = load_run(run_dir)
    return recipe.evaluate(model)


# ----------------------------------------------------------------------------- run directory
def run_state(run_dir: str | Path) -> str:
    """"finished" (metrics.json, no training state left), "interrupted" (BackupAndRestore or
    solver state to resume from) or "new" (nothing to resume: a new run starts there)."""
    run_dir = Path(run_dir)
    if _has_backup(run_dir):
        return "interrupted"
    return "finished" if (run_dir / "metrics.json").exists() else "new"


def _check_run_dir(run_dir: Path, config: RunConfig, overwrite: bool) -> str:
    """Reads ``run_dir`` only: refuses a finished run without ``overwrite`` and an interrupted
    run under another config; returns its ``run_state``."""
    state = run_state(run_dir)
    if state == "finished" and not overwrite:
        raise ConfigError(f"run directory {run_dir} already holds a finished run; choose "
                          "another run_dir or pass --overwrite to replace it")
    if state == "interrupted":
        check_resumable(run_dir, config)
    return state


def _prepare_run_dir(run_dir: Path, state: str) -> None:
    """Makes ``run_dir`` ready for a run in ``state`` (checked by ``_check_run_dir``)."""
    if state == "finished":
        shutil.rmtree(run_dir)
    elif state == "interrupted":
        print(f"Resuming the interrupted run in {run_dir}")
    elif run_dir.exists():
        # Killed before its first epoch ended: nothing to resume, stale logs would mislead.
        for stale in ("logs", "checkpoints", "model"):
            shutil.rmtree(run_dir / stale, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def _has_backup(run_dir: Path) -> bool:
    """True when BackupAndRestore left training state behind (it keeps an empty folder at the end)."""
    backup = run_dir / "backup"
    # A multi-worker run's non-chief workers write a "workertemp_<id>" copy that they delete
    # (one left by a killed worker is no state: every worker restores from the chief's).
    return backup.is_dir() and any(
        path.is_file() and not any(part.startswith("workertemp_")
                                   for part in path.relative_to(backup).parts)
        for path in backup.rglob("*"))


def config_differences(run_dir: str | Path, config: RunConfig,
                       ignore: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The dotted keys whose values differ between ``config`` and the config a run in
    ``run_dir`` saved (none when it saved none), apart from ``ignore``.

    The saved config is read through today's dataclasses first, so a field added since the run
    was trained counts as its default, not as a change (a run from before StyNet's
    ``feature_source`` existed is still StyNet on "dataset"). A saved config today's classes
    refuse (a field since removed) is compared as written.
    """
    saved_path = Path(run_dir) / "config.yaml"
    if not saved_path.exists():
        return []
    raw = read_yaml(saved_path)
    try:
        saved = _flatten(to_dict(from_dict(RunConfig, raw, source=str(saved_path))))
    except (ConfigError, TypeError, ValueError):
        saved = _flatten(raw)
    current = _flatten(to_dict(config))
    return sorted(k for k in set(saved) | set(current)
                  if saved.get(k) != current.get(k) and k not in ignore)


def check_resumable(run_dir: Path, config: RunConfig) -> None:
    """Refuses to resume an interrupted run with a config other than its own (apart from
    the epochs, patience and verbosity)."""
    changed = config_differences(run_dir, config, _RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(f"run directory {run_dir} holds an interrupted run with a different "
                          f"config ({', '.join(changed)} differ); resume with the same config, "
                          "or choose another run_dir")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: data}


def read_log(csv_path: Path) -> dict[str, list[float]]:
    """Reads the CSV log; an epoch logged twice (killed between log and backup) keeps its last row."""
    if not csv_path.exists():
        return {}
    with csv_path.open(newline="") as handle:
        rows = {int(row["epoch"]): row for row in csv.DictReader(handle) if row.get("epoch")}
    history: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            history.setdefault(key, []).append(float(value) if value not in ("", None) else math.nan)
    return history


def _best(history: dict[str, list[float]], monitor: str, mode: str
          ) -> tuple[int | None, float | None]:
    """The best logged epoch (1-based, as Keras prints epochs) and its ``monitor`` value,
    NaNs ignored; (None, None) when nothing finite was logged."""
    values = np.array(history.get(monitor, []), dtype=float)
    if not values.size or np.isnan(values).all():
        return None, None
    position = int(np.nanargmax(values) if mode == "max" else np.nanargmin(values))
    return int(history["epoch"][position]) + 1, float(values[position])
