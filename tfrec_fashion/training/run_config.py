"""The config of one training run: which data, which model, how to train it, where to write.

A YAML file under ``configs/`` maps onto ``RunConfig``; the ``data`` and ``model`` sections are
tagged by ``name`` (see ``tfrec_fashion.config``).
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from tfrec_fashion.config import tagged
from tfrec_fashion.data.sources import DATA_SOURCES
from tfrec_fashion.errors import ConfigError
from tfrec_fashion.training.model_configs import MODEL_CONFIGS

#: ``train.precision``'s choices: Keras mixed-precision policy names (``training.precision``).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass
class TrainConfig:
    """How ``model.fit`` runs.

    Args:
        epochs: maximum number of epochs.
        batch_size: global batch size (split across replicas by the strategy).
        learning_rate: optimizer step size.
        optimizer: "adam", "adagrad" or "sgd".
        steps_per_epoch: batches per epoch for samplers that draw fresh data (null = one pass).
        early_stopping_patience: validations without improvement of ``monitor`` before
            stopping (epochs when ``validation_freq`` is 1; 0 disables early stopping).
        monitor: the logged quantity that picks the best epoch, e.g. "val_auc" or "val_loss".
        monitor_mode: "max" or "min" for ``monitor``.
        strategy: "default" (one device), "mirrored" (all local devices) or "multi_worker"
            (MultiWorkerMirroredStrategy, cluster from the TF_CONFIG environment variable).
        deterministic: make TensorFlow ops deterministic (same seed -> same run, slower).
        verbose: Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.
        precision: "float32", or a Keras mixed-precision policy: "mixed_float16" (float16
            compute, float32 variables, dynamic loss scaling) or "mixed_bfloat16" (no loss
            scaling needed). Only models whose config declares ``MIXED_PRECISION`` accept a
            mixed policy (``training.precision``).
        validation_freq: validate (the recipe's epoch metrics, e.g. ``val_auc``) every this many
            epochs: epochs N, 2N, ... and the last, plus the first epoch a process trains (so
            the log has its columns); the other epochs log NaN and neither checkpoint nor count
            towards early stopping (``training.callbacks``).
        steps_per_execution: training steps per call of the compiled train function (Keras
            ``compile``): fewer Python round trips for small models; batch-level callbacks see
            every N-th step.
        jit_compile: compile the train step with XLA (Keras ``compile(jit_compile=True)``).
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
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    validation_freq: int = 1
    steps_per_execution: int = 1
    jit_compile: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "validation_freq", "steps_per_execution"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be positive. Received: "
                                 f"{name}={getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"train.learning_rate must be positive. Received: "
                             f"learning_rate={self.learning_rate}")
        if self.early_stopping_patience < 0:
            raise ValueError("train.early_stopping_patience must be >= 0. Received: "
                             f"early_stopping_patience={self.early_stopping_patience}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {list(PRECISIONS)}. Received: "
                             f"precision={self.precision!r}")


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

    def __post_init__(self) -> None:
        check_precision(self.model, self.train.precision)


def mixed_precision_models() -> list[str]:
    """The registered models that train under a mixed policy (config ``MIXED_PRECISION``)."""
    return sorted(name for name, config_class in MODEL_CONFIGS.classes.items()
                  if getattr(config_class, "MIXED_PRECISION", False))


def check_precision(model_config: object, precision: str) -> None:
    """Refuses a mixed ``precision`` for a model that has not been made correct under it (its
    config lacks ``MIXED_PRECISION = True``): such a model would mix float16 and float32
    tensors, or silently train at another precision than asked."""
    if precision == "float32" or getattr(type(model_config), "MIXED_PRECISION", False):
        return
    name = getattr(model_config, "name", type(model_config).__name__)
    raise ConfigError(f"train.precision: {precision} is not supported for model {name!r} "
                      f"(it trains in float32 only); mixed precision is supported for: "
                      f"{', '.join(mixed_precision_models())}")
