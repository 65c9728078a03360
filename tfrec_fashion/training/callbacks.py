"""Keras callbacks shared by recipes, and the harness's validation schedule.

``train.validation_freq`` = N validates (the recipes' ``EpochMetrics``) on epochs N, 2N, ... and
the last of the run, plus the first epoch a process trains, so that the log's columns are known
from the start (a resumed run too). The other epochs log NaN for the metrics: ``ModelCheckpoint``
never saves on NaN (it is no improvement), the harness's best-epoch reading skips NaN, and
``ValidatedEarlyStopping`` counts its patience in validations, not epochs.
"""

from __future__ import annotations

import math
from typing import Callable

import tfrec_fashion  # noqa: F401
import tensorflow as tf


def is_validation_epoch(epoch: int, frequency: int, epochs: int | None) -> bool:
    """Whether the 0-based ``epoch`` of a run of ``epochs`` validates under ``frequency``:
    epochs (1-based) N, 2N, ... and the last."""
    return (epoch + 1) % frequency == 0 or (epochs is not None and epoch + 1 >= epochs)


class EpochMetrics(tf.keras.callbacks.Callback):
    """Adds ``{prefix}{name}`` entries to the epoch logs from a function of the model.

    Placed before ModelCheckpoint / EarlyStopping so that they can monitor, e.g., the
    validation AUC that the papers choose their best epoch by.

    Args:
        compute: returns a dict name -> float for the current model.
        prefix: prepended to every name, e.g. "val_".
        frequency: compute on the epochs of ``is_validation_epoch`` and on the first epoch this
            callback sees; log NaN for the same names on the others (the harness sets it from
            ``train.validation_freq``).
    """

    def __init__(self, compute: Callable[[tf.keras.Model], dict[str, float]], prefix: str = "val_",
                 frequency: int = 1):
        super().__init__()
        self.compute = compute
        self.prefix = prefix
        self.frequency = frequency
        self._names: list[str] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        if self._names is not None and not is_validation_epoch(
                epoch, self.frequency, self.params.get("epochs")):
            logs.update({name: math.nan for name in self._names})
            return
        values = {f"{self.prefix}{name}": float(value)
                  for name, value in self.compute(self.model).items()}
        self._names = list(values)
        logs.update(values)


class ValidatedEarlyStopping(tf.keras.callbacks.EarlyStopping):
    """``EarlyStopping`` that looks only at the validation epochs of ``validation_freq``
    (``is_validation_epoch``): its patience counts validations, and an epoch without one neither
    resets nor uses it up. With ``validation_freq`` 1 it is Keras' ``EarlyStopping``.
    """

    def __init__(self, validation_freq: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.validation_freq = validation_freq

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if is_validation_epoch(epoch, self.validation_freq, self.params.get("epochs")):
            super().on_epoch_end(epoch, logs)


def validating_every(callbacks: list, frequency: int) -> list:
    """``callbacks`` with every ``EpochMetrics`` among them set to validate every ``frequency``
    epochs (``train.validation_freq``)."""
    for callback in callbacks:
        if isinstance(callback, EpochMetrics):
            callback.frequency = frequency
    return callbacks
