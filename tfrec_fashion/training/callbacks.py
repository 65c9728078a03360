"""Keras callbacks shared by recipes."""

from __future__ import annotations

from typing import Callable

import tfrec_fashion  # noqa: F401
import tensorflow as tf


class EpochMetrics(tf.keras.callbacks.Callback):
    """Adds ``{prefix}{name}`` entries to the epoch logs from a function of the model.

    Placed before ModelCheckpoint / EarlyStopping so that they can monitor, e.g., the
    validation AUC that the papers choose their best epoch by.

    Args:
        compute: returns a dict name -> float for the current model.
        prefix: prepended to every name, e.g. "val_".
    """

    def __init__(self, compute: Callable[[tf.keras.Model], dict[str, float]], prefix: str = "val_"):
        super().__init__()
        self.compute = compute
        self.prefix = prefix

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        for name, value in self.compute(self.model).items():
            logs[f"{self.prefix}{name}"] = float(value)
