"""The config of one training run: which data, which model, how to train it, where to write.

A YAML file under ``configs/`` maps onto ``RunConfig``; the ``data`` and ``model`` sections are
tagged by ``name`` (see ``tfrec_fashion.config``).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from tfrec_fashion.config import tagged
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.training.model_configs import MODEL_CONFIGS


@dataclasses.dataclass
class TrainConfig:
    """How ``model.fit`` runs.

    Args:
        epochs: maximum number of epochs.
        batch_size: global batch size (split across replicas by the strategy).
        learning_rate: optimizer step size.
        optimizer: "adam", "adagrad" or "sgd".
        steps_per_epoch: batches per epoch for samplers that draw fresh data (null = one pass).
        early_stopping_patience: epochs without improvement of ``monitor`` before stopping
            (0 disables early stopping).
        monitor: the logged quantity that picks the best epoch, e.g. "val_auc" or "val_loss".
        monitor_mode: "max" or "min" for ``monitor``.
        strategy: "default" (one device), "mirrored" (all local devices) or "multi_worker"
            (MultiWorkerMirroredStrategy, cluster from the TF_CONFIG environment variable).
        deterministic: make TensorFlow ops deterministic (same seed -> same run, slower).
        verbose: Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.
    """

    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 0.01
    optimizer: Literal["adam", "adagrad", "sgd"] = "adam"
    steps_per_epoch: Optional[int] = None
    early_stopping_patience: int = 3
    monitor: str = "val_auc"
    monitor_mode: Literal["max", "min"] = "max"
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    deterministic: bool = True
    verbose: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be positive. Received: "
                                 f"{name}={getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"train.learning_rate must be positive. Received: "
                             f"learning_rate={self.learning_rate}")
        if self.early_stopping_patience < 0:
            raise ValueError("train.early_stopping_patience must be >= 0. Received: "
                             f"early_stopping_patience={self.early_stopping_patience}")


@dataclasses.dataclass
class RunConfig:
    """One run: ``data`` -> ``model`` trained as ``train`` says, written to ``run_dir``.

    Args:
        run_dir: where the run writes (config.yaml, checkpoints/, logs/, metrics.json).
        seed: seeds Python, NumPy and TensorFlow (data sources carry their own seed).
        data: a registered data source (``tfrec_fashion.data.sources.DATA_SOURCES``).
        model: a registered model config (``training.model_configs.MODEL_CONFIGS``).
        train: ``TrainConfig``.
    """

    model: object = tagged(MODEL_CONFIGS)
    data: object = tagged(DATA_SOURCES, default="latent_factor")
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    run_dir: str = "runs/default"
    seed: int = 0
